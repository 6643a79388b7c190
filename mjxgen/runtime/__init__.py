"""Process plumbing, below everything that computes: configure() (XLA flags, GL backend, compile cache), the
persistent compile cache and exported programs, thread pools, signals and jax.distributed. Imports no env."""
