"""The acceptance numbers at full size: 512 episodes of 200 steps per task and policy."""

import jax
import numpy as np
import pytest

from mjxgen import make_env
from mjxgen.sim.rollout import rollout_batch

N, T = 512, 200


@pytest.mark.slow
@pytest.mark.parametrize(
    "env_name, policy, low, high",
    [("reach", "scripted", 0.95, 1.0), ("reach", "random", 0.0, 0.05),
     ("pick_place", "scripted", 0.90, 1.0), ("pick_place", "random", 0.0, 0.05)],
)
def test_success_rates(env_name, policy, low, high):
    out = jax.device_get(rollout_batch(make_env(env_name), policy, np.arange(N), seed=42, max_steps=T))
    rate = out.success.mean()
    print(f"{env_name}/{policy}: success {rate:.3f}, mean length {out.lengths.mean():.1f}")
    assert low <= rate <= high
