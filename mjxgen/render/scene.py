"""The static scene of kernels.raycast, read from a MuJoCo model as MuJoCo's own renderer would draw it."""

from __future__ import annotations

import mujoco
import numpy as np

from mjxgen.kernels import raycast

# mjvOption's default geomgroup: groups 0, 1 and 2 are drawn.
VISIBLE_GROUPS = (0, 1, 2)
_DEFAULT_RGBA = (0.5, 0.5, 0.5, 1.0)  # a geom's rgba that defers to its material (engine_vis_visualize.c)
_F = np.float32


def from_model(model: mujoco.MjModel, height: int, width: int, camera: str | int = "front") -> raycast.Scene:
    """The drawn geoms, camera, lights and ambient terms of `model` as a raycast.Scene of height x width pixels."""
    cam = model.camera(camera).id
    if model.cam_mode[cam] != mujoco.mjtCamLight.mjCAMLIGHT_FIXED or model.cam_sensorsize[cam].any():
        raise NotImplementedError("only fixed cameras with a fovy (no tracking mode, no sensor size) are supported")
    if model.cam_projection[cam] != mujoco.mjtProjection.mjPROJ_PERSPECTIVE:
        raise NotImplementedError("only perspective cameras are supported")
    cam_mat = np.zeros(9)
    mujoco.mju_quat2Mat(cam_mat, model.cam_quat[cam])

    ids, rgba, material = [], [], []
    for g in range(model.ngeom):
        mat = model.geom_matid[g]
        colour = model.geom_rgba[g]
        if mat >= 0 and tuple(colour) == _DEFAULT_RGBA:  # setMaterial: the material's colour unless rgba is set
            colour = model.mat_rgba[mat]
        if min(max(model.geom_group[g], 0), mujoco.mjNGROUP - 1) not in VISIBLE_GROUPS or colour[3] == 0:
            continue
        if model.geom_type[g] not in raycast.SUPPORTED_TYPES:
            raise NotImplementedError(f"geom {g} is a {mujoco.mjtGeom(model.geom_type[g]).name}: not drawn by raycast")
        ids.append(g)
        rgba.append(colour)
        material.append((model.mat_specular[mat], model.mat_shininess[mat], model.mat_emission[mat]) if mat >= 0
                        else (0.5, 0.5, 0.0))  # mjv_initGeom's defaults
    ids = np.asarray(ids, np.int32)
    material = np.asarray(material, _F).reshape(-1, 3)

    lights = [i for i in range(model.nlight) if model.light_active[i]]
    if len(lights) > 1 or any(model.light_type[i] != mujoco.mjtLightType.mjLIGHT_DIRECTIONAL for i in lights):
        raise NotImplementedError("at most one light, directional, is supported (besides the headlight)")
    li = lights[0] if lights else None
    if li is not None and (model.light_bodyid[li] != 0 or model.light_mode[li] != mujoco.mjtCamLight.mjCAMLIGHT_FIXED):
        raise NotImplementedError("the light must be fixed to the world body")
    light = (lambda a: np.asarray(a[li] if li is not None else np.zeros(3), _F))
    head = model.vis.headlight
    head_on = bool(head.active)
    extent = model.stat.extent
    return raycast.Scene(
        height=int(height), width=int(width), fovy=float(model.cam_fovy[cam]),
        znear=float(model.vis.map.znear * extent), zfar=float(model.vis.map.zfar * extent),
        cam_bodyid=int(model.cam_bodyid[cam]), cam_pos=model.cam_pos[cam].astype(_F),
        cam_mat=cam_mat.reshape(3, 3).astype(_F),
        geom_id=ids, geom_type=model.geom_type[ids].astype(np.int32), geom_size=model.geom_size[ids].astype(_F),
        geom_rgba=np.asarray(rgba, _F).reshape(-1, 4), geom_rbound=model.geom_rbound[ids].astype(_F),
        geom_specular=material[:, 0], geom_shininess=material[:, 1], geom_emission=material[:, 2],
        # initLights: a global ambient of 0.3 only when no light at all is on.
        global_ambient=np.full(3, 0.0 if (head_on or lights) else 0.3, _F),
        headlight_ambient=np.asarray(head.ambient if head_on else np.zeros(3), _F),
        headlight_diffuse=np.asarray(head.diffuse if head_on else np.zeros(3), _F),
        headlight_specular=np.asarray(head.specular if head_on else np.zeros(3), _F),
        has_light=li is not None, light_pos=light(model.light_pos), light_dir=light(model.light_dir),
        light_ambient=light(model.light_ambient), light_diffuse=light(model.light_diffuse),
        light_specular=light(model.light_specular),
        light_castshadow=bool(li is not None and model.light_castshadow[li]),
        shadow_clip=float(extent * model.vis.map.shadowclip),
    )
