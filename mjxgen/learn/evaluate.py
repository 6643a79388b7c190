"""Evaluating a checkpoint in simulation: the trained network as a policy object for rollout_batch, every
episode in one batched rollout, seed 000's metrics, and the rollouts as a dataset (optional)."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mjxgen.kernels.randomize import RandomizationConfig
from mjxgen.learn import checkpoints as ckpt
from mjxgen import checks
from mjxgen.checks import setting
from mjxgen.envs import env_class, make_env
from mjxgen.data.hostbatch import HostBatch
from mjxgen.learn.models import ModelRegistry
from mjxgen.sim.rollout import Rollout, rollout_batch
from mjxgen.data.writer import DatasetWriter

# The default evaluation seed. Training data are usually generated with seed 42 (the CLIs' default); episode i
# of seed 1 is another episode than episode i of seed 42 (its key is fold_in(key(1), i)), so evaluation runs on
# episodes the policy has not seen.
EVAL_SEED = 1


@dataclasses.dataclass(frozen=True, kw_only=True)
class NetworkPolicy:
    """A trained network as a rollout_batch policy: the flat observation (the keys concatenated) goes to
    model.policy_step, whose state (the observation history, the overlapping action chunks) rides in the
    rollout's scan; the action is clipped to [-1, 1].

    It describes only the architecture and the observation keys, so two checkpoints of one architecture give
    equal (and equally hashed) policies and share one compiled rollout; the weights and the normalization are
    `policy_params`."""

    model: Any  # a hashable model from mjxgen.learn.models (BCModel)
    obs_keys: tuple[str, ...]  # concatenated in this order into the flat observation

    @property
    def name(self) -> str:  # the rollout's TRACE_COUNT label
        return self.model.kind

    def _flat(self, obs):
        return jnp.concatenate([jnp.ravel(obs[k]) for k in self.obs_keys])

    def init(self, key, obs, params):
        return self.model.policy_init(self._flat(obs))

    def act(self, state, key, obs, params):
        action, state = self.model.policy_step(params, state, self._flat(obs))
        return jnp.clip(action, -1.0, 1.0), state


def load_policy(path: str | os.PathLike, env) -> tuple[NetworkPolicy, dict, dict]:
    """(policy, its params, the checkpoint's config) for env; a ValueError (CheckpointError) names the file and
    the problem: not a checkpoint, another env, observation keys or shapes the env does not have."""
    config = ckpt.read_config(path)
    trained_on = config.get("env_name")
    if trained_on is not None and trained_on != env.name:
        raise ckpt.CheckpointError(f"{path} was trained on {trained_on}, not {env.name}")
    keys = tuple(config["obs_keys"])
    missing = [k for k in keys if k not in env.obs_shapes]
    if missing:
        raise ckpt.CheckpointError(f"{path} uses observations {', '.join(missing)} that {env.name} does not have "
                                   f"({', '.join(env.obs_shapes)})")
    wrong = [k for k in keys if list(env.obs_shapes[k]) != list(config["obs_shapes"].get(k, []))]
    if wrong:
        raise ckpt.CheckpointError(f"{path}: observations {', '.join(wrong)} have other shapes in {env.name}")
    model = ModelRegistry.from_json(config["model"])
    if model.state_dim != sum(int(np.prod(env.obs_shapes[k])) for k in keys):
        raise ckpt.CheckpointError(f"{path}: state_dim {model.state_dim} does not match its observation keys")
    loaded = ckpt.load(path)
    net = loaded.tree("net", jax.eval_shape(model.init, jax.random.key(0)))
    params = {"net": net, "norm": loaded.tree("norm", model.identity_norm())}
    return NetworkPolicy(model=model, obs_keys=keys), params, config


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalResult:
    n_episodes: int
    success_rate: float  # fraction of episodes that reached success
    mean_length: float  # steps up to the first success, else max_steps
    mean_reward: float  # mean total episode reward (over each episode's length), as seed 000's stats
    fresh: bool | None  # no episode (seed, id) is in the training data; None: the checkpoint does not say
    batch: int  # episodes per compiled call
    n_calls: int  # calls of the compiled rollout (chunks)
    wall_s: float  # the rollout, compile included
    rollout: Rollout  # on the host


def _env_name(name: str, value) -> str:
    env_class(value)  # a TypeError or ValueError naming the registered envs
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """How to evaluate a checkpoint: evaluate()'s parameters after the checkpoint, and `mjxgen eval`'s flags
    (mjxgen.cli.learn). Keyword-only, validated."""

    env_name: str = setting("reach", "the task; it must be the checkpoint's", check=_env_name)
    n_episodes: int = setting(100, "episodes to run (ids 0 .. n_episodes-1 of seed)", flag_help="episodes",
                              check=checks.episode_count)
    seed: int = setting(EVAL_SEED, "the episodes' seed; training data use 42 by default, so these are other "
                                   "episodes", check=checks.seed)
    max_steps: int = setting(200, "the horizon T", check=checks.positive_int)
    randomize: bool = setting(False, "domain randomization with the default ranges", check=checks.boolean)
    batch: int | None = setting(None, "episodes per compiled call (rollout_batch's chunk_size); None: all in one",
                                flag_help="episodes per compiled call (default: all)",
                                check=checks.optional(checks.positive_int))
    output: str | os.PathLike | None = setting(None, "write the rollouts as a dataset (policy 'bc') to this HDF5 "
                                                     "file", check=checks.optional(checks.path))
    overwrite: bool = setting(False, "replace an existing output file", flag_help="replace the --output file",
                              check=checks.boolean)

    def __post_init__(self):
        checks.check_fields(self)


@checks.with_settings(EvalConfig, positional=("env_name", "n_episodes"))
def evaluate(checkpoint: str | os.PathLike, cfg: EvalConfig) -> EvalResult:
    """Roll out a checkpoint's policy on episodes 0 .. n_episodes-1 of `seed` in one rollout_batch call.

    Args:
      checkpoint: a .npz written by the Trainer (`checkpoints/final.npz`).
      {settings}
    """
    env_name, n_episodes, seed, max_steps = cfg.env_name, cfg.n_episodes, cfg.seed, cfg.max_steps
    randomize, output, overwrite = cfg.randomize, cfg.output, cfg.overwrite
    batch = n_episodes if cfg.batch is None else min(cfg.batch, n_episodes)
    env = make_env(env_name)
    policy, params, config = load_policy(checkpoint, env)
    randomization = RandomizationConfig() if randomize else None
    writer = None if output is None else DatasetWriter(
        output, env_name=env.name, policy=policy.name, seed=seed, model_xml=env.xml, obs_shapes=env.obs_shapes,
        action_size=env.action_size,
        overwrite=overwrite, config={"checkpoint": str(checkpoint), "n_episodes": n_episodes, "max_steps": max_steps,
                                     "domain_randomization": dataclasses.asdict(randomization) if randomize else False,
                                     "env_config": env.config_dict(), "batch_size": batch})
    start = time.perf_counter()
    try:
        out = rollout_batch(env, policy, np.arange(n_episodes), seed=seed, max_steps=max_steps,
                            policy_params=params, randomization=randomization, chunk_size=batch)
        host = jax.device_get(out._replace(trajectory=out.trajectory._replace(qpos=None)))
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    wall = time.perf_counter() - start
    if writer is not None:
        try:
            writer.write_batch(_host_batch(host, randomize))
            writer.close()
        except BaseException:
            writer.abort()  # the unfinished run stays; its lock is released
            raise
    return EvalResult(n_episodes=n_episodes, **_metrics(host, max_steps), fresh=_fresh(config, seed, n_episodes),
                      batch=batch, n_calls=-(-n_episodes // batch), wall_s=wall, rollout=host)


def _metrics(host: Rollout, max_steps: int) -> dict:
    """Seed 000's metrics of host-side rollouts: success rate, mean length, mean total reward."""
    steps = np.arange(max_steps) < host.lengths[:, None]
    return {"success_rate": float(host.success.mean()), "mean_length": float(host.lengths.mean()),
            "mean_reward": float(np.where(steps, host.trajectory.rewards, 0.0).sum(axis=1).mean())}


def evaluate_params(env_name: str, model: Any, obs_keys: tuple[str, ...], params: dict, n_episodes: int, *,
                    seed: int = EVAL_SEED, max_steps: int = 200, randomize: bool = False) -> dict:
    """The metrics of weights still in memory (training's periodic evaluation): episodes 0 .. n_episodes-1 of
    `seed` in one rollout_batch call. Weights of one architecture share the compiled rollout."""
    policy = NetworkPolicy(model=model, obs_keys=tuple(obs_keys))
    out = rollout_batch(make_env(env_name), policy, np.arange(n_episodes), seed=seed, max_steps=max_steps,
                        policy_params=params, randomization=RandomizationConfig() if randomize else None)
    host = jax.device_get(out._replace(trajectory=out.trajectory._replace(qpos=None, observations={})))
    return _metrics(host, max_steps)


def _fresh(config: dict, seed: int, n_episodes: int) -> bool | None:
    """Whether episodes 0 .. n_episodes-1 of seed are outside the checkpoint's training data."""
    data = config.get("dataset")
    if not data:
        return None
    low, _ = data["episode_index"]
    return data["seed"] != seed or n_episodes - 1 < low


def _host_batch(host: Rollout, randomized: bool) -> HostBatch:
    """Every episode of a host-side Rollout, as the writer takes them (steps past each length dropped)."""
    tr = host.trajectory
    return HostBatch.from_padded(first=int(host.episode_ids.min()), end=int(host.episode_ids.max()) + 1,
                     episode_ids=host.episode_ids, lengths=host.lengths, success=host.success, valid=host.valid,
                     observations=tr.observations, actions=tr.actions, rewards=tr.rewards,
                     policy_record=host.policy_record,
                     randomization=host.randomization._asdict() if randomized else None,
                     mocap_pos=host.mocap_pos, qpos=None, final_observations=host.final_observations)
