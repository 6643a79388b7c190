"""Checkpoints without pickle: one `.npz` file of named arrays, with a `config.json` member that describes them.

    final.npz
    ├── config.json             UTF-8 JSON: schema, version, model, observation keys, env, dataset, training
    │                           settings, step, versions, and the manifest of every array (shape, dtype)
    ├── net/layers/0/w.npy      arrays in NumPy's .npy format, written with allow_pickle=False
    ├── norm/obs_mean.npy
    └── opt/...                 the optimizer's state (for --resume)

`unzip -p final.npz config.json` shows the config. Loading never unpickles and reads within bounds, every size
checked before anything is read: the config (at most CONFIG_MAX_BYTES, parsed by mjxgen.checks.json_text: no
RecursionError from deep nesting), then each array's .npy header (shape and dtype) against the manifest and its
member's uncompressed size, from the zip directory, against them; only then its data. An object array (a pickle
payload), a member that is not in the manifest, a shape, dtype or size that differs from it (a zip bomb), a
manifest entry that is not {shape, dtype}, or a config of another schema or version is refused with a
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

from mjxgen import checks

SCHEMA = "mjxgen-checkpoint"
SCHEMA_VERSION = 1
CONFIG_MEMBER = "config.json"
CONFIG_MAX_BYTES = 2**20  # config.json: a few KB in practice
NPY_HEADER_MAX = 2**16  # bytes of an array member's .npy header (NumPy writes 128 for these arrays)
MAX_ARRAY_BYTES = 2**31  # every array together (a BC network and its Adam state are a few MB)
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
            size = z.getinfo(CONFIG_MEMBER).file_size  # from the zip directory: nothing read yet
            if size > CONFIG_MAX_BYTES:
                raise CheckpointError(f"{path}: {CONFIG_MEMBER} is {size:,} bytes, more than the {CONFIG_MAX_BYTES:,} "
                                      "a checkpoint config may have")
            with z.open(CONFIG_MEMBER) as f:
                text = f.read(CONFIG_MAX_BYTES + 1)  # (zipfile stops at the directory's size, and checks the CRC)
        config = checks.json_text(CONFIG_MEMBER, text, max_bytes=CONFIG_MAX_BYTES)
    except CheckpointError:
        raise
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
    """Read a checkpoint: its config and every array of its manifest, within the manifest's sizes, never
    unpickling anything."""
    config = read_config(path)
    manifest = _manifest(path, config["arrays"])
    with zipfile.ZipFile(path) as z:
        infos = {i.filename: i for i in z.infolist()}
        members = {n[:-4] if n.endswith(".npy") else n for n in infos} - {CONFIG_MEMBER}
        if members != set(manifest):
            extra, missing = sorted(members - set(manifest)), sorted(set(manifest) - members)
            raise CheckpointError(f"{path}: members do not match the manifest (unexpected {extra}, missing {missing})")
        arrays = {name: _read_array(path, z, infos.get(f"{name}.npy") or infos[name], name, *spec)
                  for name, spec in manifest.items()}
    return Checkpoint(config=config, arrays=arrays)


def _manifest(path, manifest: dict) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """name -> (shape, dtype) of every manifest entry, checked; their total size within MAX_ARRAY_BYTES."""
    out, total = {}, 0
    for name, spec in manifest.items():
        shape, dtype = (spec.get("shape"), spec.get("dtype")) if isinstance(spec, dict) else (None, None)
        if not (isinstance(shape, list) and all(checks.is_int(d) and d >= 0 for d in shape) and isinstance(dtype, str)):
            raise CheckpointError(f"{path}: manifest entry {name!r} is not {{\"shape\": [...], \"dtype\": \"...\"}}, "
                                  f"got {str(spec)[:80]}")
        try:
            dt = np.dtype(dtype)
        except (TypeError, ValueError):
            raise CheckpointError(f"{path}: manifest entry {name!r} has an unknown dtype {dtype[:40]!r}") from None
        if dt.hasobject:
            raise CheckpointError(f"{path}: {name} is a pickled object array; refused (dtype {dtype[:40]!r})")
        out[name] = (tuple(shape), dt)
        total += int(np.prod(shape, dtype=object)) * dt.itemsize
    if total > MAX_ARRAY_BYTES:
        raise CheckpointError(f"{path}: the manifest declares {total:,} bytes of arrays, more than the "
                              f"{MAX_ARRAY_BYTES:,} a checkpoint may hold")
    return out


def _read_array(path, z: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, shape: tuple, dtype: np.dtype):
    """One member's array: its .npy header checked against the manifest, then its size (the zip directory's)
    against both, and only then its data read."""
    where = f"{path}: {name}"
    with z.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f".npy version {version[0]}.{version[1]}")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            got_shape, fortran, got_dtype = read_header(f, max_header_size=NPY_HEADER_MAX)
        except ValueError as e:
            if "allow_pickle" in str(e) or "object" in str(e).lower():
                raise CheckpointError(f"{where} is a pickled object array; refused ({e})") from None
            raise CheckpointError(f"{where} is not a readable .npy array ({e})") from None
        if got_dtype.hasobject:
            raise CheckpointError(f"{where} is a pickled object array; refused")
        if tuple(got_shape) != shape or got_dtype != dtype:
            raise CheckpointError(f"{where} is {got_dtype.str}{list(got_shape)}, but the manifest says "
                                  f"{dtype.str}{list(shape)}")
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if info.file_size != f.tell() + nbytes:
            raise CheckpointError(f"{where}: its member holds {info.file_size:,} bytes, not the {f.tell() + nbytes:,} "
                                  f"of a {dtype.str}{list(shape)} array; refused unread")
        data, done = bytearray(nbytes), 0
        while done < nbytes:  # in pieces: no second copy of the array
            piece = f.read(min(nbytes - done, 2**24))
            if not piece:
                raise CheckpointError(f"{where} is truncated")
            data[done:done + len(piece)] = piece
            done += len(piece)
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
