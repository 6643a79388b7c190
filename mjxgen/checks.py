"""Argument checks that every layer shares, each raising a TypeError (wrong type) or a ValueError (wrong value)
whose message names the argument. The CLIs turn both into one `error:` line."""

from __future__ import annotations

import math
import re
from typing import Iterable

import numpy as np

SEED_RANGE = (0, 2**32)  # a seed is a uint32: jax.random.key(seed)
# Episode ids travel through the programs as int32 (fold_in(key(seed), id) takes the id's 32 bits): ids at or
# above 2**31 would wrap and alias others, so they are refused.
MAX_EPISODES = 2**31


def is_int(value) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def integer(name: str, value, low: int | None = None, high: int | None = None, what: str | None = None) -> int:
    """value as an int in [low, high) (either bound may be None)."""
    what = what or _range_text(low, high)
    if not is_int(value):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}")
    if (low is not None and value < low) or (high is not None and value >= high):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return int(value)


def positive_int(name: str, value) -> int:
    return integer(name, value, 1, None, "a positive integer")


def non_negative_int(name: str, value) -> int:
    return integer(name, value, 0, None, "a non-negative integer")


def seed(name: str, value) -> int:
    """A dataset or training seed: an integer in [0, 2**32)."""
    return integer(name, value, *SEED_RANGE, "an integer in [0, 2**32)")


def episode_count(name: str, value) -> int:
    """A number of episodes: positive, and small enough that every id is below MAX_EPISODES."""
    return integer(name, value, 1, MAX_EPISODES + 1, "a positive integer of at most 2**31")


def episode_ids(name: str, value) -> np.ndarray:
    """A non-empty 1-D array of integer episode ids in [0, 2**31)."""
    ids = np.asarray(value)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"{name} must be a non-empty 1-D array of integers in [0, 2**31)")
    if (ids < 0).any() or (ids >= MAX_EPISODES).any():
        bad = ids[(ids < 0) | (ids >= MAX_EPISODES)][0]
        raise ValueError(f"{name} must be integers in [0, 2**31) (ids travel as int32), got {int(bad)}")
    return ids


def boolean(name: str, value) -> bool:
    if not is_bool(value):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def positive_float(name: str, value) -> float:
    if is_bool(value) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__} {value!r}")
    if not 0 < value < math.inf:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def choice(name: str, value, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {', '.join(map(repr, choices))}, got {type(value).__name__} {value!r}")
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def _range_text(low, high) -> str:
    if high is None:
        return f"an integer >= {low}" if low is not None else "an integer"
    return f"an integer in [{low}, {high})"


# JSON stored in files and checkpoints (configs, metadata) is parsed within these bounds: a hostile file can
# make neither a huge allocation nor a RecursionError.
JSON_MAX_BYTES = 16 * 2**20
JSON_MAX_DEPTH = 64


def json_text(name: str, text, max_bytes: int = JSON_MAX_BYTES, max_depth: int = JSON_MAX_DEPTH):
    """Parse JSON `text` (str or bytes) of at most max_bytes and max_depth nested containers; a ValueError
    naming `name` otherwise (malformed, too large or too deep)."""
    import json

    if isinstance(text, (bytes, bytearray, np.bytes_)):
        text = bytes(text).decode("utf-8", errors="strict")
    if not isinstance(text, str):
        raise ValueError(f"{name} is not JSON text (a {type(text).__name__})")
    if len(text) > max_bytes:
        raise ValueError(f"{name} is {len(text):,} characters of JSON, more than the {max_bytes:,} allowed")
    depth = _json_depth(text)
    if depth > max_depth:
        raise ValueError(f"{name} nests JSON {depth} levels deep, more than the {max_depth} allowed")
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"{name} is not valid JSON ({e})") from None


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def _json_depth(text: str) -> int:
    """The deepest nesting of [ and { in JSON text, strings left out (vectorized: no recursion, no loop)."""
    b = np.frombuffer(_JSON_STRING.sub("", text).encode("utf-8", "replace"), np.uint8)
    step = np.isin(b, (ord("["), ord("{"))).astype(np.int64) - np.isin(b, (ord("]"), ord("}")))
    return int(np.cumsum(step).max(initial=0))
