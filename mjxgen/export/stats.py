"""LeRobot's normalization statistics (lerobot.datasets.compute_stats, v3.0): per episode and per feature, min, max,
mean, std, count and the quantiles q01, q10, q50, q90, q99; the dataset's are aggregated from the episodes' as
LeRobot's `aggregate_stats` does (min of mins, max of maxes, count-weighted mean, pooled variance, count-weighted
quantiles).

Episode statistics here are exact (LeRobot approximates quantiles with histograms): every episode of a block is
computed at once over its contiguous rows (`segments`), quantiles with NumPy's default linear interpolation. Camera
frames are per channel over every pixel of every frame, from 256-bin histograms, scaled to [0, 1] and shaped
(3, 1, 1) as LeRobot's."""

from __future__ import annotations

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
NAMES = ("min", "max", "mean", "std", "count", *QUANTILES)


def segments(x: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics of each of E contiguous segments of x's rows: x (N, D) or (N,), lengths (E,) summing to N, each
    >= 1. Returns {name: (E, D)} ((E, 1) for a 1-D x; count (E, 1))."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    lengths = np.asarray(lengths, np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    n = lengths[:, None].astype(np.float64)
    mean = np.add.reduceat(x, starts, axis=0) / n
    dev = x - np.repeat(mean, lengths, axis=0)
    out = {"min": np.minimum.reduceat(x, starts, axis=0), "max": np.maximum.reduceat(x, starts, axis=0),
           "mean": mean, "std": np.sqrt(np.add.reduceat(dev * dev, starts, axis=0) / n), "count": lengths[:, None]}
    ids = np.repeat(np.arange(len(lengths)), lengths)
    ordered = np.stack([x[np.lexsort((x[:, d], ids)), d] for d in range(x.shape[1])], axis=1)
    for name, q in QUANTILES.items():
        pos = starts + q * (lengths - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, starts + lengths - 1)
        frac = (pos - lo)[:, None]
        out[name] = ordered[lo] + frac * (ordered[hi] - ordered[lo])
    return out


def frames(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel statistics of (L, H, W, 3) uint8 frames, in [0, 1], each (3, 1, 1); count (1,) = L."""
    counts = np.stack([np.bincount(x[..., c].ravel(), minlength=256) for c in range(x.shape[-1])])  # (3, 256)
    values = np.arange(256, dtype=np.float64)
    total = counts.sum(axis=1, keepdims=True).astype(np.float64)
    mean = (counts * values).sum(axis=1, keepdims=True) / total
    var = (counts * (values - mean) ** 2).sum(axis=1, keepdims=True) / total
    cdf = np.cumsum(counts, axis=1)
    seen = counts > 0
    out = {"min": seen.argmax(axis=1)[:, None].astype(np.float64),
           "max": 255 - seen[:, ::-1].argmax(axis=1)[:, None].astype(np.float64), "mean": mean, "std": np.sqrt(var)}
    for name, q in QUANTILES.items():
        pos = q * (total[:, 0] - 1)  # the linear interpolation between the sorted values at floor(pos), floor + 1
        lo = np.array([np.searchsorted(c, p, side="right") for c, p in zip(cdf, np.floor(pos))], np.float64)
        hi = np.array([np.searchsorted(c, p, side="right") for c, p in zip(cdf, np.minimum(np.floor(pos) + 1,
                                                                                             total[:, 0] - 1))])
        out[name] = (lo + (pos - np.floor(pos)) * (hi - lo))[:, None]
    out = {k: (v / 255.0).reshape(-1, 1, 1) for k, v in out.items()}
    out["count"] = np.array([len(x)], np.int64)
    return out


def aggregate(per_episode: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The dataset's statistics from every episode's ({name: (E, ...)}), by LeRobot's aggregate_feature_stats."""
    counts = per_episode["count"].reshape(len(per_episode["count"]), -1)[:, :1].astype(np.float64)  # (E, 1)
    total = counts.sum()
    w = counts.reshape(counts.shape + (1,) * (per_episode["mean"].ndim - 2))
    mean = (per_episode["mean"] * w).sum(axis=0) / total
    var = ((per_episode["std"] ** 2 + (per_episode["mean"] - mean) ** 2) * w).sum(axis=0) / total
    out = {"min": per_episode["min"].min(axis=0), "max": per_episode["max"].max(axis=0), "mean": mean,
           "std": np.sqrt(var), "count": np.array([int(total)], np.int64)}
    out.update({name: (per_episode[name] * w).sum(axis=0) / total for name in QUANTILES})
    return out


def jsonable(stats: dict[str, np.ndarray]) -> dict[str, list]:
    """{name: nested lists} for JSON and parquet (count as integers)."""
    return {k: np.asarray(v).tolist() for k, v in stats.items()}
