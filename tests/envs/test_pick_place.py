"""pick_place: the expert really grasps and lifts; stored states are native-MuJoCo consistent."""

import h5py
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from support import PP_BATCH, PP_HORIZON, generate_file, episodes_of
from mjxgen import make_env
from mjxgen.envs.arm import step

PP_OBS = {"joint_pos": 7, "joint_vel": 7, "ee_pos": 3, "target_pos": 3, "object_pos": 3, "object_quat": 4,
          "gripper_pos": 1, "place_pos": 3}
FK_ATOL = 1e-4  # m
LIFT_CLEARANCE = 0.05  # m: the cube's centre while in transit, well above its resting height of 0.02
# MJX (float32) vs native MuJoCo (float64) over 0.5 s of the gripper closing on the cube and lifting it.
# The contact transient differs: measured over 4 episodes, the finger opening differs by up to 8.4 mm while
# the pads close on the cube (the final grip agrees to 0.4 mm), the cube's position by up to 4.3 mm, and
# the arm joints by up to 2.6e-4 rad. Why the closing transient differs is not yet understood (docs/tasks.md).
CUBE_ATOL = 5e-3  # m
GRIP_ATOL = 1e-2  # m, finger opening (the sum of both fingers)
ARM_ATOL = 5e-4  # rad
SEED_PP_N = 200  # episodes of seed 000's pick_place example (`--n-episodes 200`, default horizon 200)


@pytest.fixture(scope="module")
def pp_env():
    return make_env("pick_place")


def _episodes(path):
    with h5py.File(path) as f:
        return [{"attrs": dict(f[k].attrs), **{o: f[k]["observations"][o][()] for o in f[k]["observations"]},
                 "actions": f[k]["actions"][()]} for k in f]


def test_layout(pick_place_file):
    with h5py.File(pick_place_file[0]) as f:
        assert len(f.keys()) == PP_BATCH and f.attrs["env_name"] == "pick_place" and f.attrs["complete"]
        for name in f:
            n = f[name].attrs["length"]
            assert set(f[name]["observations"]) == set(PP_OBS)
            for k, dim in PP_OBS.items():
                assert f[name]["observations"][k].shape == (n, dim), (name, k)
            assert f[name]["actions"].shape == (n, 4)


def test_expert_succeeds_and_really_lifts(pick_place_file):
    """Successful episodes carry the cube through the air, not along the table."""
    _, result = pick_place_file
    assert result.stats["success_rate"] >= 0.9
    for ep in _episodes(pick_place_file[0]):
        if not ep["attrs"]["success"]:
            continue
        obj = ep["object_pos"]
        start, place = obj[0, :2], ep["place_pos"][0, :2]
        in_transit = (np.linalg.norm(obj[:, :2] - start, axis=1) > 0.03) & (np.linalg.norm(obj[:, :2] - place, axis=1) > 0.03)
        assert in_transit.any()
        assert obj[in_transit, 2].min() > LIFT_CLEARANCE, obj[in_transit, 2].min()
        assert np.linalg.norm(obj[-1] - ep["place_pos"][-1]) < 0.05


def test_random_policy_rarely_succeeds(tmp_path_factory):
    """(200 episodes of 200 steps: the shape of seed 000's pick_place example, which tests/test_docs.py runs, so
    no compile of its own.)"""
    path, result = generate_file(tmp_path_factory, "pick_place", SEED_PP_N, "random", PP_HORIZON, SEED_PP_N, seed=3)
    assert result.stats["success_rate"] <= 0.1 and result.stats["invalid_episodes"] == 0
    episodes = episodes_of(path)
    assert len(episodes) == SEED_PP_N
    for name, (arrays, _) in episodes.items():
        for k, a in arrays.items():
            assert np.isfinite(a).all(), (name, k)


def test_stored_positions_are_native_forward_kinematics(pick_place_file):
    with h5py.File(pick_place_file[0]) as f:
        model = mujoco.MjModel.from_xml_string(f.attrs["model_xml"])
    data = mujoco.MjData(model)
    cube = model.joint("cube").qposadr[0]
    worst = 0.0
    for ep in _episodes(pick_place_file[0]):
        for t in range(len(ep["joint_pos"])):
            data.qpos[:7] = ep["joint_pos"][t]
            data.qpos[cube:cube + 3] = ep["object_pos"][t]
            data.qpos[cube + 3:cube + 7] = ep["object_quat"][t]
            mujoco.mj_kinematics(model, data)
            worst = max(worst, np.abs(data.site("tcp").xpos - ep["ee_pos"][t]).max(),
                        np.abs(data.body("cube").xpos - ep["object_pos"][t]).max())
    assert worst < FK_ATOL, worst


def test_contact_rollout_matches_native(pick_place_file, pp_env):
    """From a stored state with the pads around the cube, close the gripper and lift in MJX and in C MuJoCo."""
    ep = next(e for e in _episodes(pick_place_file[0]) if e["attrs"]["success"])
    t = int(np.argmax(ep["actions"][:, 3] < 0))  # the first step of the CLOSE phase
    m = pp_env.mj_model
    d = mujoco.MjData(m)
    cube = m.joint("cube").qposadr[0]
    d.qpos[:7] = ep["joint_pos"][t]
    d.qpos[7:9] = ep["gripper_pos"][t, 0] / 2
    d.qpos[cube:cube + 3] = ep["object_pos"][t]
    d.qpos[cube + 3:cube + 7] = ep["object_quat"][t]
    d.mocap_pos[:] = ep["place_pos"][t]
    mujoco.mj_forward(m, d)
    n = 100  # 0.5 s: 40 steps closing, then the arm's targets rise
    ctrl = np.tile(np.concatenate([ep["joint_pos"][t], [0.0, 0.0]]), (n, 1))
    ctrl[40:, 1] -= np.linspace(0, 0.3, n - 40)  # joint 2 back: the hand rises
    mx = mjx.put_data(m, d)

    def body(x, c):
        x = step(pp_env.mjx_model, x.replace(ctrl=c))  # the env's physics step, with the constraint solver
        return x, x.qpos

    _, qpos_mjx = jax.jit(lambda x, c: jax.lax.scan(body, x, c))(mx, jnp.asarray(ctrl, jnp.float32))
    qpos_mj = []
    for c in ctrl:
        d.ctrl[:] = c
        mujoco.mj_step(m, d)
        qpos_mj.append(d.qpos.copy())
    qpos_mj = np.array(qpos_mj)
    assert d.ncon >= 2  # both pads touch the cube
    assert qpos_mj[-1, cube + 2] > ep["object_pos"][t, 2] + 0.01  # the cube was lifted with the hand
    qpos_mjx = np.asarray(qpos_mjx)
    np.testing.assert_allclose(qpos_mjx[:, cube:cube + 3], qpos_mj[:, cube:cube + 3], atol=CUBE_ATOL, err_msg="cube")
    np.testing.assert_allclose(qpos_mjx[:, 7:9].sum(1), qpos_mj[:, 7:9].sum(1), atol=GRIP_ATOL, err_msg="grip opening")
    np.testing.assert_allclose(qpos_mjx[:, :7], qpos_mj[:, :7], atol=ARM_ATOL, err_msg="arm joints")


def test_files_record_the_expert_version(pick_place_file):
    """The scripted expert's version is part of the env config, so every file says which expert made it."""
    import json

    from mjxgen.pick_place import PickPlaceConfig

    with h5py.File(pick_place_file[0]) as f:
        assert json.loads(f.attrs["config"])["env_config"]["expert_version"] == 1  # the default: the phase machine
    assert make_env("pick_place", PickPlaceConfig(expert_version=2)).config_dict()["expert_version"] == 2
    for bad in (0, 3, True, "2"):
        with pytest.raises(ValueError, match="expert_version must be one of"):
            PickPlaceConfig(expert_version=bad)


def test_expert_v2_acts_on_the_observation_alone():
    """Version 2 is stateless: a policy with no state, whose action is a function of one observation; it closes
    at the grasp point and opens once the cube is on the place target. (Its success in simulation is measured in
    docs/training.md, not here: a pick_place rollout of its own would compile for minutes.)"""
    from mjxgen.kernels import pick_place_expert as expert
    from mjxgen.pick_place import PickPlaceConfig

    policy = make_env("pick_place", PickPlaceConfig(expert_version=2)).policy("scripted")
    assert policy.init(None, None, None) == ()
    place = jnp.array([0.5, 0.1, 0.02])
    cube = jnp.array([0.4, 0.0, 0.02])
    at_grasp = expert.act_markov(cube - jnp.array([0, 0, expert.GRASP_OFFSET]), cube, place, jnp.array([0.08]))
    above = expert.act_markov(cube + jnp.array([0, 0, 0.2]), cube, place, jnp.array([0.08]))
    placed = expert.act_markov(place, place, place, jnp.array([0.04]))
    assert float(at_grasp[3]) == -1.0 and float(above[3]) == 1.0 and float(above[2]) == -1.0
    assert float(placed[3]) == 1.0 and np.allclose(placed[:3], 0.0)
