"""Checks the arm formats' readers share: every object they read is this file's own (no external link, soft link
or virtual dataset), every array has the shape and dtype the file declares (its `shapes` attribute), and every
index is consistent. Each failure is a DatasetFormatError naming the file and the problem."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
from h5py import h5d, h5g, h5l, h5o, h5s

from mjxgen import checks
from mjxgen.data.formats import INDEX_DTYPE, DatasetFormatError


def _hard_id(path, gid, member: str, where: str):
    """The object at `member` ('/'-separated names) under the group id `gid`, each link on the way a hard link
    (low-level h5py: a few microseconds a link)."""
    node = gid
    for part in member.split("/"):
        name = part.encode()
        if not node.links.exists(name):
            raise DatasetFormatError(f"{path}: {where}/{member} is missing")
        info = node.links.get_info(name)
        if info.type != h5l.TYPE_HARD:
            kind = "an external link to another file" if info.type == h5l.TYPE_EXTERNAL else "a soft link"
            raise DatasetFormatError(f"{path}: {where}/{member} is {kind}; a dataset holds its own data")
        node = h5o.open(node, name)
    return node


def group(path, parent: h5py.Group, name: str) -> h5py.Group:
    """parent[name] as a group of this file (reached through hard links only)."""
    node = _hard_id(path, parent.id, name, parent.name.rstrip("/"))
    if not isinstance(node, h5g.GroupID):
        raise DatasetFormatError(f"{path}: {parent.name.rstrip('/')}/{name} is not a group")
    return h5py.Group(node)


def dataset(path, episode: str, parent: h5py.Group, member: str) -> h5py.Dataset:
    """parent[member] as a dataset of this file: not virtual, not reached through a link to elsewhere."""
    return h5py.Dataset(_dataset_id(path, episode, parent.id, member))


def _dataset_id(path, episode: str, gid, member: str):
    node = _hard_id(path, gid, member, episode)
    if not isinstance(node, h5d.DatasetID):
        raise DatasetFormatError(f"{path}: {episode}/{member} is not a dataset")
    if node.get_create_plist().get_layout() == h5d.VIRTUAL:
        raise DatasetFormatError(f"{path}: {episode}/{member} is a virtual dataset (its data lie in other files)")
    return node


def read(path, episode: str, parent: h5py.Group, member: str, rows: int | None = None, trailing=None,
         kinds: str = "f") -> np.ndarray:
    """parent[member], checked before anything is read: a dataset of this file (as `dataset`), `rows` rows and
    `trailing` trailing dims where given, a dtype of one of `kinds` (numpy kind codes)."""
    d = _dataset_id(path, episode, parent.id, member)
    shape, dtype = tuple(d.shape), d.dtype
    want = None if rows is None else (rows, *(() if trailing is None else trailing))
    if (want is not None and (shape[:1] != want[:1] or (trailing is not None and shape != want))) or not shape:
        raise DatasetFormatError(f"{path}: {episode}/{member} is {shape}, expected "
                                 f"{want if trailing is not None else (rows, '...')}")
    if dtype.kind not in kinds:
        raise DatasetFormatError(f"{path}: {episode}/{member} has dtype {dtype}, not {_KIND_NAMES.get(kinds, kinds)}")
    out = np.empty(shape, dtype)
    d.read(h5s.ALL, h5s.ALL, out)
    return out


_KIND_NAMES = {"f": "a float type", "b": "bool", "u": "an unsigned integer type"}


def same_members(path, g: h5py.Group, names: list[str], what: str) -> None:
    """g's links are exactly `names`."""
    have, want = set(g), set(names)
    if have != want:
        extra, missing = sorted(have - want)[:3], sorted(want - have)[:3]
        raise DatasetFormatError(f"{path}: {g.file.filename if g.name == '/' else g.name} does not hold exactly the "
                                 f"{what} (unexpected {extra}, missing {missing})")


def index_attr(path, f: h5py.File) -> np.ndarray:
    """A file's or shard's `index` attribute, checked: its fields, lengths >= 1, ids increasing."""
    raw = f.attrs["index"]
    if getattr(raw, "dtype", None) is None or raw.dtype.names != INDEX_DTYPE.names:
        raise DatasetFormatError(f"{path}: its index attribute is not an episode index")
    rows = np.asarray(raw, INDEX_DTYPE)
    if rows.ndim != 1:
        raise DatasetFormatError(f"{path}: its index attribute is not one row per episode")
    if len(rows) and (rows["length"] < 1).any():
        raise DatasetFormatError(f"{path}: the index gives an episode a length below 1")
    if len(rows) > 1 and (np.diff(rows["episode_index"]) <= 0).any():
        raise DatasetFormatError(f"{path}: the index's episode ids are not unique and increasing")
    return rows


@dataclasses.dataclass(frozen=True)
class Expected:
    """What a file declares its arrays to be: observation keys and shapes, the action size, the float dtype, the
    horizon. A version 1 file declares no shapes: then only ranks, dtypes and row counts are checked."""

    path: Path
    keys: tuple[str, ...] | None  # the observation keys in stored order; None: undeclared (version 1)
    obs_shapes: dict[str, tuple[int, ...]]
    action_size: int | None
    dtype: np.dtype
    max_steps: int | None

    @classmethod
    def of(cls, path, attrs: dict) -> Expected:
        shapes = checks_json(path, attrs, "shapes") if "shapes" in attrs else None
        config = checks_json(path, attrs, "config")
        try:
            obs = {str(k): tuple(int(n) for n in v) for k, v in (shapes or {}).get("observations", {}).items()}
            action = int(shapes["actions"][0]) if shapes else None
            dtype = np.dtype(str(attrs.get("dtype", "float64")))
            horizon = config.get("max_steps") if isinstance(config, dict) else None
        except (KeyError, TypeError, ValueError, IndexError):
            raise DatasetFormatError(f"{path}: its shapes or dtype attribute is malformed") from None
        if dtype.kind != "f":
            raise DatasetFormatError(f"{path}: its dtype attribute {dtype} is not a float type")
        return cls(Path(path), tuple(obs) if shapes else None, obs, action, dtype,
                   int(horizon) if checks.is_int(horizon) else None)

    def check_length(self, name: str, length: int) -> None:
        if length < 1 or (self.max_steps is not None and length > self.max_steps):
            raise DatasetFormatError(f"{self.path}: {name} has length {length}, outside 1..{self.max_steps}")


def checks_json(path, attrs: dict, name: str):
    """A JSON attribute, parsed within mjxgen.checks' size and depth bounds."""
    try:
        return checks.json_text(f"{path}: its {name} attribute", attrs[name])
    except KeyError:
        raise DatasetFormatError(f"{path} has no {name} attribute") from None
    except ValueError as e:
        raise DatasetFormatError(str(e)) from None


def episode_keys(path, name: str, g: h5py.Group, keys: tuple[str, ...] | None) -> tuple[str, ...]:
    """A version 1 episode's observation keys, checked against the earlier episodes' and its row counts (no
    array is read)."""
    obs = group(path, g, "observations")
    own = tuple(obs)
    if keys is not None and own != keys:
        raise DatasetFormatError(f"{path}: {name} has observations {sorted(own)}, but earlier episodes have "
                                 f"{sorted(keys)}")
    length = int(g.attrs["length"])
    for member in [f"observations/{k}" for k in own] + ["actions", "rewards"]:
        if dataset(path, name, g, member).shape[:1] != (length,):
            raise DatasetFormatError(f"{path}: {name} says length {length} but {member} holds other rows")
    return own

