"""What an export reads: an arm-task file (reach, pick_place; either layout) through its format's reader, or a PushT
file (seed 003's samples), as whole episodes in one form (Episode), in file order.

Arm files are opened and checked as TrajectoryDataset opens them (mjxgen.data.files.open_run, the format's reader
and index, the stated totals); episodes flagged invalid (NaN/inf kept by on_invalid="flag") are left out. A PushT
sample's L steps are its executed actions; its observations (L + 1, 5) split into the agent's position and the
block's pose, the last one being the observation after the last action. PushT camera frames are replayed
(mjxgen.export.replay)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from mjxgen import checks
from mjxgen.data import files as data_files
from mjxgen.data import validate
from mjxgen.data.formats import IMAGE, DatasetFormatError, checking, first_line, samples, step_flags
from mjxgen.data.stats import RunStats


@dataclasses.dataclass
class Episode:
    """One episode of L steps, as every export reads it."""

    index: int  # the source's id: the arm episode's id, the PushT sample's index
    observations: dict[str, np.ndarray]  # key -> (L, ...): each observation before its step's action
    final: dict[str, np.ndarray] | None  # key -> (...): the observation after the last action (None: not stored)
    actions: np.ndarray  # (L, A)
    rewards: np.ndarray  # (L,)
    terminated: np.ndarray  # (L,) bool: True at the last step where success ended the episode
    truncated: np.ndarray  # (L,) bool: True at the last step where anything else ended it
    frames: np.ndarray | None = None  # (L + 1 for PushT, L for arm, H, W, 3) uint8 where images were asked for
    reset_seed: int | None = None  # PushT: the gym-pusht reset seed

    @property
    def length(self) -> int:
        return len(self.actions)


class Source:
    """A dataset file to export. Subclasses fill the attributes and `episodes`."""

    kind: str  # the task: "reach", "pick_place" or "pusht"
    path: Path
    attrs: dict  # the file's attributes
    config: dict  # its config attribute, parsed
    seed: int
    policy: str
    fps: float | None  # control steps per second (None: the file does not say)
    keys: dict[str, tuple[int, ...]]  # observation key -> shape, in stored order
    dtype: np.dtype  # the stored float arrays'
    action_names: tuple[str, ...]
    action_bounds: tuple[float, float]
    state_keys: tuple[str, ...]  # the agent's own state (LeRobot's observation.state); the rest is the environment's
    lengths: np.ndarray  # (E,) of the episodes exported
    image_size: tuple[int, int] | None  # (H, W) of the camera frames it can give; None: none
    has_final: bool  # whether it stores the observation after each episode's last action
    replay_s: float = 0.0  # seconds spent replaying camera frames (PushT)

    def episodes(self, images: bool = False) -> Iterator[Episode]:
        raise NotImplementedError

    def names(self, key: str) -> list[str]:
        """Per-dimension names of an observation key's flattened values."""
        shape = self.keys[key]
        size = int(np.prod(shape))
        axes = {3: "xyz", 4: "wxyz"}.get(size) if key.endswith(("_pos", "_quat")) else None
        return [key] if size == 1 else [f"{key}_{axes[i] if axes else i}" for i in range(size)]

    @property
    def versions(self) -> dict:
        return checks.json_text("versions", self.attrs["versions"]) if "versions" in self.attrs else {}

    def close(self) -> None:
        pass


def open_source(path) -> Source:
    """The arm or PushT file at path, opened and checked; a DatasetFormatError (one line) for anything else."""
    try:
        source, complete, attrs, fmt = data_files.open_run(path)
    except FileNotFoundError as e:
        raise DatasetFormatError(str(e)) from None
    if fmt is samples.SAMPLES:
        return PushtSource(source, attrs)
    if fmt.option is None:
        raise DatasetFormatError(f"{source} is a {fmt.attr} file, which no export reads")
    return ArmSource(source, attrs, fmt)


ARM_STATE_KEYS = ("joint_pos", "joint_vel", "gripper_pos")  # proprioception; the others describe the scene
ARM_ACTION_NAMES = ("ee_dx", "ee_dy", "ee_dz", "gripper")  # the arm's 4-D action: TCP step (x max_ee_step), opening


class ArmSource(Source):
    """A reach or pick_place file in either layout, read through its format's reader."""

    action_names, action_bounds = ARM_ACTION_NAMES, (-1.0, 1.0)

    def __init__(self, path: Path, attrs: dict, fmt):
        self.path, self.attrs, self.kind = path, attrs, str(attrs.get("env_name", "arm"))
        self.config = checks.json_text("config", attrs["config"])
        self.seed, self.policy = int(attrs["seed"]), str(attrs.get("policy", "unknown"))
        self.dtype = np.dtype(str(attrs.get("dtype", "float64")))
        self._files = [h5py.File(p, "r") for p in data_files.paths(path)]
        try:
            self._reader = fmt.reader(path, self._files, attrs)
            self._index = index = self._reader.index()
            validate.totals(path, attrs, index, RunStats.of_files(fmt, data_files.paths(path)), True)
            shapes = checks.json_text("shapes", attrs["shapes"]) if "shapes" in attrs else {}
            self._positions = np.flatnonzero(~index.invalid)
            self.lengths, self.ids = index.lengths[self._positions], index.episode_index[self._positions]
            self._success = index.success[self._positions]
            names = tuple(k for k in index.keys if k != IMAGE)
            self.keys = {k: tuple(shapes.get("observations", {}).get(k) or self._shape(k)) for k in names}
            if not len(self.lengths):
                raise DatasetFormatError(f"{path} holds no valid episodes")
            self.has_final = self._reader.final_observation(0, names[:1]) is not None
            self.fps = control_rate(self.config)
            self.image_size = None if IMAGE not in index.keys else tuple(int(n) for n in shapes["image"][:2]) \
                if "image" in shapes else tuple(self._reader.frames(0, 0, 1).shape[1:3])
        except DatasetFormatError:
            self.close()
            raise
        except (OSError, KeyError, ValueError, TypeError, IndexError) as e:
            self.close()
            raise DatasetFormatError(f"{path}: unreadable or malformed ({first_line(e)})") from None
        self.state_keys = tuple(k for k in self.keys if k in ARM_STATE_KEYS)

    def _shape(self, key: str) -> tuple[int, ...]:
        """A version 1 file declares no shapes: its first episode's."""
        return self._reader.episode(0, (key,), int(self._index.lengths[0]))["observations"][key].shape[1:]

    def episodes(self, images: bool = False) -> Iterator[Episode]:
        keys = tuple(self.keys)
        for e, p in enumerate(self._positions):
            p, n = int(p), int(self.lengths[e])
            try:
                arrays = self._reader.episode(p, keys, n)
                flags = self._reader.flags(p, n) or step_flags(np.array([n]), self._success[e:e + 1])
                final = self._reader.final_observation(p, keys)
                frames = self._reader.frames(p, 0, n) if images else None
            except DatasetFormatError:
                raise
            except (OSError, KeyError, ValueError, TypeError) as err:
                raise DatasetFormatError(f"{self.path}: episode {int(self.ids[e])} is unreadable "
                                         f"({first_line(err)})") from None
            yield Episode(int(self.ids[e]), arrays["observations"], final, arrays["actions"], arrays["rewards"],
                          np.asarray(flags[0], bool), np.asarray(flags[1], bool), frames)

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files = []


def control_rate(config: dict) -> float | None:
    """1 / the env config's control_dt (the arm files' `config` attribute, env_config.control_dt); None if absent."""
    env = config.get("env_config") if isinstance(config, dict) else None
    dt = env.get("control_dt") if isinstance(env, dict) else None
    return 1.0 / float(dt) if isinstance(dt, (int, float)) and not isinstance(dt, bool) and dt > 0 else None


PUSHT_KEYS = {"agent_pos": (2,), "block_pose": (3,)}  # gym-pusht's state observation: agent x, y; block x, y, angle
PUSHT_NAMES = {"agent_pos": ["agent_x", "agent_y"], "block_pose": ["block_x", "block_y", "block_angle"]}


class PushtSource(Source):
    """A PushT file: every sample group, in index order. Frames are replayed in gym-pusht (mjxgen.export.replay)."""

    kind, policy, state_keys = "pusht", "random-dmp", ("agent_pos",)
    keys, dtype, has_final = PUSHT_KEYS, np.dtype(samples.SAMPLE_DTYPE), True
    action_names, action_bounds = ("target_x", "target_y"), (0.0, 512.0)

    def __init__(self, path: Path, attrs: dict):
        from mjxgen.export import replay

        self.path, self.attrs = path, attrs
        self.config = checks.json_text("config", attrs["config"])
        self.seed, self.fps, self.image_size = int(attrs["seed"]), float(replay.CONTROL_HZ), replay.IMAGE_SIZE
        self._file = h5py.File(path, "r")
        try:
            names = sorted(n for n in self._file if n.startswith(samples.PREFIX) and n[len(samples.PREFIX):].isdigit())
            if len(names) != len(self._file):
                raise DatasetFormatError(f"{path}: a PushT file holds only {samples.PREFIX}N groups")
            steps = [int(checking.group(path, self._file, n).attrs["executed_steps"]) for n in names]
        except (KeyError, ValueError, TypeError) as e:
            self.close()
            raise e if isinstance(e, DatasetFormatError) else \
                DatasetFormatError(f"{path}: unreadable or malformed ({first_line(e)})") from None
        self._names = [n for n, s in zip(names, steps) if s > 0]  # a sample with no step holds no transition
        self.lengths = np.array([s for s in steps if s > 0], np.int64)
        if not len(self.lengths):
            self.close()
            raise DatasetFormatError(f"{path} holds no sample with an executed step")

    def names(self, key: str) -> list[str]:
        return PUSHT_NAMES[key]

    def episodes(self, images: bool = False) -> Iterator[Episode]:
        from mjxgen.export import replay

        for name, n in zip(self._names, self.lengths):
            g, n = checking.group(self.path, self._file, name), int(n)
            obs = checking.read(self.path, name, g, "observations", n + 1, (5,))
            actions = checking.read(self.path, name, g, "executed_actions_pixels", n, (2,))
            rewards = checking.read(self.path, name, g, "rewards", n, ())
            done = np.zeros(n, bool)
            done[-1] = True
            won = bool(g.attrs["terminated"])
            ep = Episode(int(g.attrs["sample_index"]), {"agent_pos": obs[:-1, :2], "block_pose": obs[:-1, 2:]},
                         {"agent_pos": obs[-1, :2], "block_pose": obs[-1, 2:]}, actions, rewards,
                         done & won, done & (not won), reset_seed=int(g.attrs["seed"]))
            if images:
                ep.frames, seconds = replay.frames(self.path, name, ep.reset_seed, actions, obs)
                self.replay_s += seconds
            yield ep

    @property
    def gym_pusht_version(self) -> str | None:
        return self.versions.get("gym-pusht")

    def close(self) -> None:
        from mjxgen.export import replay

        replay.close()
        if getattr(self, "_file", None) is not None:
            self._file.close()
            self._file = None

