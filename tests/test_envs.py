"""The env protocol and registry: every registered env satisfies `Env`; observation shapes come from observe."""

import ast
from pathlib import Path

import pytest

import mjxgen.envs
from mjxgen.envs import ENVS, Env, make_env

# The observation keys in the order they are stored in every dataset (seed 000's layout, then pick_place's).
STORED_OBS = {
    "reach": {"joint_pos": (7,), "joint_vel": (7,), "ee_pos": (3,), "target_pos": (3,)},
    "pick_place": {"joint_pos": (7,), "joint_vel": (7,), "ee_pos": (3,), "target_pos": (3,), "object_pos": (3,),
                   "object_quat": (4,), "gripper_pos": (1,), "place_pos": (3,)},
}


@pytest.mark.parametrize("name", sorted(ENVS))
def test_registered_envs_satisfy_the_protocol(name):
    cls = ENVS[name]
    assert isinstance(cls, type)  # the class itself, not a loader function
    assert cls.name == name and cls.policy_names and isinstance(cls.config_class, type)
    env = make_env(name)
    assert isinstance(env, Env)
    assert env.substeps == env.config.arm.substeps


@pytest.mark.parametrize("name", sorted(STORED_OBS))
def test_obs_shapes_come_from_observe_in_stored_order(name):
    env = make_env(name)
    assert list(env.obs_shapes.items()) == list(STORED_OBS[name].items())
    assert env.obs_shapes is env.obs_shapes  # computed once per env


def test_task_packages_re_export_the_envs():
    from mjxgen.pick_place import PickPlaceConfig, PickPlaceEnv, PickPlaceState
    from mjxgen.reach import ReachConfig, ReachEnv, ReachState

    assert ENVS["reach"] is ReachEnv and ENVS["pick_place"] is PickPlaceEnv
    assert ReachEnv.config_class is ReachConfig and PickPlaceEnv.config_class is PickPlaceConfig
    assert ReachState._fields[0] == PickPlaceState._fields[0] == "data"


UPWARD = ("mjxgen.reach", "mjxgen.pick_place", "mjxgen.sim.rollout", "mjxgen.generate.pipeline", "mjxgen.data.writer", "mjxgen.cli")


def test_envs_import_nothing_above_them():
    for path in Path(mjxgen.envs.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for n in names:
                assert not n.startswith(UPWARD), f"{path.name} imports {n}"
