"""GenerationConfig: everything that decides a generated dataset, checked field by field."""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

from mjxgen import checks
from mjxgen.kernels.randomize import RandomizationConfig
from mjxgen.render.camera import Camera
from mjxgen.runtime.distributed import config_of
from mjxgen.envs import env_class, env_config_type
from mjxgen.data import formats
from mjxgen.data.writer import COMPRESSIONS, ON_INVALID

# Settings that don't change the data: they may differ between a run and its resumption.
_RUN_ONLY = ("output_path", "overwrite", "resume", "progress", "rollout", "distributed")
# How the generator simulates: "stream" (auto-reset slots, no padding) or "fixed" (rollout_batch's horizon).
ROLLOUTS = ("stream", "fixed")
RENDERERS = ("jax", "mujoco")  # who draws the camera images


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
    batch_size: int = 256  # most episodes simulated at once (slots: see mjxgen.generate.simulate.slots)
    camera: bool = False  # store observations/image (T, H, W, 3) uint8 from the scene's "front" camera
    image_size: tuple[int, int] = (64, 64)  # (H, W) of the camera images
    # who draws them: "jax", the batch renderer inside the simulation program (mjxgen.kernels.raycast), or
    # "mujoco", MuJoCo's OpenGL renderer on the host, from each step's recorded state (the reference)
    renderer: str = "jax"
    compression: str = "gzip"  # HDF5 codec: gzip, lzf or none
    on_invalid: str = "drop"  # episodes with NaN/inf: "drop" (listed in dropped_episodes) or "flag" (attr invalid)
    overwrite: bool = False  # replace an existing output file (and any unfinished run of it)
    resume: bool = False  # continue the unfinished run in <output_path>.partial/ (same settings required)
    progress: bool = True  # show a tqdm bar of episodes
    env_config: Any = None  # the task's config (ReachConfig, PickPlaceConfig); None: the task's defaults
    layout: str = "episodes"  # "episodes": seed 000's group per episode; "flat": arrays of all steps + episode_ends
    dtype: str = "float64"  # the stored float arrays: "float64" (seed 000) or "float32"
    rollout: str = "stream"  # "stream" or "fixed": the same data, fewer simulated steps with "stream"
    # None: one process; True or a mjxgen.runtime.distributed.DistributedConfig: one of many (normalized to the config)
    distributed: Any = None

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        env_cls = env_class(self.env_name)  # a TypeError or ValueError naming env_name
        set_("n_episodes", checks.episode_count("n_episodes", self.n_episodes))
        for name in ("max_steps", "batch_size"):
            set_(name, checks.positive_int(name, getattr(self, name)))
        set_("seed", checks.seed("seed", self.seed))
        if not isinstance(self.output_path, (str, os.PathLike)):
            raise TypeError(f"output_path must be a str or os.PathLike, got {type(self.output_path).__name__}")
        set_("output_path", os.fspath(self.output_path))
        if not isinstance(self.policy_type, str):
            raise TypeError(f"policy_type must be a str, got {type(self.policy_type).__name__} {self.policy_type!r}")
        if self.policy_type not in env_cls.policy_names:
            raise ValueError(f"unknown policy {self.policy_type!r} for {self.env_name}; "
                             f"choose one of {', '.join(env_cls.policy_names)}")
        dr = self.domain_randomization
        if checks.is_bool(dr):
            set_("domain_randomization", RandomizationConfig() if dr else False)
        elif not isinstance(dr, RandomizationConfig):
            raise TypeError("domain_randomization must be False, True or a RandomizationConfig, "
                            f"got {type(dr).__name__} {dr!r}")
        for name in ("camera", "overwrite", "resume", "progress"):
            set_(name, checks.boolean(name, getattr(self, name)))
        checks.choice("compression", self.compression, COMPRESSIONS)
        checks.choice("on_invalid", self.on_invalid, ON_INVALID)
        checks.choice("layout", self.layout, formats.options())
        checks.choice("dtype", self.dtype, formats.DTYPES)
        checks.choice("rollout", self.rollout, ROLLOUTS)
        checks.choice("renderer", self.renderer, RENDERERS)
        size = self.image_size
        if (not isinstance(size, (tuple, list)) or len(size) != 2 or not all(checks.is_int(v) for v in size)):
            raise TypeError(f"image_size must be two integers (H, W), got {size!r}")
        if not all(0 < v <= 480 for v in size):
            raise ValueError(f"image_size must be two integers (H, W) in 1..480, got {tuple(size)!r}")
        set_("image_size", (int(size[0]), int(size[1])))
        env_config_type(self.env_name, self.env_config)  # a TypeError for a config of another task
        set_("distributed", config_of(self.distributed))
        if self.distributed is not None and self.layout == "flat":  # its shards' rows are aligned run-wide
            raise ValueError("layout 'flat' cannot be written by several processes yet (distributed); use the "
                             "'episodes' layout")

    @property
    def device_camera(self) -> Camera | None:
        """The camera the simulation program renders (camera on, the JAX renderer), or None."""
        return Camera(*self.image_size) if self.camera and self.renderer == "jax" else None

    @property
    def randomization(self) -> RandomizationConfig | None:
        """The randomization ranges, or None when randomization is off."""
        return self.domain_randomization or None

    def settings(self) -> dict:
        """What shapes the data, as stored in the file (JSON) and compared on resume: every field except
        where the output goes and how the run is shown."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in _RUN_ONLY}
