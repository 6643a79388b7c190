"""The arm tasks' fast format (`layout="flat"`): every episode's steps concatenated per key, with an
`episode_ends` index (the diffusion_policy / LeRobot convention), in large chunks (mjxgen.data.chunks).

    data/<key>                 (N, *obs_shape)  float64 or float32   observations; data.attrs["obs_keys"] (JSON)
    data/actions, data/rewards (N, A), (N,)
    data/image                 (N, H, W, 3)     uint8    camera frames (camera on), a chunk per frame
    meta/episode_ends          (E,) int64       episode e is rows [episode_ends[e - 1], episode_ends[e]) (0 first)
    meta/<META_FIELDS>         (E,)             episode_index, length, success, total_reward, invalid
    meta/randomization/<field> (E, ...)         meta/<policy>/<field> (E, ...)

A shard holds rows [first_row, first_row + n_rows) (its attributes), aligned to the finished file's chunks.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from mjxgen.data import chunks
from mjxgen.data.formats import (ACTIONS, IMAGE, IMAGE_DTYPE, RANDOMIZATION, REWARDS, DatasetFormatError,
                                 EncoderSettings, Format, Index, Position, register)
from mjxgen.runtime import pools

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
    after its `first_row % chunk rows` empty rows, see mjxgen.data.chunks)."""

    def __init__(self, path: Path, files: list[h5py.File]):
        self.path, self.files = path, files

    def index(self) -> Index:
        keys, metas, parts = None, [], {"file": [], "first_row": [], "start": []}
        for fi, f in enumerate(self.files):
            data, meta = f[DATA], f[META]
            own = tuple(json.loads(data.attrs[OBS_KEYS_ATTR])) + ((IMAGE,) if IMAGE in data else ())
            if keys is not None and own != keys:
                raise DatasetFormatError(f"{self.path}: {f.filename} has observations {sorted(own)}, not "
                                         f"{sorted(keys)}")
            keys = own
            lengths = meta["length"][()]
            first_row = int(f.attrs.get("first_row", 0))
            n = int(lengths.sum())
            for name in (*own, ACTIONS, REWARDS):
                ds = data[name]
                pad = first_row % ds.chunks[0] if ds.chunks else 0
                if ds.shape[0] != pad + n:
                    raise DatasetFormatError(f"{self.path}: data/{name} has {ds.shape[0] - pad} rows, but the "
                                             f"episodes have {n} steps")
            parts["start"].append(np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64))
            parts["file"].append(np.full(len(lengths), fi))
            parts["first_row"].append(np.full(len(lengths), first_row))
            metas.append({k: meta[k][()] for k in ("length", "episode_index", "success", "invalid")})
        self._parts = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in parts.items()}
        cat = {k: np.concatenate([m[k] for m in metas]) if metas else np.zeros(0) for k in
               ("length", "episode_index", "success", "invalid")}
        self._lengths = np.asarray(cat["length"], np.int64)
        return Index(keys or (), np.asarray(cat["length"], np.int64), np.asarray(cat["episode_index"], np.int64),
                     np.asarray(cat["success"], bool), np.asarray(cat["invalid"], bool))

    def _rows(self, name: str, e: int, lo: int, hi: int):
        """Rows lo:hi (steps of episode e) of data/<name>."""
        fi, first_row, start = (int(self._parts[k][e]) for k in ("file", "first_row", "start"))
        ds = self.files[fi][DATA][name]
        base = (first_row % ds.chunks[0] if ds.chunks else 0) + start
        return ds[base + lo:base + hi]

    def episode(self, e: int, keys: tuple[str, ...]) -> dict:
        length = int(self._lengths[e])
        return {"observations": {k: self._rows(k, e, 0, length) for k in keys},
                "actions": self._rows(ACTIONS, e, 0, length), "rewards": self._rows(REWARDS, e, 0, length)}

    def frames(self, e: int, lo: int, hi: int) -> np.ndarray:
        return self._rows(IMAGE, e, lo, hi)


class FlatFormat(Format):
    attr, version, option = "mjxgen-flat", 1, "flat"

    def encoder(self, settings: EncoderSettings) -> FlatEncoder:
        return FlatEncoder(settings)

    def merge(self, out: h5py.File, shards: list[Path]) -> None:
        merge(out, shards)

    def recount(self, f: h5py.File, stats) -> None:
        m = f[META]
        for n, s, r, i in zip(m["length"][()], m["success"][()], m["total_reward"][()], m["invalid"][()]):
            stats.add(length=int(n), success=bool(s), total_reward=float(r), invalid=bool(i))

    def reader(self, path: Path, files: list[h5py.File]) -> FlatReader:
        return FlatReader(path, files)


FLAT = register(FlatFormat())
