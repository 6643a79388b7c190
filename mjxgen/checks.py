"""Argument checks that every layer shares, each raising a TypeError (wrong type) or a ValueError (wrong value)
whose message names the argument. The CLIs turn both into one `error:` line.

Also the settings table: a config dataclass's fields made with `setting(...)` carry their help text, CLI flag and
check (a `Setting` in the field's metadata), so the dataclass alone says each setting's name, default, type, check
and help. `check_fields` runs the checks, `with_settings` turns a function of a config into a function whose
parameters are the config's fields, and the CLIs build their flags from the same fields (mjxgen.cli.arguments).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import os
import re
import textwrap
import typing
from typing import Any, Callable, Iterable

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


def finite_float(name: str, value) -> float:
    if is_bool(value) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a finite number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def fraction(name: str, value) -> float:
    """A share of something: a number in [0, 1)."""
    if is_bool(value) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [0, 1), got {type(value).__name__} {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def choice(name: str, value, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {', '.join(map(repr, choices))}, got {type(value).__name__} {value!r}")
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def optional(check: Callable) -> Callable:
    """check, letting None through (a setting whose None means "decide for me")."""

    def checked(name: str, value):
        return None if value is None else check(name, value)

    checked.__name__ = check.__name__
    return checked


def path(name: str, value) -> str:
    """A file or directory path: a str or os.PathLike, as str."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(value).__name__}")
    return os.fspath(value)


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


# --- the settings table ------------------------------------------------------------------------------------------
SETTING = "mjxgen.setting"  # the field-metadata key of a Setting


@dataclasses.dataclass(frozen=True, kw_only=True)
class Setting:
    """What a config field says about itself beyond its name, type and default (made by `setting()`)."""

    help: str  # what the setting does, in one line: the API docstring's Args line and the CLI's --help
    doc: str = ""  # more for the API docstring only, after help
    flag: str | None = ""  # the CLI flag: "" for --<name-with-dashes> (--no-<name> for a True bool), None for none
    flag_help: str = ""  # the CLI's text where it differs from help (a flag that switches a bool, ...)
    check: Callable | None = None  # check(name, value) -> the value, normalized (TypeError/ValueError naming it)
    choices: tuple = ()  # the allowed values: checked with choice(), and the CLI's choices
    item_check: Callable | None = None  # a tuple setting: the CLI reads len(default) values, each checked by this
    nargs: int | str | None = None  # a tuple setting: how many values the CLI reads where not len(default) ("+")
    metavar: Any = None  # the CLI's placeholder(s) for the value(s)


def setting(default, help: str, **kw) -> Any:
    """A config field with its default and Setting (keywords: Setting's fields but help)."""
    return dataclasses.field(default=default, metadata={SETTING: Setting(help=help, **kw)})


def settings_of(cls_or_config) -> dict[str, tuple[dataclasses.Field, Setting]]:
    """{name: (field, Setting)} of every field made with setting(), in field order."""
    return {f.name: (f, f.metadata[SETTING]) for f in dataclasses.fields(cls_or_config) if SETTING in f.metadata}


def check_fields(config) -> None:
    """Run every field's check, in field order, and store the normalized values (in a frozen dataclass too)."""
    for name, (_, s) in settings_of(config).items():
        value = getattr(config, name)
        if s.choices:
            value = choice(name, value, s.choices)
        if s.check is not None:
            value = s.check(name, value)
        object.__setattr__(config, name, value)


def type_hints(obj) -> dict[str, Any]:
    """obj's annotations resolved to types (strings where they can't be)."""
    try:
        return typing.get_type_hints(obj)
    except Exception:  # an annotation naming something the module does not import at run time
        return dict(getattr(obj, "__annotations__", {}))


def signature(cls, positional: tuple[str, ...] = (), leading: Iterable[inspect.Parameter] = (),
              returns=inspect.Signature.empty) -> inspect.Signature:
    """The parameters of a function that takes cls's fields: `leading` ones first, then the `positional` fields
    (positional-or-keyword, in that order), then every other field (keyword-only), each with its default."""
    fields, hints = {f.name: f for f in dataclasses.fields(cls) if f.init}, type_hints(cls)
    unknown = [n for n in positional if n not in fields]
    if unknown:
        raise TypeError(f"{cls.__name__} has no fields {', '.join(unknown)}")
    P = inspect.Parameter

    def param(name, kind):
        f = fields[name]
        default = f.default if f.default is not dataclasses.MISSING else P.empty
        return P(name, kind, default=default, annotation=hints.get(name, P.empty))

    rest = [param(n, P.KEYWORD_ONLY) for n in fields if n not in positional]
    return inspect.Signature([*leading, *(param(n, P.POSITIONAL_OR_KEYWORD) for n in positional), *rest],
                             return_annotation=returns)


def with_settings(cls, positional: tuple[str, ...] = ()) -> Callable:
    """Decorator: `fn(*leading, config)` becomes `fn(*leading, **settings)`, whose parameters are cls's fields
    (see signature()), so the dataclass is the one place of their names, order, defaults and checks. The call
    builds `cls(**settings)`, which checks them; an unknown keyword is a TypeError naming it. In fn's docstring a
    line "{settings}" becomes one Args entry per field (Setting.help, then Setting.doc)."""

    def wrap(fn: Callable) -> Callable:
        own = list(inspect.signature(fn).parameters.values())[:-1]  # the leading parameters; the last is the config
        hints = type_hints(fn)
        own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in own]
        sig = signature(cls, positional, own, hints.get("return", inspect.Signature.empty))

        def call(*args, **kwargs):
            unknown = [k for k in kwargs if k not in sig.parameters]
            if unknown:
                raise TypeError(f"{fn.__name__}() got unexpected keyword argument{'s' * (len(unknown) > 1)} "
                                f"{', '.join(map(repr, unknown))}{_did_you_mean(unknown, sig.parameters)}")
            try:
                values = sig.bind(*args, **kwargs).arguments
            except TypeError as e:
                raise TypeError(f"{fn.__name__}(): {e}") from None
            lead = [values.pop(p.name) for p in own]
            return fn(*lead, cls(**values))

        for attr in ("__module__", "__name__", "__qualname__"):
            setattr(call, attr, getattr(fn, attr))
        call.__doc__ = _with_args(fn.__doc__, cls, [p for p in sig.parameters if p not in {q.name for q in own}])
        call.__signature__, call.__wrapped__ = sig, fn
        return call

    return wrap


def _did_you_mean(unknown: list[str], names) -> str:
    close = [m for k in unknown for m in difflib.get_close_matches(k, list(names), n=1)]
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _with_args(doc: str | None, cls, names: list[str], width: int = 116) -> str | None:
    """doc with its "{settings}" line replaced by an Args entry per name, indented as that line."""
    if doc is None or "{settings}" not in doc:
        return doc
    line = next(x for x in doc.splitlines() if x.strip() == "{settings}")
    indent = line[: len(line) - len(line.lstrip())]
    table = settings_of(cls)
    entries = []
    for name in names:
        s = table[name][1] if name in table else None
        text = f"{name}: {_sentence(s.help)}{' ' + s.doc if s.doc else ''}" if s else f"{name}: (undocumented)"
        entries.append(textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent + "  "))
    return doc.replace(line, "\n".join(entries))


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else text + "."
