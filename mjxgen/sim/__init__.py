"""Simulation on the device: an episode as a pure function of (seed, id), the streamed segment program with
auto-reset, the per-episode values, and rollout_batch (the fixed-horizon form)."""
