"""robomimic's HDF5 (what robomimic 0.3's SequenceDataset reads):

    data/demo_<i>/obs/<key>        (L, ...)   the observation before each action (the source's dtype)
    data/demo_<i>/next_obs/<key>   (L, ...)   the observation after it: obs[t + 1], and the stored final one last
    data/demo_<i>/actions          (L, A)
    data/demo_<i>/rewards          (L,)
    data/demo_<i>/dones            (L,) int64 1 where s' is a success state (robomimic's default done_mode 0):
                                              the source's `terminated`
    data/demo_<i>.attrs            num_samples = L
    data.attrs                     total (steps), env_args (JSON: env_name, type, env_kwargs)
    mask/train, mask/valid         demo names (bytes), a random split of val_fraction from the file's seed

i is the source's episode id (the PushT sample's index). PushT observations are split into agent_pos (2) and
block_pose (3: x, y, angle). env_args: PushT is a gym env (type 2, robomimic's EnvType.GYM_TYPE: gym_pusht/PushT-v0
with mjxgen's kwargs); the arm tasks are no env robomimic can build, so their type is "mjxgen" and env_kwargs hold
the file's env config.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from mjxgen.export import Export, Options, register
from mjxgen.export.sources import Source

GYM_TYPE = 2  # robomimic.envs.env_base.EnvType.GYM_TYPE


def env_args(source: Source) -> dict:
    if source.kind == "pusht":
        from mjxgen.pusht.execute import ENV_ID, ENV_KWARGS

        return {"env_name": ENV_ID, "type": GYM_TYPE, "env_kwargs": dict(ENV_KWARGS)}
    return {"env_name": source.kind, "type": "mjxgen", "env_kwargs": source.config.get("env_config", {})}


def split(names: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, valid): round(fraction * E) demos, at least one where fraction > 0 and E > 1, never all, drawn with
    NumPy's default_rng(seed)."""
    n = len(names)
    k = 0 if fraction == 0 or n < 2 else min(n - 1, max(1, round(fraction * n)))
    valid = set(np.random.default_rng(seed).choice(n, size=k, replace=False).tolist())
    return [m for i, m in enumerate(names) if i not in valid], [m for i, m in enumerate(names) if i in valid]


class RobomimicExport(Export):
    name = "robomimic"
    output_kind = "a robomimic HDF5 file"
    needs_final_observation = True

    def owns(self, path: Path) -> bool:
        try:
            with h5py.File(path, "r") as f:
                return "format" not in f.attrs and "data" in f and "env_args" in f["data"].attrs and "mask" in f
        except OSError:
            return False

    def write(self, source: Source, output: Path, options: Options) -> dict:
        names, total = [], 0
        with h5py.File(output, "w") as f:
            data = f.create_group("data")
            for ep in self.progress(source, options):
                name = f"demo_{ep.index}"
                g = data.create_group(name)
                obs, next_obs = g.create_group("obs"), g.create_group("next_obs")
                for key, rows in ep.observations.items():
                    obs.create_dataset(key, data=rows)
                    next_obs.create_dataset(key, data=np.concatenate([rows[1:], ep.final[key][None]]))
                g.create_dataset("actions", data=ep.actions)
                g.create_dataset("rewards", data=ep.rewards)
                g.create_dataset("dones", data=ep.terminated.astype(np.int64))
                g.attrs["num_samples"] = ep.length
                names.append(name)
                total += ep.length
            data.attrs["total"] = total
            data.attrs["env_args"] = json.dumps(env_args(source), indent=4)
            train, valid = split(names, options.val_fraction, source.seed)
            for mask, members in (("train", train), ("valid", valid)):
                f.create_dataset(f"mask/{mask}", data=np.array(members, dtype="S"))
            f.attrs.update({"mjxgen_source": source.path.name, "mjxgen_seed": source.seed})
        return {"episodes": len(names), "frames": total, "train": len(train), "valid": len(valid)}


ROBOMIMIC = register(RobomimicExport())
