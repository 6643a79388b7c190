"""MuJoCo's renderer against kernels.raycast, side by side: one row per state, columns MuJoCo | JAX | difference.

    python docs/plot_raycast.py [--size 128] [--rows 2] [--scale 2] [--out docs/raycast_compare.png]

Rows: --rows random states of reach, then of pick_place (random joint angles within range, the cube anywhere above
the table, the target or place marker in front of the arm), the first of each scene under the model's light, the
others under a random light direction. The difference column is |MuJoCo - JAX| per channel, times 4. Pixels are
shown --scale times larger (nearest neighbour). Prints the mean absolute difference per channel of the images
shown. Needs only NumPy and imageio (mjxgen dependencies) and an OpenGL backend for MuJoCo (EGL or OSMesa).
"""

import argparse
import functools
from pathlib import Path

import mjxgen

mjxgen.configure()  # first: the XLA flags before any JAX computation, the GL backend

import imageio.v3 as iio  # noqa: E402
import jax  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from mjxgen.kernels import raycast  # noqa: E402
from mjxgen.render import scene as raycast_scene  # noqa: E402
from mjxgen.envs.arm import load_scene  # noqa: E402

SCENES = {"reach": ("reach.xml", (0.1, 0.5)), "pick_place": ("pick_place.xml", (0.02, 0.02))}  # file, mocap z
GAP = 4  # pixels of white between images


def random_state(model: mujoco.MjModel, rng: np.random.Generator, mocap_z: tuple[float, float]):
    """qpos (nq,) with every joint within its range and the cube anywhere above the table, and mocap_pos with
    heights in mocap_z (the reach target floats, the place marker lies on the table)."""
    qpos = model.qpos0.copy()
    for j in range(model.njnt):
        a = model.jnt_qposadr[j]
        if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
            quat = rng.normal(size=4)
            qpos[a:a + 3] = rng.uniform([0.3, -0.3, 0.02], [0.7, 0.3, 0.25])
            qpos[a + 3:a + 7] = quat / np.linalg.norm(quat)
        else:
            qpos[a] = rng.uniform(*model.jnt_range[j])
    return qpos, rng.uniform([0.3, -0.3, mocap_z[0]], [0.7, 0.3, mocap_z[1]], (model.nmocap, 3))


def rows_of(scene_name: str, size: int, rows: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(MuJoCo's image, raycast's image) of `rows` random states of the scene."""
    filename, mocap_z = SCENES[scene_name]
    model, _ = load_scene(filename)
    rng = np.random.default_rng(3)
    light = [model.light_dir[0].copy()] + [v / np.linalg.norm(v) for v in rng.normal(size=(rows - 1, 3))]
    scene = raycast_scene.from_model(model, size, size)
    render = jax.jit(functools.partial(raycast.render, scene))
    renderer = mujoco.Renderer(model, size, size)
    data = mujoco.MjData(model)
    out = []
    for i in range(rows):
        model.light_dir[0] = light[i]
        data.qpos[:], data.mocap_pos[:] = random_state(model, rng, mocap_z)
        mujoco.mj_kinematics(model, data)
        mujoco.mj_camlight(model, data)
        renderer.update_scene(data, camera="front")
        ours = render(data.geom_xpos.astype(np.float32), data.geom_xmat.reshape(-1, 3, 3).astype(np.float32),
                      scene.cam_pos, scene.cam_mat, np.asarray(light[i], np.float32)).rgb
        out.append((renderer.render(), np.asarray(ours)))
    renderer.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--rows", type=int, default=2)
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--out", default=str(Path(__file__).parent / "raycast_compare.png"))
    a = p.parse_args()
    pairs = [pair for name in SCENES for pair in rows_of(name, a.size, a.rows)]
    white_col = np.full((a.size, GAP, 3), 255, np.uint8)
    lines = []
    for mj, ours in pairs:
        diff = np.clip(4 * np.abs(mj.astype(int) - ours.astype(int)), 0, 255).astype(np.uint8)
        lines.append(np.concatenate([mj, white_col, ours, white_col, diff], axis=1))
    white_row = np.full((GAP, lines[0].shape[1], 3), 255, np.uint8)
    grid = np.concatenate([x for line in lines for x in (line, white_row)][:-1], axis=0)
    iio.imwrite(a.out, np.repeat(np.repeat(grid, a.scale, axis=0), a.scale, axis=1))
    diffs = np.array([np.abs(mj.astype(int) - ours.astype(int)).mean(axis=(0, 1)) for mj, ours in pairs])
    print(f"wrote {a.out}: mean |MuJoCo - JAX| per channel over the {len(pairs)} images: {diffs.mean(axis=0).round(2)}")


if __name__ == "__main__":
    main()
