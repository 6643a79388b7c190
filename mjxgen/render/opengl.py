"""Camera images: MuJoCo's own renderer on the host, from the recorded physics states.

The OpenGL backend is picked by `configure_gl` (called by `mjxgen.configure()`, and before every renderer is
made): the user's MUJOCO_GL if set; a window system's default where there is a display; otherwise EGL, else
OSMesa, whichever library is present. Without any, asking for images fails with one clear line.

MJX's batch renderer (the Warp backend, GPU only) is not used yet: every image comes from this module.
"""

from __future__ import annotations

import os
import time

import numpy as np

from mjxgen.runtime import gl


class RenderError(ValueError):
    """Camera images were asked for, but no OpenGL backend works here."""


class EpisodeRenderer:
    """Renders recorded episodes of one scene from its named camera. Create and use it in one thread (the
    GL context belongs to the thread that made it)."""

    def __init__(self, model_xml: str, height: int, width: int, camera: str = "front"):
        gl.configure_gl()
        import mujoco

        self._mujoco = mujoco
        self.model = mujoco.MjModel.from_xml_string(model_xml)
        vis = self.model.vis.global_
        if height > vis.offheight or width > vis.offwidth:
            raise ValueError(f"image size {height}x{width} exceeds the scene's offscreen buffer "
                             f"{vis.offheight}x{vis.offwidth}")
        try:
            self.renderer = mujoco.Renderer(self.model, height, width)
        except Exception as e:  # noqa: BLE001 - every GL failure becomes one clear line
            detail = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise RenderError(
                f"cannot render camera images: no usable OpenGL backend (MUJOCO_GL={os.environ.get('MUJOCO_GL', 'unset')}: "
                f"{detail}); install EGL (libegl1) or OSMesa (libosmesa6), or run without --camera"
            ) from None
        self.data = mujoco.MjData(self.model)
        self.camera = self.model.camera(camera).id
        self._cam_pos = self.model.cam_pos[self.camera].copy()
        self._rgb = self.model.geom_rgba[:, :3].copy()  # the scene's colours (its geoms use no material)

    def render(self, qpos: np.ndarray, mocap_pos: np.ndarray, light_dir: np.ndarray | None = None,
               camera_offset: np.ndarray | None = None, rgb_scale: np.ndarray | None = None) -> np.ndarray:
        """(L, H, W, 3) uint8 frames of the states qpos (L, nq), with the episode's mocap bodies, light
        direction, camera offset and geom colour factors rgb_scale (ngeom, 3)."""
        mj, m, d = self._mujoco, self.model, self.data
        if light_dir is not None and m.nlight:
            m.light_dir[0] = light_dir
        m.geom_rgba[:, :3] = self._rgb if rgb_scale is None else np.clip(self._rgb * rgb_scale, 0.0, 1.0)
        m.cam_pos[self.camera] = self._cam_pos + (0.0 if camera_offset is None else camera_offset)
        d.mocap_pos[:] = mocap_pos
        out = np.empty((len(qpos), self.renderer.height, self.renderer.width, 3), np.uint8)
        for t, q in enumerate(qpos):
            d.qpos[:] = q
            mj.mj_kinematics(m, d)
            mj.mj_camlight(m, d)
            self.renderer.update_scene(d, camera=self.camera)
            out[t] = self.renderer.render()
        return out

    def close(self) -> None:
        self.renderer.close()


class BatchFrames:
    """Camera frames of a HostBatch's episodes, rendered from their recorded states, mocap bodies and draws.
    The renderer is made on first use, in the thread that uses it (its GL context belongs to that thread)."""

    def __init__(self, model_xml: str, height: int, width: int):
        self.model_xml, self.size = model_xml, (height, width)
        EpisodeRenderer(model_xml, height, width).close()  # fail now, with one clear line, not after simulating
        self._renderer: EpisodeRenderer | None = None
        self.frames, self.render_s = 0, 0.0

    def episode(self, batch, e: int) -> np.ndarray:
        """Episode e's frames (L, H, W, 3) uint8."""
        if self._renderer is None:
            self._renderer = EpisodeRenderer(self.model_xml, *self.size)
        o, draw = batch.offsets, batch.randomization
        start = time.perf_counter()
        frames = self._renderer.render(
            np.asarray(batch.qpos[o[e]:o[e + 1]], np.float64),
            np.asarray(batch.mocap_pos[e], np.float64),
            None if draw is None else np.asarray(draw["light_dir"][e]),
            None if draw is None else np.asarray(draw["camera_offset"][e]),
            None if draw is None or "geom_rgb_scale" not in draw else np.asarray(draw["geom_rgb_scale"][e]),
        )
        self.render_s += time.perf_counter() - start
        self.frames += len(frames)
        return frames

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
