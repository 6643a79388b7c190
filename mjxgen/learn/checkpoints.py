"""Checkpoints without pickle: one `.npz` file of named arrays, with a `config.json` member that describes them.

    final.npz
    ├── config.json             UTF-8 JSON: schema, version, model, observation keys, env, dataset, training
    │                           settings, step, versions, and the manifest of every array (shape, dtype)
    ├── net/layers/0/w.npy      arrays in NumPy's .npy format, written with allow_pickle=False
    ├── norm/obs_mean.npy
    └── opt/...                 the optimizer's state (for --resume)

`unzip -p final.npz config.json` shows the config. Loading reads the JSON with `json.loads` and every array with
`np.load(..., allow_pickle=False)`; an object array (a pickle payload), a member that is not in the manifest,
a shape or dtype that differs from it, or a config of another schema or version is refused with a
CheckpointError (a ValueError) naming the file. Nothing from the file is ever executed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

SCHEMA = "mjxgen-checkpoint"
SCHEMA_VERSION = 1
CONFIG_MEMBER = "config.json"
REQUIRED = {"schema": str, "schema_version": int, "model": dict, "obs_keys": list, "obs_shapes": dict,
            "step": int, "arrays": dict}


class CheckpointError(ValueError):
    """The file is not a readable mjxgen checkpoint (or holds something that must not be loaded)."""


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    config: dict  # the config.json member
    arrays: dict[str, np.ndarray]  # name -> array, e.g. "net/layers/0/w"

    def tree(self, prefix: str, template: Any) -> Any:
        """The arrays under `prefix/` as a pytree shaped like `template` (names from its key paths)."""
        return unflatten(template, self.arrays, prefix, self.config.get("path", ""))


def _key_name(key) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def flatten(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    """A pytree's leaves as NumPy arrays named `prefix/<key path>` ("net/layers/0/w")."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {"/".join([prefix, *(_key_name(k) for k in path)]): np.asarray(leaf) for path, leaf in leaves}


def unflatten(template: Any, arrays: dict[str, np.ndarray], prefix: str, where: str = "") -> Any:
    """Fill `template`'s leaves with arrays[prefix/<key path>]; a CheckpointError if one is missing or has another
    shape or dtype."""
    names = list(flatten(jax.tree.map(lambda x: np.zeros((), np.int8), template), prefix))
    leaves = jax.tree.leaves(template)
    out = []
    for name, leaf in zip(names, leaves):
        if name not in arrays:
            raise CheckpointError(f"{where}: checkpoint has no array {name!r}")
        a, shape = arrays[name], tuple(getattr(leaf, "shape", np.shape(leaf)))
        dtype = np.dtype(getattr(leaf, "dtype", None) or type(leaf))
        if a.shape != shape or a.dtype != dtype:
            raise CheckpointError(f"{where}: {name} is {a.dtype}{list(a.shape)}, expected {dtype}{list(shape)}")
        out.append(a)
    return jax.tree.unflatten(jax.tree.structure(template), out)


def save(path: str | os.PathLike, config: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write arrays and config (with the schema and the manifest added) to path, atomically (tmp + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v, order="C") for k, v in arrays.items()}  # (ascontiguousarray makes 0-d 1-d)
    manifest = {k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in arrays.items()}
    config = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **config, "arrays": manifest}
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(CONFIG_MEMBER, json.dumps(config, indent=1, sort_keys=True))
        for name, a in arrays.items():
            with z.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, a, allow_pickle=False)
    os.replace(tmp, path)
    return path


def read_config(path: str | os.PathLike) -> dict:
    """The checked config.json of a checkpoint; a CheckpointError names the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not an mjxgen checkpoint (not an .npz archive)")
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read(CONFIG_MEMBER).decode("utf-8"))
    except KeyError:
        raise CheckpointError(f"{path} is not an mjxgen checkpoint (no {CONFIG_MEMBER})") from None
    except (zipfile.BadZipFile, UnicodeDecodeError, ValueError, OSError) as e:
        raise CheckpointError(f"{path}: unreadable {CONFIG_MEMBER} ({e})") from None
    if not isinstance(config, dict) or config.get("schema") != SCHEMA:
        raise CheckpointError(f"{path} is not an mjxgen checkpoint (schema is not {SCHEMA!r})")
    if config.get("schema_version") != SCHEMA_VERSION:
        raise CheckpointError(f"{path} has checkpoint schema version {config.get('schema_version')!r}; "
                              f"this mjxgen reads version {SCHEMA_VERSION}")
    for key, kind in REQUIRED.items():
        if not isinstance(config.get(key), kind):
            raise CheckpointError(f"{path}: config field {key!r} is missing or not a {kind.__name__}")
    config["path"] = str(path)
    return config


def load(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint: its config and every array of its manifest, never unpickling anything."""
    config = read_config(path)
    manifest = config["arrays"]
    with zipfile.ZipFile(path) as z:
        members = {n[:-4] if n.endswith(".npy") else n for n in z.namelist()} - {CONFIG_MEMBER}
    if members != set(manifest):
        extra, missing = sorted(members - set(manifest)), sorted(set(manifest) - members)
        raise CheckpointError(f"{path}: members do not match the manifest (unexpected {extra}, missing {missing})")
    arrays = {}
    with np.load(path, allow_pickle=False) as npz:
        for name, spec in manifest.items():
            try:
                a = npz[name]
            except ValueError as e:  # "Object arrays cannot be loaded when allow_pickle=False"
                raise CheckpointError(f"{path}: {name} is a pickled object array; refused ({e})") from None
            if list(a.shape) != spec.get("shape") or a.dtype.str != spec.get("dtype"):
                raise CheckpointError(f"{path}: {name} is {a.dtype.str}{list(a.shape)}, but the manifest says "
                                      f"{spec.get('dtype')}{spec.get('shape')}")
            arrays[name] = a
    return Checkpoint(config=config, arrays=arrays)
