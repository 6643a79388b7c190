"""Pure JAX kernels: small functions of arrays and keys, with no I/O and no MuJoCo.

- `mjxgen.kernels.ik`: damped-least-squares inverse kinematics.
- `mjxgen.kernels.policies`: the random policy and the scripted P-controller expert.
- `mjxgen.kernels.raycast`: camera images (RGB, depth, segmentation) of primitive geoms by ray casting, batched.
"""
