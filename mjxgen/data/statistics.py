"""Normalization statistics of a dataset's arrays, in the names LeRobot uses: min, max, mean, std, count, q01, q99.

Each shard stores exact partial statistics of its kept episodes (count, mean, M2, min, max and a quantile sketch
of SKETCH_POINTS evenly spaced quantiles per column); the finished file combines them once, at finalize, into
the root attribute `statistics` (JSON). min, max, mean, std and count are exact (Chan's parallel variance); q01
and q99 invert the count-weighted mixture of the shards' sketches, so their rank error is at most
1 / (SKETCH_POINTS - 1) (0.1%), and exact for a single shard's worth of rows.
"""

from __future__ import annotations

import json

import numpy as np

SKETCH_POINTS = 1001
QUANTILES = {"q01": 0.01, "q99": 0.99}
PREFIX = "statistics:"  # shard attributes: statistics:<array>:<field>
FIELDS = ("count", "mean", "m2", "min", "max", "sketch")


def partial(arrays: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Exact statistics of rows (N, ...) per array, per column (flattened trailing axes)."""
    out = {}
    for name, rows in arrays.items():
        x = np.asarray(rows, np.float64).reshape(len(rows), -1)
        if not len(x):
            continue
        mean = x.mean(axis=0)
        out[name] = {"count": np.array([len(x)], np.int64), "mean": mean, "m2": ((x - mean) ** 2).sum(axis=0),
                     "min": x.min(axis=0), "max": x.max(axis=0),
                     "sketch": np.quantile(x, np.linspace(0.0, 1.0, SKETCH_POINTS), axis=0)}
    return out


def to_attrs(stats: dict) -> dict[str, np.ndarray]:
    """Partial statistics as HDF5 attributes of a shard."""
    return {f"{PREFIX}{name}:{field}": value for name, fields in stats.items() for field, value in fields.items()}


def from_attrs(attrs) -> dict[str, dict[str, np.ndarray]]:
    """The partial statistics a shard's attributes hold."""
    out: dict[str, dict] = {}
    for key in attrs:
        if key.startswith(PREFIX):
            name, field = key[len(PREFIX):].rsplit(":", 1)
            out.setdefault(name, {})[field] = np.asarray(attrs[key])
    return out


def combine(parts: list[dict]) -> dict[str, dict[str, list]]:
    """The statistics of the union of the partials' rows: {array: {min, max, mean, std, count, q01, q99}}, as
    lists (JSON-ready; count a one-element list, as LeRobot stores it)."""
    names = sorted({name for p in parts for name in p})
    out = {}
    for name in names:
        ps = [p[name] for p in parts if name in p]
        counts = np.array([int(p["count"][0]) for p in ps], np.float64)
        n = counts.sum()
        mean = sum(c * p["mean"] for c, p in zip(counts, ps)) / n
        m2 = sum(p["m2"] + c * (p["mean"] - mean) ** 2 for c, p in zip(counts, ps))
        stat = {"min": np.min([p["min"] for p in ps], axis=0), "max": np.max([p["max"] for p in ps], axis=0),
                "mean": mean, "std": np.sqrt(m2 / n), "count": np.array([int(n)])}
        for label, q in QUANTILES.items():
            stat[label] = _mixture_quantile(q, [p["sketch"] for p in ps], counts)
        out[name] = {k: np.asarray(v).tolist() for k, v in stat.items()}
    return out


def _mixture_quantile(q: float, sketches: list[np.ndarray], counts: np.ndarray) -> np.ndarray:
    """Per column, the q-quantile of the count-weighted mixture of the sketches' CDFs: the smallest sketch value
    whose mixture CDF reaches q (a value many rows share is returned as itself, never interpolated past)."""
    if len(sketches) == 1:  # exact: q01 and q99 lie on the sketch's grid
        return np.array([np.interp(q, np.linspace(0, 1, len(s)), s) for s in sketches[0].T])
    grid = np.linspace(0.0, 1.0, SKETCH_POINTS)
    weights = counts / counts.sum()
    columns = []
    for j in range(sketches[0].shape[1]):
        values = np.unique(np.concatenate([s[:, j] for s in sketches]))
        cdf = sum(w * _cdf(values, s[:, j], grid) for w, s in zip(weights, sketches))
        columns.append(values[min(int(np.searchsorted(cdf, q - 1e-12, side="left")), len(values) - 1)])
    return np.array(columns)


def _cdf(values: np.ndarray, sketch: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A sketch's CDF at `values`, right-continuous (at a value the sketch repeats, the rank of its last copy),
    linear between distinct sketch values; 0 below the sketch's min, 1 at and above its max."""
    k = np.searchsorted(sketch, values, side="right")  # sketch points <= each value
    lo, hi = np.clip(k - 1, 0, len(sketch) - 1), np.clip(k, 0, len(sketch) - 1)
    span = sketch[hi] - sketch[lo]
    frac = np.where(span > 0, (values - sketch[lo]) / np.where(span > 0, span, 1.0), 0.0)
    inside = grid[lo] + frac * (grid[hi] - grid[lo])
    return np.where(k == 0, 0.0, np.where(k >= len(sketch), 1.0, inside))


def to_json(stats: dict) -> str:
    return json.dumps(stats, sort_keys=True)
