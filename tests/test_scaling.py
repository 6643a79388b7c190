"""Scaling out: the same episodes on several devices give the same data as on one.

Forced CPU devices (`--xla_force_host_platform_device_count`) must be set before JAX starts, so the
multi-device side runs in a subprocess. The one-device side runs here, on shapes the suite already compiles
(reach/scripted 8 x 20 as tests/test_durable.py, pick_place/scripted 16 x 200 as conftest's fixture).
"""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from conftest import DURABLE_BATCH, DURABLE_HORIZON, PP_BATCH, PP_HORIZON
from kernels.randomize import RandomizationConfig
from mjxgen.rollout import rollout_batch

CASES = {  # name: (env, policy, n episodes, horizon, seed, randomized)
    "reach": ("reach", "scripted", DURABLE_BATCH, DURABLE_HORIZON, 11, False),
    "pick_place": ("pick_place", "scripted", PP_BATCH, PP_HORIZON, 3, True),
}

_TWO_DEVICES = """
import sys, jax, numpy as np, mjxgen
from kernels.randomize import RandomizationConfig
mjxgen.configure()
assert len(jax.local_devices()) == 2, jax.local_devices()
out = {}
for name, (env, policy, n, horizon, seed, randomized) in CASES.items():
    r = jax.device_get(mjxgen.rollout_batch(env, policy, np.arange(n), seed=seed, max_steps=horizon,
                                            randomization=RandomizationConfig() if randomized else None))
    for i, leaf in enumerate(jax.tree.leaves(r)):
        out[f"{name}/{i}"] = np.asarray(leaf)
np.savez(sys.argv[1], **out)
"""


def forced_devices_env(n: int) -> dict:
    """This process's environment with n forced CPU devices, appended to the user's XLA_FLAGS."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    return env


@pytest.fixture(scope="module")
def two_device_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("scaling") / "two.npz"
    code = f"CASES = {CASES!r}\n" + textwrap.dedent(_TWO_DEVICES)
    proc = subprocess.run([sys.executable, "-c", code, str(path)], env=forced_devices_env(2), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(path)


@pytest.mark.parametrize("name", list(CASES))
def test_two_devices_equal_one_device(two_device_run, name):
    env, policy, n, horizon, seed, randomized = CASES[name]
    one = jax.device_get(rollout_batch(env, policy, np.arange(n), seed=seed, max_steps=horizon,
                                       randomization=RandomizationConfig() if randomized else None))
    leaves = jax.tree.leaves(one)
    assert len(leaves) == len([k for k in two_device_run.files if k.startswith(f"{name}/")])
    for i, leaf in enumerate(leaves):
        np.testing.assert_array_equal(two_device_run[f"{name}/{i}"], np.asarray(leaf), err_msg=f"{name} leaf {i}")


def test_devices_argument_is_checked(reach_env):
    with pytest.raises(ValueError, match="at least one device"):
        rollout_batch(reach_env, "scripted", np.arange(2), devices=[])
