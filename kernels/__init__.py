"""Pure JAX kernels: small functions of arrays and keys, with no I/O and no MuJoCo.

- `kernels.ik`: damped-least-squares inverse kinematics.
- `kernels.policies`: the random policy and the scripted P-controller expert.
- `kernels.raycast`: camera images (RGB, depth, segmentation) of primitive geoms by ray casting, batched.
"""
