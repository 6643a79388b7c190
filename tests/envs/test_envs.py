"""The env protocol and registry: every registered env behaves as `Env` says; observation shapes come from observe.
(That the env layer imports nothing above it is tests/test_architecture.py's check.)"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mjxgen.envs import ENVS, Env, make_env
from mjxgen.kernels import randomize

# The observation keys in the order they are stored in every dataset (seed 000's layout, then pick_place's).
STORED_OBS = {
    "reach": {"joint_pos": (7,), "joint_vel": (7,), "ee_pos": (3,), "target_pos": (3,)},
    "pick_place": {"joint_pos": (7,), "joint_vel": (7,), "ee_pos": (3,), "target_pos": (3,), "object_pos": (3,),
                   "object_quat": (4,), "gripper_pos": (1,), "place_pos": (3,)},
}


@pytest.mark.parametrize("name", sorted(ENVS))
def test_registered_envs_behave_as_the_protocol_says(name):
    """Each env does what `Env` promises, on values: a reset state observed as obs_shapes says, a step's shapes
    and dtypes, a draw with randomization off that changes nothing, every policy acting with the action size."""
    cls = ENVS[name]
    assert cls.name == name and cls.policy_names and isinstance(cls.config_class, type)
    env = make_env(name)
    assert isinstance(env, Env) and env.substeps == env.config.arm.substeps
    state = jax.jit(env.reset)(env.mjx_model, jax.random.key(1))
    obs = env.observe(state)
    assert {k: tuple(v.shape) for k, v in obs.items()} == env.obs_shapes
    assert np.isfinite(np.concatenate([np.ravel(v) for v in obs.values()])).all()
    action = jnp.zeros(env.action_size)
    new, reward, success = jax.eval_shape(env.step, env.mjx_model, state, action)
    assert reward.shape == success.shape == () and success.dtype == jnp.bool_ and reward.dtype == jnp.float32
    assert jax.tree.structure(new) == jax.tree.structure(state)
    draw = env.draw(jax.random.key(2), randomize.OFF.as_arrays())
    m, same = env.randomize(env.mjx_model, state, draw)
    for field in ("geom_friction", "dof_damping", "actuator_gainprm", "body_mass"):
        np.testing.assert_array_equal(getattr(m, field), getattr(env.mjx_model, field), err_msg=field)
    np.testing.assert_array_equal(same.data.qpos, state.data.qpos)
    for policy_name in env.policy_names:
        policy = env.policy(policy_name)
        act, _ = jax.eval_shape(lambda k: policy.act(policy.init(k, obs, None), k, obs, None), jax.random.key(3))
        assert act.shape == (env.action_size,), policy_name
    json.dumps(env.config_dict())  # stored in every file: plain JSON
    with pytest.raises(ValueError, match="unknown policy"):
        env.policy("juggle")


@pytest.mark.parametrize("name", sorted(STORED_OBS))
def test_obs_shapes_come_from_observe_in_stored_order(name):
    env = make_env(name)
    assert list(env.obs_shapes.items()) == list(STORED_OBS[name].items())


def test_task_packages_re_export_the_envs():
    from mjxgen.pick_place import PickPlaceConfig, PickPlaceEnv, PickPlaceState
    from mjxgen.reach import ReachConfig, ReachEnv, ReachState

    assert ENVS["reach"] is ReachEnv and ENVS["pick_place"] is PickPlaceEnv
    assert ReachEnv.config_class is ReachConfig and PickPlaceEnv.config_class is PickPlaceConfig
    assert ReachState._fields[0] == PickPlaceState._fields[0] == "data"
