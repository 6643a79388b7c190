"""GenerationConfig: everything that decides a generated dataset, checked field by field.

It is the settings table of generation: each field's name, default, type, check and help text are here, and
generate_dataset's parameters (mjxgen.generate.pipeline) and the CLIs' flags (mjxgen.cli) are made from it."""

from __future__ import annotations

import dataclasses
from typing import Any
import os

from mjxgen import checks
from mjxgen.checks import setting
from mjxgen.kernels.randomize import RandomizationConfig
from mjxgen.runtime.distributed import config_of
from mjxgen.envs import env_class, env_config_type
from mjxgen.data import formats
from mjxgen.render.camera import Camera
from mjxgen.data.writer import COMPRESSIONS, ON_INVALID

# Settings that don't change the data: they may differ between a run and its resumption.
_RUN_ONLY = ("output_path", "overwrite", "resume", "progress", "rollout", "distributed")
# How the generator simulates: "stream" (auto-reset slots, no padding) or "fixed" (rollout_batch's horizon).
ROLLOUTS = ("stream", "fixed")
RENDERERS = ("jax", "mujoco")  # who draws the camera images
# Seed 000's parameters of generate_dataset, in its order: they may be given by position, the rest by keyword.
SEED_000_PARAMETERS = ("env_name", "n_episodes", "output_path", "policy_type", "domain_randomization", "max_steps",
                       "seed")


def _env_name(name: str, value) -> str:
    env_class(value)  # a TypeError or ValueError naming the registered envs
    return value


def _text(name: str, value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__} {value!r}")
    return value


def _randomization(name: str, value) -> bool | RandomizationConfig:
    """False, True (normalized to RandomizationConfig(): the default ranges) or a RandomizationConfig."""
    if checks.is_bool(value):
        return RandomizationConfig() if value else False
    if not isinstance(value, RandomizationConfig):
        raise TypeError(f"{name} must be False, True or a RandomizationConfig, got {type(value).__name__} {value!r}")
    return value


def _image_size(name: str, value) -> tuple[int, int]:
    if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(checks.is_int(v) for v in value):
        raise TypeError(f"{name} must be two integers (H, W), got {value!r}")
    if not all(0 < v <= 480 for v in value):
        raise ValueError(f"{name} must be two integers (H, W) in 1..480, got {tuple(value)!r}")
    return int(value[0]), int(value[1])


def _layout(name: str, value) -> str:
    """A registered format's option (mjxgen.data.formats.options(): episodes, flat, and any format added since)."""
    return checks.choice(name, value, formats.options())


def _distributed(name: str, value):
    return config_of(value)  # None, or a DistributedConfig (True: from the cluster's environment)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GenerationConfig:
    """Everything that decides a generated dataset. Validated on construction (a TypeError or ValueError
    that names the field); stored in the file as JSON. Keyword-only: fields may be added without breaking
    anyone's call."""

    env_name: str = setting("reach", "the task: reach or pick_place", check=_env_name)
    n_episodes: int = setting(100, "number of episodes to collect", flag_help="episodes to generate",
                              check=checks.episode_count)
    output_path: str | os.PathLike = setting(
        "data/dataset.h5", "the HDF5 file to write; parent directories are created", flag="--output",
        flag_help="HDF5 file", doc="An existing file is refused unless overwrite=True.", check=checks.path)
    policy_type: str = setting(
        "random", "the policy: random (uniform actions), scripted (the task's expert) or dmp (a random DMP)",
        flag="--policy", check=_text)
    domain_randomization: bool | RandomizationConfig = setting(
        False, "per-episode domain randomization: False; True for the default ranges; or a RandomizationConfig",
        doc="True covers seed 000's light direction and friction, and more (see the README); a "
            "`mjxgen.kernels.randomize.RandomizationConfig` gives your ranges. Each episode's draw is stored under "
            "`episode_N/randomization/`.",
        flag="--randomize", flag_help="per-episode domain randomization: light, friction, masses, damping, gains, "
                                      "start noise, camera", check=_randomization)
    max_steps: int = setting(200, "the horizon T in control steps; an episode ends at its first success",
                             check=checks.positive_int)
    seed: int = setting(42, "the dataset seed: episode i's randomness is fold_in(key(seed), i), whatever the batch",
                        check=checks.seed)
    batch_size: int = setting(
        256, "most episodes simulated at once (slots: a slot whose episode ends starts the next one)",
        flag_help="episodes simulated at once, per device call", check=checks.positive_int)
    camera: bool = setting(False, "store observations/image (L, H, W, 3) uint8 from the scene's 'front' camera",
                           check=checks.boolean)
    image_size: tuple[int, int] = setting((64, 64), "(H, W) of the camera images, each in 1..480",
                                          flag_help="camera image size", check=_image_size,
                                          item_check=checks.positive_int, metavar=("H", "W"))
    renderer: str = setting(
        "jax", "who draws the camera images: jax (the batch renderer inside the simulation program) or mujoco "
               "(MuJoCo's OpenGL renderer on the host, from each step's recorded state: the reference)",
        choices=RENDERERS)
    compression: str = setting("gzip", "the HDF5 codec: gzip (seed 000's), lzf (faster) or none",
                               choices=COMPRESSIONS)
    on_invalid: str = setting(
        "drop", "episodes with NaN or inf: drop them (their ids are listed in the file's dropped_episodes) or "
                "flag them (episode attribute invalid = True)", choices=ON_INVALID)
    overwrite: bool = setting(False, "replace an existing output file (and any unfinished run of it)",
                              check=checks.boolean)
    resume: bool = setting(
        False, "continue the unfinished run in <output_path>.partial/ (after Ctrl-C, SIGTERM, SIGKILL or a failed "
               "write)", doc="The settings must match; the result equals an uninterrupted run.",
        flag_help="continue the unfinished run in <output>.partial/", check=checks.boolean)
    progress: bool = setting(True, "show a tqdm progress bar of episodes", flag_help="hide the progress bar",
                             check=checks.boolean)
    env_config: Any = setting(
        None, "the task's config (mjxgen.reach.ReachConfig, mjxgen.pick_place.PickPlaceConfig); None: its defaults",
        doc="E.g. another success threshold or target box. Stored in the file.", flag=None)
    layout: str = setting(
        "episodes", "the file layout: episodes (seed 000's: a group per episode) or flat (every step of every "
                    "episode concatenated per key, with meta/episode_ends; much faster to write)",
        doc="TrajectoryDataset reads both, and any format registered with mjxgen.data.formats.register.",
        check=_layout)
    dtype: str = setting("float64", "the stored float arrays: float64 (seed 000's) or float32 (half the size; the "
                                    "simulation is float32, so nothing is lost)", choices=formats.DTYPES)
    rollout: str = setting("stream", "how episodes are simulated: stream (slots restart as episodes end: no padded "
                                     "steps) or fixed (batches of max_steps steps); the same data",
                           choices=ROLLOUTS, flag=None)
    distributed: Any = setting(
        None, "None (this process alone); True (one of many processes, as the cluster's environment says: SLURM, "
              "...); or a mjxgen.runtime.distributed.DistributedConfig",
        doc="Each process runs its share of the blocks; process 0 writes the file, which equals the file of a "
            "one-process run. Every process returns the stats of the whole file. Not with layout='flat' yet.",
        flag=None, check=_distributed)  # the CLIs' --distributed, --coordinator, ... (mjxgen.cli.arguments)

    def __post_init__(self):
        checks.check_fields(self)
        if self.policy_type not in env_class(self.env_name).policy_names:
            raise ValueError(f"unknown policy {self.policy_type!r} for {self.env_name}; "
                             f"choose one of {', '.join(env_class(self.env_name).policy_names)}")
        env_config_type(self.env_name, self.env_config)  # a TypeError for a config of another task
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
