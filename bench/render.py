"""Camera images: kernels.raycast (JAX) against MuJoCo's OpenGL renderer, frames/s side by side in one run.

    python -m bench.render [--scenes pick_place reach] [--sizes 64 128] [--batch 64] [--chunks 8 0]
                           [--mujoco-frames 100] [--reps 5]

- MuJoCo: one frame at a time, as mjxgen/render.py makes them (mj_kinematics, mj_camlight, update_scene, render:
  RGB only), on random states of the scene; timed twice per size, before and after the JAX runs, and averaged.
- JAX: `raycast.render_batch` jitted once per (size, chunk, shadows), on a batch of --batch random states; the first
  call (trace + compile + run, JAX's persistent compilation cache off) is reported apart, then --reps calls each up
  to `block_until_ready`. RGB, depth and segmentation are all computed (render_batch returns the three).
  frames/s = batch / the best call's wall time.
- Both renderers also get frames per CPU-second of this process (less sensitive to other processes on a shared
  machine; the JAX side can keep both cores busy; MuJoCo's software GL (llvmpipe) runs threads of its own).
- --chunks: worlds per lax.map step (0: one plain vmap over the batch). Shadows on and off are both timed: the
  difference is what the directional light's shadow rays cost.

Writes JSON to bench/results/<date>-<device>-render.json.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import time

import mjxgen

mjxgen.configure(compile_cache=False)  # first: XLA flags, GL backend; no persistent cache (compile times are measured)

import jax
import mujoco
import numpy as np

from bench.throughput import RESULTS, device_name
from mjxgen.kernels import raycast
from mjxgen.render import scene as raycast_scene
from mjxgen.envs.arm import load_scene
from mjxgen.runtime.versions import package_versions

SCENES = {"reach": "reach.xml", "pick_place": "pick_place.xml"}


def random_states(model: mujoco.MjModel, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random qpos (n, nq) (joints within their ranges, the cube anywhere above the table) and mocap_pos."""
    rng = np.random.default_rng(seed)
    qpos = np.tile(model.qpos0, (n, 1))
    for j in range(model.njnt):
        a = model.jnt_qposadr[j]
        if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
            qpos[:, a:a + 3] = rng.uniform([0.3, -0.3, 0.02], [0.7, 0.3, 0.25], (n, 3))
            quat = rng.normal(size=(n, 4))
            qpos[:, a + 3:a + 7] = quat / np.linalg.norm(quat, axis=1, keepdims=True)
        else:
            qpos[:, a] = rng.uniform(*model.jnt_range[j], n)
    mocap = rng.uniform([0.3, -0.3, 0.02], [0.7, 0.3, 0.5], (n, model.nmocap, 3))
    return qpos, mocap


def geom_poses(model, qpos, mocap) -> tuple[np.ndarray, np.ndarray]:
    """geom_xpos (n, ngeom, 3) and geom_xmat (n, ngeom, 3, 3) of the states, from mj_kinematics."""
    data = mujoco.MjData(model)
    xpos, xmat = [], []
    for q, mp in zip(qpos, mocap):
        data.qpos[:], data.mocap_pos[:] = q, mp
        mujoco.mj_kinematics(model, data)
        xpos.append(data.geom_xpos.copy())
        xmat.append(data.geom_xmat.reshape(-1, 3, 3).copy())
    return np.asarray(xpos, np.float32), np.asarray(xmat, np.float32)


def measure_mujoco(model, size: int, qpos, mocap) -> dict:
    """MuJoCo's frames/s, one RGB frame at a time as mjxgen.render.EpisodeRenderer renders them."""
    renderer = mujoco.Renderer(model, size, size)
    data = mujoco.MjData(model)
    cam = model.camera("front").id
    renderer.update_scene(data, camera=cam)
    renderer.render()  # warm-up: the first frame allocates
    wall, cpu = time.perf_counter(), time.process_time()
    for q, mp in zip(qpos, mocap):
        data.qpos[:], data.mocap_pos[:] = q, mp
        mujoco.mj_kinematics(model, data)
        mujoco.mj_camlight(model, data)
        renderer.update_scene(data, camera=cam)
        renderer.render()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    renderer.close()
    return {"frames": len(qpos), "frames_per_s": len(qpos) / wall, "frames_per_cpu_s": len(qpos) / cpu}


def measure_jax(scene, xpos, xmat, chunk: int | None, shadows: bool, reps: int) -> dict:
    """raycast.render_batch's first call and the best of `reps` later calls on the batch."""
    n = len(xpos)
    cam_pos = np.broadcast_to(scene.cam_pos, (n, 3)).astype(np.float32)
    cam_mat = np.broadcast_to(scene.cam_mat, (n, 3, 3)).astype(np.float32)
    light = np.broadcast_to(scene.light_dir, (n, 3)).astype(np.float32)
    render = jax.jit(functools.partial(raycast.render_batch, scene, shadows=shadows, chunk=chunk))
    start = time.perf_counter()
    jax.block_until_ready(render(xpos, xmat, cam_pos, cam_mat, light))
    first = time.perf_counter() - start
    walls, cpus = [], []
    for rep in range(reps):
        moved = xpos + np.float32(1e-4 * (rep + 1))  # new inputs each call
        wall, cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(render(moved, xmat, cam_pos, cam_mat, light))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"batch": n, "chunk": chunk or "vmap", "shadows": shadows, "first_call_s": first, "call_s": walls,
            "frames_per_s": n / min(walls), "frames_per_s_median": n / float(np.median(walls)),
            "frames_per_cpu_s": n / min(cpus)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", nargs="+", default=["pick_place"], choices=list(SCENES))
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    p.add_argument("--batch", type=int, default=64, help="worlds per JAX call")
    p.add_argument("--chunks", type=int, nargs="+", default=[8], help="worlds per lax.map step; 0: plain vmap")
    p.add_argument("--mujoco-frames", type=int, default=100)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--output", default=None)
    args = p.parse_args()

    out = {"date": datetime.date.today().isoformat(), "device": device_name(), "cpu_count": os.cpu_count(),
           "versions": package_versions(), "xla_flags": os.environ.get("XLA_FLAGS", ""),
           "mujoco_gl": os.environ.get("MUJOCO_GL", ""), "load_average_start": os.getloadavg(), "runs": []}
    for scene_name in args.scenes:
        model, _ = load_scene(SCENES[scene_name])
        qpos, mocap = random_states(model, max(args.batch, args.mujoco_frames))
        xpos, xmat = geom_poses(model, qpos[:args.batch], mocap[:args.batch])
        for size in args.sizes:
            scene = raycast_scene.from_model(model, size, size)
            mj = [measure_mujoco(model, size, qpos[:args.mujoco_frames], mocap[:args.mujoco_frames])]
            runs = [measure_jax(scene, xpos, xmat, chunk or None, shadows, args.reps)
                    for chunk in args.chunks for shadows in (True, False)]
            mj.append(measure_mujoco(model, size, qpos[:args.mujoco_frames], mocap[:args.mujoco_frames]))
            mj_fps = float(np.mean([m["frames_per_s"] for m in mj]))
            mj_cpu = float(np.mean([m["frames_per_cpu_s"] for m in mj]))
            for r in runs:
                r["speedup_vs_mujoco"] = r["frames_per_s"] / mj_fps
                r["speedup_vs_mujoco_per_cpu_s"] = r["frames_per_cpu_s"] / mj_cpu
            out["runs"].append({"scene": scene_name, "size": size, "mujoco": mj, "mujoco_frames_per_s": mj_fps,
                                "jax": runs})
            print(f"{scene_name} {size}x{size}: MuJoCo {mj_fps:.0f} frames/s ({mj_cpu:.0f} per CPU-s)")
            for r in runs:
                print(f"  JAX chunk={r['chunk']} shadows={r['shadows']}: first call {r['first_call_s']:.1f} s, "
                      f"{r['frames_per_s']:.0f} frames/s (median {r['frames_per_s_median']:.0f}), "
                      f"{r['frames_per_cpu_s']:.0f} per CPU-s: {r['speedup_vs_mujoco']:.1f}x MuJoCo "
                      f"({r['speedup_vs_mujoco_per_cpu_s']:.1f}x per CPU-s)", flush=True)
    out["load_average_end"] = os.getloadavg()
    path = args.output or RESULTS / f"{out['date']}-{out['device']}-render.json"
    with open(path, "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
