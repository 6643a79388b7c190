"""Domain randomization (seed 000's light and friction, and more) and camera images."""

import dataclasses

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

# seed 000's shape (100 episodes, 200 steps): the README's rollout_batch block and tests/sim/test_rollout.py compile it.
from support import SEED_N as BATCH, SEED_T as HORIZON
from mjxgen.kernels.randomize import OFF, Draw, RandomizationConfig, sample
from mjxgen import make_env
from mjxgen.render.opengl import EpisodeRenderer, RenderError
from mjxgen.sim.rollout import SEGMENT_STEPS, TRACE_COUNT, rollout_batch
from mjxgen.data.hostbatch import HostBatch
from mjxgen.data.writer import DatasetWriter

DR = RandomizationConfig()


@pytest.fixture(scope="module")
def randomized(reach_env):
    """256 randomized reach episodes, run as chunks of the suite's (100, 200) shape: no new compile."""
    return jax.device_get(rollout_batch(reach_env, "scripted", np.arange(256), seed=3, max_steps=HORIZON,
                                        randomization=DR, chunk_size=BATCH))


def test_friction_and_light_draws_are_in_range_and_spread(randomized):
    info = randomized.randomization
    friction = info.friction_scale
    assert friction.shape == (256,)
    assert friction.min() >= 0.8 and friction.max() <= 1.2
    assert friction.min() < 0.82 and friction.max() > 1.18 and 0.09 < friction.std() < 0.14  # uniform: 0.115
    light = info.light_dir
    np.testing.assert_allclose(np.linalg.norm(light, axis=1), 1.0, atol=1e-5)
    assert np.linalg.norm(light.mean(axis=0)) < 0.15  # no preferred direction
    for axis in range(3):
        assert light[:, axis].min() < -0.9 and light[:, axis].max() > 0.9
        assert 0.4 < np.mean(light[:, axis] > 0) < 0.6
    for name, bound in (("joint_damping_scale", 0.2), ("actuator_gain_scale", 0.1)):
        assert np.abs(getattr(info, name) - 1).max() <= bound + 1e-6
    assert np.abs(info.joint_offset).max() <= DR.joint_noise + 1e-7
    # The start posture really carries the offset.
    np.testing.assert_allclose(randomized.trajectory.observations["joint_pos"][:, 0] - make_env("reach").arm.q_home,
                               info.joint_offset, atol=1e-5)


def test_switching_randomization_on_does_not_recompile(randomized):
    assert TRACE_COUNT[("reach", "scripted", HORIZON, BATCH, SEGMENT_STEPS)] == 1


def test_off_and_other_ranges_reuse_the_compiled_rollout(randomized, reach_env):
    for dr in (None, RandomizationConfig(light=False, friction=0.5, joint_noise=0.0)):
        rollout_batch(reach_env, "scripted", np.arange(BATCH), seed=3, max_steps=HORIZON, randomization=dr)
    assert TRACE_COUNT[("reach", "scripted", HORIZON, BATCH, SEGMENT_STEPS)] == 1


def test_config_crosses_the_jit_as_named_float32_leaves():
    leaves = jax.tree.leaves(DR.as_arrays())
    assert len(leaves) == len(dataclasses.fields(RandomizationConfig))
    assert all(x.dtype == jnp.float32 and not x.weak_type for x in leaves)
    assert not any(dataclasses.asdict(OFF).values())  # OFF turns every item off, new ones included
    assert hash(DR) == hash(RandomizationConfig()) and DR != OFF  # still a frozen, comparable config


# Each config field -> the one Draw field it drives.
DRIVES = {"light": "light_dir", "friction": "friction_scale", "object_mass": "object_mass_scale",
          "joint_damping": "joint_damping_scale", "actuator_gain": "actuator_gain_scale",
          "joint_noise": "joint_offset", "camera_jitter": "camera_offset", "colour": "geom_rgb_scale"}
ON = dataclasses.replace(DR, colour=0.1)  # the default config with colour jitter (off by default) on
NGEOM = 5


def test_each_field_drives_its_own_draw_item():
    light = jnp.array([0.0, 0.0, -1.0])
    off = sample(jax.random.key(4), OFF.as_arrays(), light, 7, NGEOM)
    assert set(DRIVES) == {f.name for f in dataclasses.fields(RandomizationConfig)}
    for field, item in DRIVES.items():
        cfg = dataclasses.replace(OFF, **{field: getattr(ON, field)})
        draw = sample(jax.random.key(4), cfg.as_arrays(), light, 7, NGEOM)
        changed = {name for name in Draw._fields
                   if not np.array_equal(getattr(draw, name), getattr(off, name))}
        assert changed == {item}, (field, changed)


def test_draws_come_from_the_episode_key_alone(randomized, reach_env):
    """Episode i is the same in a batch of 100 (the fixture's chunks) and in a batch of 5, randomization on (the
    batch of 5: tests/sim/test_rollout.py's odd batch)."""
    five = jax.device_get(rollout_batch(reach_env, "scripted", np.arange(5, 10), seed=3, max_steps=HORIZON,
                                        randomization=DR))
    for a, b in zip(jax.tree.leaves(randomized), jax.tree.leaves(five)):
        np.testing.assert_array_equal(a[5:10], b)


def test_friction_changes_the_cube_motion():
    """Same (zero-motion) actions, the cube sliding at 0.3 m/s: low and high friction stop it differently."""
    env = make_env("pick_place")
    m = env.mjx_model
    base = sample(jax.random.key(0), OFF, jnp.asarray(env.mj_model.light_dir[0]), 7, env.mj_model.ngeom)

    @jax.jit
    def slide(friction_scale):
        state = env.reset(m, jax.random.key(1))
        mi, state = env.randomize(m, state, base._replace(friction_scale=friction_scale))
        dof = env.mj_model.joint("cube").dofadr[0]
        state = state._replace(data=state.data.replace(qvel=state.data.qvel.at[dof].set(0.3)))
        hold = jnp.array([0.0, 0.0, 0.0, 1.0])

        def step(s, _):
            s, _, _ = env.step(mi, s, hold)
            return s, env.observe(s)["object_pos"]

        return jax.lax.scan(step, state, None, length=15)[1]

    low, high = np.asarray(slide(0.8)), np.asarray(slide(1.2))
    travel_low, travel_high = low[-1, 0] - low[0, 0], high[-1, 0] - high[0, 0]
    assert travel_low > travel_high + 1e-3, (travel_low, travel_high)


def _renderer_or_skip(size=(64, 64)):
    try:
        return EpisodeRenderer(make_env("reach").xml, *size)
    except RenderError as e:
        pytest.skip(f"no OpenGL backend for MuJoCo's renderer here (EGL or OSMesa): {e}")


def test_images_show_the_arm_and_follow_the_light(randomized, tmp_path):
    _renderer_or_skip().close()
    steps = 12
    ids = [int(np.argmax(randomized.randomization.light_dir[:, 2])),  # light pointing up
           int(np.argmin(randomized.randomization.light_dir[:, 2]))]  # pointing down
    tr = randomized.trajectory
    batch = HostBatch.from_padded(
        first=0, end=2, episode_ids=np.arange(2), lengths=np.full(2, steps), success=np.zeros(2, bool),
        valid=np.ones(2, bool), observations={k: v[ids] for k, v in tr.observations.items()},
        actions=tr.actions[ids], rewards=tr.rewards[ids], policy_record={},
        randomization={k: v[ids] for k, v in randomized.randomization._asdict().items()},
        mocap_pos=randomized.mocap_pos[ids], qpos=tr.qpos[ids],
    )
    env = make_env("reach")
    path = tmp_path / "images.h5"
    w = DatasetWriter(path, env_name="reach", policy="scripted", seed=3, config={}, model_xml=env.xml,
                      obs_shapes=env.obs_shapes, action_size=env.action_size, image_size=(64, 64))
    w.write_batch(batch)
    w.close()
    assert w.encoder.frames.frames == 2 * steps and w.encoder.frames.render_s > 0  # (render.BatchFrames counts them)
    with h5py.File(path) as f:
        images = [f[f"episode_{i}/observations/image"] for i in range(2)]
        assert images[0].shape == (steps, 64, 64, 3) and images[0].dtype == np.uint8
        assert images[0].chunks == (1, 64, 64, 3)  # one frame per chunk: a frame reads alone
        frames = [im[()] for im in images]
        np.testing.assert_array_equal(f["episode_1/randomization/light_dir"][()],
                                      randomized.randomization.light_dir[ids[1]])
    for im in frames:
        assert im.std() > 20  # not blank or constant
        assert len(np.unique(im.reshape(-1, 3), axis=0)) > 50
        assert np.abs(im[-1].astype(int) - im[0].astype(int)).sum() > 0  # the arm moves
    assert abs(frames[0].mean() - frames[1].mean()) > 2  # the light draw changes the brightness
