"""The arm tasks' fast format (`layout="flat"`): every episode's steps concatenated per key, with an
`episode_ends` index (the diffusion_policy / LeRobot convention), in large chunks (mjxgen.data.chunks).

    data/<key>                 (N, *obs_shape)  float64 or float32   observations; data.attrs["obs_keys"] (JSON)
    data/actions, data/rewards (N, A), (N,)
    data/terminated, truncated (N,) bool        v2: True at each episode's last step, as success or the horizon ended it
    data/image                 (N, H, W, 3)     uint8    camera frames (camera on), a chunk per frame
    meta/episode_ends          (E,) int64       episode e is rows [episode_ends[e - 1], episode_ends[e]) (0 first)
    meta/<META_FIELDS>         (E,)             episode_index, length, success, total_reward, invalid
    meta/final_observation/<key> (E, ...)       v2: the observation after each episode's last action
    meta/randomization/<field> (E, ...)         meta/<policy>/<field> (E, ...)

A shard holds rows [first_row, first_row + n_rows) (its attributes), aligned to the finished file's chunks.
Root attributes (v2): `shapes`, `statistics`, and those of every arm file. Version 1 files are read too.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from mjxgen.data import chunks
from mjxgen.data.formats import (ACTIONS, FINAL_OBSERVATION, IMAGE, IMAGE_DTYPE, RANDOMIZATION, REWARDS, TERMINATED,
                                 TRUNCATED, DatasetFormatError, EncoderSettings, Format, Index, Position, checking,
                                 register, step_flags)
from mjxgen.runtime import pools, signals

DATA, META, EPISODE_ENDS = "data", "meta", "episode_ends"
OBS_KEYS_ATTR = "obs_keys"  # on data/: JSON list of the observation keys, in stored order
META_FIELDS = ("episode_index", "length", "success", "total_reward", "invalid")


class FlatEncoder:
    """Writes a HostBatch into a shard of the flat format, rows aligned to the finished file's chunks."""

    def __init__(self, settings: EncoderSettings):
        self.settings, self.frames = settings, settings.frames
        self._dtype = np.dtype(settings.dtype)

    def encode(self, f: h5py.File, batch, position: Position) -> None:
        s, first_row = self.settings, position.first_row
        f.attrs.update({"first_row": first_row, "n_rows": int(np.sum(batch.lengths))})
        data = f.create_group(DATA)
        data.attrs[OBS_KEYS_ATTR] = json.dumps(list(s.obs_keys))
        arrays = {k: batch.observations[k] for k in s.obs_keys} | {ACTIONS: batch.actions, REWARDS: batch.rewards}
        for name, rows in arrays.items():
            chunks.write_rows(data, name, np.asarray(rows, self._dtype), first_row, s.filters)
        for name, flags in zip((TERMINATED, TRUNCATED), step_flags(batch.lengths, batch.success)):
            chunks.write_rows(data, name, flags, first_row, s.filters)
        if self.frames is not None:
            self._images(data, batch)
        self._meta(f.create_group(META), batch)

    def _images(self, data: h5py.Group, b) -> None:
        """data/image (n, H, W, 3), one frame per chunk, rendered and written an episode at a time."""
        o, filters = b.offsets, self.settings.filters
        frame = (*self.frames.size, 3)
        ds = data.create_dataset(IMAGE, shape=(int(o[-1]), *frame), dtype=IMAGE_DTYPE, chunks=(1, *frame),
                                 maxshape=(None, *frame), **filters)
        for e in range(len(b.lengths)):
            frames = self.frames.episode(b, e).astype(IMAGE_DTYPE, copy=False)
            if not chunks.encodable(filters):
                ds[o[e]:o[e + 1]] = frames
                continue
            encoded = pools.pool("deflate").map(lambda x: chunks.encode_chunk(x[None], filters), frames)
            for t, chunk in enumerate(encoded):
                ds.id.write_direct_chunk((int(o[e]) + t, 0, 0, 0), chunk, 0)

    def _meta(self, meta: h5py.Group, b) -> None:
        columns = {"episode_index": np.asarray(b.episode_ids, np.int64), "length": np.asarray(b.lengths, np.int64),
                   "success": np.asarray(b.success, bool), "total_reward": np.asarray(b.total_reward, np.float64),
                   "invalid": ~np.asarray(b.valid)}
        for name, values in columns.items():
            meta.create_dataset(name, data=values)
        for k, values in (b.final_observations or {}).items():
            meta.create_dataset(f"{FINAL_OBSERVATION}/{k}", data=np.asarray(values, self._dtype))
        for name, values in b.policy_record.items():
            meta.create_dataset(f"{self.settings.policy}/{name}", data=np.asarray(values))
        for name, values in (b.randomization or {}).items():
            meta.create_dataset(f"{RANDOMIZATION}/{name}", data=np.asarray(values))

    def close(self) -> None:
        if self.frames is not None:
            self.frames.close()


def merge(out: h5py.File, shards: list[Path]) -> None:
    """Concatenate the shards' rows and per-episode arrays into out (see mjxgen.data.chunks)."""
    files = [h5py.File(p, "r") for p in shards]
    try:
        total = sum(int(f.attrs["n_rows"]) for f in files)
        data = out.create_group(DATA)
        data.attrs[OBS_KEYS_ATTR] = files[0][DATA].attrs[OBS_KEYS_ATTR]
        for name, src in files[0][DATA].items():
            dst = data.create_dataset(name, shape=(total, *src.shape[1:]), dtype=src.dtype, chunks=src.chunks,
                                      maxshape=src.maxshape, compression=src.compression,
                                      compression_opts=src.compression_opts, shuffle=src.shuffle)
            for f in files:
                signals.check()  # a stop may end the merge between shards
                chunks.copy_rows(f[DATA][name], dst, int(f.attrs["first_row"]), int(f.attrs["n_rows"]), total)
        meta = out.create_group(META)
        names = []
        files[0][META].visititems(lambda k, v: names.append(k) if isinstance(v, h5py.Dataset) else None)
        for name in names:
            meta.create_dataset(name, data=np.concatenate([f[META][name][()] for f in files]))
        meta.create_dataset(EPISODE_ENDS, data=np.cumsum(meta["length"][()], dtype=np.int64))
    finally:
        for f in files:
            f.close()


class FlatReader:
    """Reads data/<key> rows and meta/ per-episode arrays, in one file or in shards (each shard's rows start
    after its `first_row % chunk rows` empty rows, see mjxgen.data.chunks). Opening checks every array's rows,
    trailing shape and dtype against the declared shapes and the episode index; nothing else is read."""

    def __init__(self, path: Path, files: list[h5py.File], attrs: dict):
        self.path, self.files = path, files
        self.expect = checking.Expected.of(path, attrs)

    def index(self) -> Index:
        keys, metas, parts, self._data = None, [], {"file": [], "first_row": [], "start": [], "local": []}, []
        self._finals: dict[tuple[int, str], np.ndarray] = {}
        for fi, f in enumerate(self.files):
            data = checking.group(self.path, f, DATA)
            own = self._keys(f, data)
            if keys is not None and own != keys:
                raise DatasetFormatError(f"{self.path}: {f.filename} has observations {sorted(own)}, not {sorted(keys)}")
            keys = own
            meta = {k: checking.dataset(self.path, META, f, f"{META}/{k}")[()] for k in
                    ("length", "episode_index", "success", "invalid", "total_reward")}
            lengths = np.asarray(meta["length"])
            if lengths.ndim != 1 or any(len(v) != len(lengths) for v in meta.values()):
                raise DatasetFormatError(f"{self.path}: {f.filename}'s meta arrays do not have one row per episode")
            self._check_meta(f, lengths, meta["episode_index"])
            first_row = int(f.attrs.get("first_row", 0))
            self._data.append(self._arrays(f, data, own, first_row, int(lengths.sum())))
            parts["start"].append(np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64))
            parts["file"].append(np.full(len(lengths), fi))
            parts["local"].append(np.arange(len(lengths)))
            parts["first_row"].append(np.full(len(lengths), first_row))
            metas.append(meta)
        self._parts = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in parts.items()}
        cat = {k: np.concatenate([m[k] for m in metas]) if metas else np.zeros(0) for k in
               ("length", "episode_index", "success", "invalid", "total_reward")}
        self._totals = np.asarray(cat["total_reward"], np.float64)
        ids = np.asarray(cat["episode_index"], np.int64)
        if len(ids) > 1 and (np.diff(ids) <= 0).any():
            raise DatasetFormatError(f"{self.path}: meta/episode_index is not unique and increasing")
        return Index(keys or (), np.asarray(cat["length"], np.int64), ids, np.asarray(cat["success"], bool),
                     np.asarray(cat["invalid"], bool))

    def _keys(self, f: h5py.File, data: h5py.Group) -> tuple[str, ...]:
        try:
            own = tuple(json.loads(data.attrs[OBS_KEYS_ATTR]))
        except (KeyError, TypeError, ValueError):
            raise DatasetFormatError(f"{self.path}: {f.filename}'s data/ has no valid obs_keys attribute") from None
        if self.expect.keys is not None and own != self.expect.keys:
            raise DatasetFormatError(f"{self.path}: data/ holds observations {list(own)}, but the file declares "
                                     f"{list(self.expect.keys)}")
        return own + ((IMAGE,) if IMAGE in data else ())

    def _check_meta(self, f: h5py.File, lengths: np.ndarray, ids: np.ndarray) -> None:
        if len(lengths):
            self.expect.check_length("an episode", int(lengths.min()))
            self.expect.check_length("an episode", int(lengths.max()))
        if EPISODE_ENDS in f[META]:
            ends = checking.dataset(self.path, META, f, f"{META}/{EPISODE_ENDS}")[()]
            if not np.array_equal(ends, np.cumsum(lengths)):
                raise DatasetFormatError(f"{self.path}: meta/episode_ends disagrees with the episodes' lengths")

    def _arrays(self, f, data, keys, first_row: int, n: int) -> dict[str, h5py.Dataset]:
        """Every row array of a file, checked: rows (after the shard's pad), trailing shape, dtype."""
        out = {}
        flags = (TERMINATED, TRUNCATED) if TERMINATED in data else ()
        for name in (*keys, ACTIONS, REWARDS, *flags):
            ds = checking.dataset(self.path, DATA, f, f"{DATA}/{name}")
            pad = first_row % ds.chunks[0] if ds.chunks else 0
            if ds.shape[0] != pad + n:
                raise DatasetFormatError(f"{self.path}: data/{name} has {ds.shape[0] - pad} rows, but the episodes "
                                         f"have {n} steps")
            want = {ACTIONS: (self.expect.action_size,), REWARDS: ()}.get(name, self.expect.obs_shapes.get(name))
            if want is not None and None not in want and tuple(ds.shape[1:]) != want:
                raise DatasetFormatError(f"{self.path}: data/{name} has rows of shape {ds.shape[1:]}, expected {want}")
            if name not in (IMAGE, *flags) and ds.dtype.kind != "f":
                raise DatasetFormatError(f"{self.path}: data/{name} has dtype {ds.dtype}, not a float type")
            out[name] = ds
        return out

    def _rows(self, name: str, e: int, lo: int, hi: int):
        """Rows lo:hi (steps of episode e) of data/<name>."""
        fi, first_row, start = (int(self._parts[k][e]) for k in ("file", "first_row", "start"))
        ds = self._data[fi][name]
        base = (first_row % ds.chunks[0] if ds.chunks else 0) + start
        return ds[base + lo:base + hi]

    def episode(self, e: int, keys: tuple[str, ...], length: int) -> dict:
        return {"observations": {k: self._rows(k, e, 0, length) for k in keys},
                "actions": self._rows(ACTIONS, e, 0, length), "rewards": self._rows(REWARDS, e, 0, length)}

    def total_reward(self, e: int) -> float:
        """Episode e's stored reward total (meta/total_reward)."""
        return float(self._totals[e])

    def flags(self, e: int, length: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Episode e's (terminated, truncated) rows, or None in a version 1 file."""
        if TERMINATED not in self._data[int(self._parts["file"][e])]:
            return None
        return self._rows(TERMINATED, e, 0, length), self._rows(TRUNCATED, e, 0, length)

    def frames(self, e: int, lo: int, hi: int) -> np.ndarray:
        return self._rows(IMAGE, e, lo, hi)

    def final_observation(self, e: int, keys: tuple[str, ...]) -> dict | None:
        """Episode e's row of meta/final_observation/<key> (each file's array read once, checked: one row per
        episode, the declared shape, a float dtype); None in a v1 file."""
        fi, local = int(self._parts["file"][e]), int(self._parts["local"][e])
        f = self.files[fi]
        if f"{META}/{FINAL_OBSERVATION}" not in f:
            return None
        out = {}
        for k in keys:
            if (fi, k) not in self._finals:
                ds = checking.dataset(self.path, META, f, f"{META}/{FINAL_OBSERVATION}/{k}")
                n, want = int(np.sum(self._parts["file"] == fi)), self.expect.obs_shapes.get(k)
                if ds.shape[:1] != (n,) or (want is not None and tuple(ds.shape[1:]) != want) or ds.dtype.kind != "f":
                    raise DatasetFormatError(f"{self.path}: meta/{FINAL_OBSERVATION}/{k} is {ds.dtype} {ds.shape}, "
                                             f"expected float ({n}, {', '.join(map(str, want or ('...',)))})")
                self._finals[(fi, k)] = ds[()]
            out[k] = self._finals[(fi, k)][local]
        return out


class FlatFormat(Format):
    attr, version, option = "mjxgen-flat", 2, "flat"
    readable = (1, 2)

    def encoder(self, settings: EncoderSettings) -> FlatEncoder:
        return FlatEncoder(settings)

    def merge(self, out: h5py.File, shards: list[Path]) -> None:
        merge(out, shards)

    def recount(self, f: h5py.File, stats) -> None:
        m = {k: checking.dataset(f.filename, META, f, f"{META}/{k}")[()] for k in
             ("length", "success", "total_reward", "invalid")}
        for n, s, r, i in zip(m["length"], m["success"], m["total_reward"], m["invalid"]):
            stats.add(length=int(n), success=bool(s), total_reward=float(r), invalid=bool(i))

    def reader(self, path: Path, files: list[h5py.File], attrs: dict) -> FlatReader:
        return FlatReader(path, files, attrs)


FLAT = register(FlatFormat())
