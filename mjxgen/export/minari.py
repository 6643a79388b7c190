"""Minari datasets, written by Minari's own API (`minari.create_dataset_from_buffers`, Minari 0.5): OUT becomes a
Minari datasets root holding one dataset, `mjxgen/<task>/<policy>-v0`, which `minari.load_dataset(id)` reads with
MINARI_DATASETS_PATH=OUT.

Each episode is an EpisodeBuffer of N + 1 observations (the stored final one last), N actions, rewards,
terminations (success ended it) and truncations (anything else ended it, the last step only). Arm observations are
a Dict space of the file's keys (Box, unbounded, the file's dtype), actions Box(-1, 1, (4,)). PushT datasets carry
gym-pusht's own env spec and spaces (`recover_environment()` builds the env; observations are its 5-D state,
float64 as the space says, actions in pixels) and each episode's reset seed. The task text, where given, is the
dataset's description."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path

import numpy as np

from mjxgen.export import Export, Options, register
from mjxgen.export.sources import Source

DATA_FORMAT = "hdf5"


def dataset_id(source: Source) -> str:
    return f"mjxgen/{source.kind}/{source.policy}-v0"


@contextlib.contextmanager
def datasets_path(root: Path):
    """MINARI_DATASETS_PATH=root while Minari writes (it reads the variable on every call)."""
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


class MinariExport(Export):
    name = "minari"
    output_kind = "a Minari datasets directory"
    holds_task = needs_final_observation = True

    def owns(self, path: Path) -> bool:
        return path.is_dir() and any(path.glob("**/data/metadata.json"))

    def write(self, source: Source, output: Path, options: Options) -> dict:
        try:
            import minari
            from minari.data_collector import EpisodeBuffer
        except ImportError as e:
            raise ValueError(f"the minari export needs Minari ({e}): pip install 'mjxgen[export]'") from None
        env, spaces = _spaces(source)
        dtype = spaces["observation_space"].dtype if source.kind == "pusht" else None

        def buffers():
            for ep in self.progress(source, options):
                obs = {k: np.concatenate([v, ep.final[k][None]]) for k, v in ep.observations.items()}
                if dtype is not None:  # gym-pusht's Box(5,): agent x, y, block x, y, angle
                    obs = np.concatenate([obs["agent_pos"], obs["block_pose"]], axis=1).astype(dtype)
                actions = ep.actions.astype(spaces["action_space"].dtype)
                yield EpisodeBuffer(observations=obs, actions=actions, rewards=ep.rewards, terminations=ep.terminated,
                                    truncations=ep.truncated, seed=ep.reset_seed)

        output.mkdir(parents=True)
        ident = dataset_id(source)
        description = options.task or (f"mjxgen {source.kind} dataset: {len(source.lengths)} episodes of the "
                                       f"{source.policy} policy, seed {source.seed} ({source.path.name})")
        requirements = [f"gym-pusht=={source.versions['gym-pusht']}"] if "gym-pusht" in source.versions else None
        try:
            with datasets_path(output), warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=UserWarning, module=r"minari\.")
                dataset = minari.create_dataset_from_buffers(
                    ident, buffers(), env=env, algorithm_name=f"mjxgen {source.policy}", author="mjxgen",
                    description=description, requirements=requirements, data_format=DATA_FORMAT, **spaces)
                steps = int(dataset.total_steps)
                del dataset
        finally:
            if env is not None:
                env.close()
        return {"episodes": len(source.lengths), "frames": steps, "dataset_id": ident}


def _spaces(source: Source):
    """(gym env or None, {"observation_space", "action_space"})."""
    from gymnasium import spaces

    if source.kind == "pusht":
        from mjxgen.pusht.execute import make_env

        env = make_env()
        return env, {"observation_space": env.observation_space, "action_space": env.action_space}
    obs = spaces.Dict({k: spaces.Box(-np.inf, np.inf, shape, source.dtype) for k, shape in source.keys.items()})
    low, high = source.action_bounds
    return None, {"observation_space": obs,
                  "action_space": spaces.Box(low, high, (len(source.action_names),), source.dtype)}


MINARI = register(MinariExport())
