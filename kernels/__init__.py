"""Pure JAX kernels: small functions of arrays and keys, with no I/O and no MuJoCo.

- `mjxgen.kernels.ik`: damped-least-squares inverse kinematics.
- `mjxgen.kernels.policies`: the random policy and the scripted P-controller expert.
"""
