"""The reach acceptance numbers at full size: 512 episodes of 200 steps per policy."""

import jax
import numpy as np
import pytest

from mjxgen.rollout import rollout_batch

N, T = 512, 200


@pytest.mark.slow
@pytest.mark.parametrize("policy, low, high", [("scripted", 0.95, 1.0), ("random", 0.0, 0.05)])
def test_success_rates(reach_env, policy, low, high):
    out = jax.device_get(rollout_batch(reach_env, policy, np.arange(N), seed=42, max_steps=T))
    rate = out.success.mean()
    print(f"{policy}: success {rate:.3f}, mean length {out.lengths.mean():.1f}")
    assert low <= rate <= high
