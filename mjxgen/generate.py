"""generate_dataset(): batches of episodes -> rollout on the device -> background HDF5 writer -> stats."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import signal
import time
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from mjxgen.envs import env_class, env_config_type, make_env
from mjxgen.rollout import Rollout, rollout_batch
from mjxgen.runtime import configure
from mjxgen.signals import Signalled, stop_on_signals
from kernels.randomize import RandomizationConfig
from mjxgen.writer import COMPRESSIONS, ON_INVALID, DatasetWriter

# Settings that don't change the data: they may differ between a run and its resumption.
_RUN_ONLY = ("output_path", "overwrite", "resume", "progress")


class GenerationInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run. Episodes [0, safe) are on disk in `partial`; resume=True continues."""

    def __init__(self, signum: int, safe: int, total: int, partial, unit: str = "episodes"):
        self.signum, self.safe, self.total, self.partial = signum, safe, total, partial
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}: {unit} 0 to {safe - 1} ({safe} of {total}) are safe in {partial}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class GenerationResult:
    """Seed 000's stats, plus how the run went."""

    stats: dict  # seed 000's keys, plus invalid_episodes
    wall_s: float  # the whole run, compile included
    simulated_steps: int  # control steps simulated, padding past episode ends included
    physics_steps: int  # simulated_steps x substeps
    batch_size: int  # episodes per device call
    n_batches: int
    frames: int = 0  # camera frames rendered (by the writer thread, while the device simulates)
    render_s: float = 0.0  # seconds the writer thread spent rendering them


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def _positive_int(name: str, value) -> int:
    if not _is_int(value):
        raise TypeError(f"{name} must be a positive integer, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _choice(name: str, value, choices) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {', '.join(map(repr, choices))}, got {type(value).__name__} {value!r}")
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class GenerationConfig:
    """Everything that decides a generated dataset. Validated on construction (a TypeError or ValueError
    that names the field); stored in the file as JSON. Keyword-only: fields may be added without breaking
    anyone's call."""

    env_name: str = "reach"  # the task
    n_episodes: int = 100  # episodes to collect
    output_path: str = "data/dataset.h5"  # the HDF5 file
    policy_type: str = "random"  # "random", "scripted" or "dmp"
    # per-episode domain randomization: False, True (the default ranges) or a RandomizationConfig (its ranges).
    # Normalized on construction: True becomes RandomizationConfig().
    domain_randomization: bool | RandomizationConfig = False
    max_steps: int = 200  # horizon T in control steps; an episode ends at its first success
    seed: int = 42  # episode i's randomness is fold_in(key(seed), i)
    batch_size: int = 256  # most episodes per device call
    camera: bool = False  # store observations/image (T, H, W, 3) uint8 from the scene's "front" camera
    image_size: tuple[int, int] = (64, 64)  # (H, W) of the camera images
    compression: str = "gzip"  # HDF5 codec: gzip, lzf or none
    on_invalid: str = "drop"  # episodes with NaN/inf: "drop" (listed in dropped_episodes) or "flag" (attr invalid)
    overwrite: bool = False  # replace an existing output file (and any unfinished run of it)
    resume: bool = False  # continue the unfinished run in <output_path>.partial/ (same settings required)
    progress: bool = True  # show a tqdm bar of episodes
    env_config: Any = None  # the task's config (ReachConfig, PickPlaceConfig); None: the task's defaults

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        env_cls = env_class(self.env_name)  # a TypeError or ValueError naming env_name
        for name in ("n_episodes", "max_steps", "batch_size"):
            set_(name, _positive_int(name, getattr(self, name)))
        if not _is_int(self.seed):
            raise TypeError(f"seed must be an integer in [0, 2**32), got {type(self.seed).__name__} {self.seed!r}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be an integer in [0, 2**32), got {self.seed!r}")
        set_("seed", int(self.seed))
        if not isinstance(self.output_path, (str, os.PathLike)):
            raise TypeError(f"output_path must be a str or os.PathLike, got {type(self.output_path).__name__}")
        set_("output_path", os.fspath(self.output_path))
        if not isinstance(self.policy_type, str):
            raise TypeError(f"policy_type must be a str, got {type(self.policy_type).__name__} {self.policy_type!r}")
        if self.policy_type not in env_cls.policy_names:
            raise ValueError(f"unknown policy {self.policy_type!r} for {self.env_name}; "
                             f"choose one of {', '.join(env_cls.policy_names)}")
        dr = self.domain_randomization
        if _is_bool(dr):
            set_("domain_randomization", RandomizationConfig() if dr else False)
        elif not isinstance(dr, RandomizationConfig):
            raise TypeError("domain_randomization must be False, True or a RandomizationConfig, "
                            f"got {type(dr).__name__} {dr!r}")
        for name in ("camera", "overwrite", "resume", "progress"):
            if not _is_bool(getattr(self, name)):
                raise TypeError(f"{name} must be True or False, got {type(getattr(self, name)).__name__} "
                                f"{getattr(self, name)!r}")
            set_(name, bool(getattr(self, name)))
        _choice("compression", self.compression, COMPRESSIONS)
        _choice("on_invalid", self.on_invalid, ON_INVALID)
        size = self.image_size
        if (not isinstance(size, (tuple, list)) or len(size) != 2 or not all(_is_int(v) for v in size)):
            raise TypeError(f"image_size must be two integers (H, W), got {size!r}")
        if not all(0 < v <= 480 for v in size):
            raise ValueError(f"image_size must be two integers (H, W) in 1..480, got {tuple(size)!r}")
        set_("image_size", (int(size[0]), int(size[1])))
        env_config_type(self.env_name, self.env_config)  # a TypeError for a config of another task

    @property
    def randomization(self) -> RandomizationConfig | None:
        """The randomization ranges, or None when randomization is off."""
        return self.domain_randomization or None

    def settings(self) -> dict:
        """What shapes the data, as stored in the file (JSON) and compared on resume: every field except
        where the output goes and how the run is shown."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in _RUN_ONLY}


def writer_batch(host: Rollout, keep: np.ndarray) -> dict:
    """The episodes of a host-side Rollout selected by keep (B,), in DatasetWriter.write_batch's format."""
    tr = host.trajectory
    ids = host.episode_ids[keep]
    return {
        "first": int(ids.min()),  # the shard covers episode ids [first, end)
        "end": int(ids.max()) + 1,
        "episode_ids": host.episode_ids[keep],
        "lengths": host.lengths[keep],
        "success": host.success[keep],
        "rewards": tr.rewards[keep],
        "actions": tr.actions[keep],
        "observations": {key: v[keep] for key, v in tr.observations.items()},
        "policy_record": {key: v[keep] for key, v in host.policy_record.items()},
        "randomization": {key: v[keep] for key, v in host.randomization._asdict().items()},
        "mocap_pos": host.mocap_pos[keep],
        "valid": host.valid[keep],
        "qpos": None if tr.qpos is None else tr.qpos[keep],
    }


def plan_batches(n_episodes: int, batch_size: int) -> tuple[int, int]:
    """(n_batches, episodes per batch): equal batches no larger than batch_size, so one compiled shape
    serves the whole run and the last batch wastes fewer than n_batches padding episodes."""
    n_batches = math.ceil(n_episodes / batch_size)
    return n_batches, math.ceil(n_episodes / n_batches)


def run_generation(cfg: GenerationConfig) -> GenerationResult:
    """Generate the dataset that cfg describes; return the stats together with timing.

    Raises GenerationInterrupted on SIGINT/SIGTERM and OSError when writing fails; in both cases the
    finished batches stay in `<output_path>.partial/` and `resume=True` continues the run."""
    configure()
    env = make_env(cfg.env_name, cfg.env_config)
    env.policy(cfg.policy_type)  # a ValueError for an unknown name, before the output file is created
    n_batches, per_batch = plan_batches(cfg.n_episodes, cfg.batch_size)
    settings = cfg.settings()
    writer = DatasetWriter(
        cfg.output_path,
        env_name=cfg.env_name,
        policy=cfg.policy_type,
        seed=cfg.seed,
        config=settings | {"batch_size": per_batch, "env_config": env.config_dict()},
        model_xml=env.xml,
        obs_keys=tuple(env.obs_shapes),
        compression=cfg.compression,
        overwrite=cfg.overwrite,
        resume=cfg.resume,
        on_invalid=cfg.on_invalid,
        randomized=cfg.randomization is not None,
        image_size=cfg.image_size if cfg.camera else None,
    )
    first_batch = -(-writer.done // per_batch)  # batches already on disk (a resumed run) are skipped

    def launch(k: int):
        ids = np.arange(k * per_batch, (k + 1) * per_batch)
        out = rollout_batch(env, cfg.policy_type, ids, seed=cfg.seed, max_steps=cfg.max_steps,
                            randomization=cfg.randomization)
        # The full qpos is needed on the host only to render images: don't transfer it otherwise.
        return out if cfg.camera else out._replace(trajectory=out.trajectory._replace(qpos=None))

    start = time.perf_counter()
    try:
        with stop_on_signals():
            bar_label = f"{cfg.env_name}/{cfg.policy_type}"
            with tqdm(total=cfg.n_episodes, initial=min(writer.done, cfg.n_episodes), unit="ep", desc=bar_label,
                      disable=not cfg.progress) as bar:
                pending = launch(first_batch) if first_batch < n_batches else None
                for k in range(first_batch, n_batches):
                    # Dispatch batch k+1 before fetching batch k: the device simulates while the host writes.
                    following = launch(k + 1) if k + 1 < n_batches else None
                    host = jax.device_get(pending)
                    keep = host.episode_ids < cfg.n_episodes  # the last batch may carry padding episodes
                    writer.write_batch(writer_batch(host, keep))
                    bar.update(int(keep.sum()))
                    pending = following
            writer.close()
    except Signalled as e:
        writer.abort()  # the batches already handed over are written: they are complete
        raise GenerationInterrupted(e.signum, writer.done, cfg.n_episodes, writer.store.partial) from None
    except OSError as e:
        writer.abort()
        raise OSError(f"{e}; episodes 0 to {writer.done - 1} are safe in {writer.store.partial}; "
                      "fix the cause and run again with --resume") from e
    except BaseException:
        writer.abort()
        raise
    wall = time.perf_counter() - start

    n = writer.episodes
    stats = {
        "total_episodes": n,
        "total_steps": writer.steps,
        "mean_episode_length": writer.steps / max(n, 1),
        "mean_reward": writer.reward_sum / max(n, 1),
        "success_rate": writer.successes / max(n, 1),
        "output_path": str(writer.path),
        "file_size_mb": writer.path.stat().st_size / 1e6,
        "invalid_episodes": writer.invalid,
    }
    simulated = (n_batches - first_batch) * per_batch * cfg.max_steps
    return GenerationResult(
        stats=stats,
        wall_s=wall,
        simulated_steps=simulated,
        physics_steps=simulated * env.arm.config.substeps,
        batch_size=per_batch,
        n_batches=n_batches,
        frames=writer.frames,
        render_s=writer.render_s,
    )


def generate_dataset(
    env_name: str = "reach",
    n_episodes: int = 100,
    output_path: str | os.PathLike = "data/dataset.h5",
    policy_type: str = "random",
    domain_randomization: bool | RandomizationConfig = False,
    max_steps: int = 200,
    seed: int = 42,
    *,
    batch_size: int = 256,
    camera: bool = False,
    image_size: tuple[int, int] = (64, 64),
    compression: str = "gzip",
    on_invalid: str = "drop",
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = True,
    env_config: Any = None,
) -> dict:
    """Simulate n_episodes in batches and write them to an HDF5 file in seed 000's layout.

    Seed 000's seven parameters may be given by position, in seed 000's order; the rest are keyword-only.
    Every argument is checked before anything is simulated or written: a wrong type is a TypeError and a
    wrong value a ValueError, each naming the argument.

    Args:
      env_name: "reach" or "pick_place".
      n_episodes: number of episodes to collect.
      output_path: the HDF5 file to write; parent directories are created. An existing file is refused
        unless overwrite=True.
      policy_type: "random" (uniform actions), "scripted" (the task's expert) or "dmp" (a random DMP).
      domain_randomization: False; True for the default ranges (seed 000's light direction and friction,
        and more: see the README); or a `kernels.randomize.RandomizationConfig` with your ranges. Each
        episode's draw is stored under `episode_N/randomization/`.
      max_steps: the horizon T; an episode ends at its first success.
      seed: episode i's randomness is fold_in(key(seed), i), whatever the batch size.
      batch_size: episodes simulated per device call (the largest batch used; batches are made equal).
      camera: store `observations/image` (L, H, W, 3) uint8 frames from the scene's "front" camera.
      image_size: (H, W) of the camera frames, each in 1..480.
      compression: "gzip" (default, seed 000), "lzf" (faster) or "none".
      on_invalid: episodes with NaN or inf (detected on the device): "drop" leaves them out (their ids are in
        the file's `dropped_episodes`), "flag" writes them with the episode attribute invalid = True.
      overwrite: replace an existing output file and any unfinished run of it.
      resume: continue the unfinished run in `<output_path>.partial/` (after Ctrl-C, SIGTERM, SIGKILL or a
        write error). The settings must match; the result equals an uninterrupted run.
      progress: show a tqdm progress bar of episodes.
      env_config: the task's config (`mjxgen.reach.ReachConfig`, `mjxgen.pick_place.PickPlaceConfig`), e.g.
        another success threshold or target box; None for the task's defaults. Stored in the file.

    Returns:
      Seed 000's stats: total_episodes, total_steps, mean_episode_length, mean_reward (mean total episode
      reward), success_rate, output_path, file_size_mb; and invalid_episodes (dropped or flagged).
      The output file exists only once the run is complete.
    """
    cfg = GenerationConfig(
        env_name=env_name, n_episodes=n_episodes, output_path=output_path, policy_type=policy_type,
        domain_randomization=domain_randomization, max_steps=max_steps, seed=seed, batch_size=batch_size,
        camera=camera, image_size=image_size, compression=compression, on_invalid=on_invalid,
        overwrite=overwrite, resume=resume, progress=progress, env_config=env_config,
    )
    return run_generation(cfg).stats
