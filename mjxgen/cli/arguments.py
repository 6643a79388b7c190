"""The parser pieces every command shares: a Parser whose errors are one line, argparse types made from
mjxgen.checks, flags made from the config dataclasses' settings (names, defaults, checks, help), the many-process
and compile-cache flags, and report_failures (exceptions -> one `error:` line and an exit status)."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import types
import typing
from typing import Any, Callable

from mjxgen import checks
from mjxgen.runtime.process import configure
from mjxgen.runtime.signals import GenerationInterrupted


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (`prog: error: ...`), without the usage block."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def checked(check: Callable, kind: type | None = int) -> Callable[[str], Any]:
    """An argparse type: the text as `kind` (int, float; None: the text itself), then `check` (mjxgen.checks) on
    it; its message, one line, without the argument's name (argparse names the flag)."""

    def parse(text: str):
        try:
            value = kind(text) if kind is not None else text
        except ValueError:
            value = text
        try:
            return check("value", value)
        except (TypeError, ValueError) as e:
            message = str(e).replace("value must be", "must be").replace(", got str ", ", got ")
            raise argparse.ArgumentTypeError(message) from None

    parse.__name__ = check.__name__  # argparse names the type in its messages
    return parse


positive_int = checked(checks.positive_int)
non_negative_int = checked(checks.non_negative_int)
episode_count = checked(checks.episode_count)


def _scalar(hint) -> type | None:
    """int or float for a field annotated so (or Optional of it); None for anything else (parsed as text)."""
    if hint in (int, float):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [a for a in typing.get_args(hint) if a is not type(None)]
        return kinds[0] if len(kinds) == 1 and kinds[0] in (int, float) else None
    return None


def _default_text(value) -> str | None:
    """How --help shows a default; None for no default worth showing (None, a bool flag's)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_settings(p, cls, names: list[str] | None = None, **overrides: dict) -> list[str]:
    """Add a flag for each setting of the dataclass cls that has one (or each of `names`), as the settings
    table says: the flag (--name-with-dashes unless the Setting names another), its default (the field's), its
    check (an argparse type from it, or its choices) and its help. `overrides[name]` replaces any of the keys
    flag, default, help, choices where one command differs (e.g. the task CLIs' --batch). Returns the names
    added: read them back with settings_from."""
    hints, added = checks.type_hints(cls), []
    for name, (field, s) in checks.settings_of(cls).items():
        o = overrides.pop(name, {})
        if (names is not None and name not in names) or o.get("flag", s.flag) is None:
            continue
        default = o.get("default", field.default)
        help_text = o.get("help", s.flag_help or s.help)
        shown = _default_text(default)
        kw: dict[str, Any] = {"dest": name, "default": default,
                              "help": f"{help_text} (default {shown})" if shown else help_text}
        flag = o.get("flag", s.flag) or f"--{'no-' if default is True else ''}{name.replace('_', '-')}"
        if isinstance(field.default, bool):
            kw["action"] = "store_false" if field.default else "store_true"
        elif o.get("choices", s.choices):
            kw["choices"] = tuple(o.get("choices", s.choices))
        elif s.item_check is not None:
            kw.update(type=checked(s.item_check), nargs=s.nargs or len(field.default))
        elif s.check is not None:
            kw["type"] = checked(s.check, _scalar(hints.get(name)))
        if s.metavar is not None or "type" in kw:  # the value's placeholder: the Setting's, else the flag's name
            kw["metavar"] = s.metavar or flag.lstrip("-").replace("-", "_").upper()
        p.add_argument(flag, **kw)
        added.append(name)
    if overrides:
        raise TypeError(f"{cls.__name__} has no CLI settings {', '.join(overrides)}")
    return added


def settings_from(a: argparse.Namespace, names: list[str]) -> dict:
    """The values of the settings add_settings added, by field name (tuple settings as tuples)."""
    return {n: tuple(v) if isinstance(v, list) else v for n, v in ((n, getattr(a, n)) for n in names)}


def field_default(cls, name: str):
    """A dataclass field's default (for a flag made by hand that shares it)."""
    return {f.name: f.default for f in dataclasses.fields(cls)}[name]


def report_failures(run: Callable[[], Any], command: list[str]) -> tuple[int, Any]:
    """Call run(); turn its failures into one stderr line. Returns (exit status, run's result or None):
    0; 2 for bad input; 1 when writing failed; 128 + the signal when interrupted (SIGINT: 130). Messages
    about an unfinished run end with the command that resumes it (`command` plus --resume)."""
    resume = shlex.join([c for c in command if c not in ("--overwrite", "--resume")] + ["--resume"])
    try:
        return 0, run()
    except GenerationInterrupted as e:
        print(f"{e}; resume with: {resume}", file=sys.stderr)
        return 128 + e.signum, None
    except (TypeError, ValueError, FileExistsError, PermissionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2, None
    except OSError as e:
        print(f"error: {e}".replace("run again with --resume", f"resume with: {resume}"), file=sys.stderr)
        return 1, None


def add_distributed_args(p: argparse.ArgumentParser) -> None:
    """--distributed, --coordinator, --num-processes, --process-id (read them with distributed_of)."""
    g = p.add_argument_group("many processes (jax.distributed; README: Scaling out)")
    g.add_argument("--distributed", action="store_true",
                   help="one of many processes, as the cluster's environment says (SLURM, ...)")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address, the same for every process")
    g.add_argument("--num-processes", type=positive_int, metavar="N", help="how many processes run")
    g.add_argument("--process-id", type=non_negative_int, metavar="I", help="this process's index, 0..N-1")


def distributed_of(p: argparse.ArgumentParser, a: argparse.Namespace):
    """--distributed / --coordinator, --num-processes, --process-id as generate_dataset's `distributed` (a
    parser error, exit 2, for an incomplete or inconsistent set)."""
    from mjxgen.runtime.distributed import DistributedConfig

    explicit = (a.coordinator, a.num_processes, a.process_id)
    if any(v is not None for v in explicit):
        try:
            return DistributedConfig(coordinator=a.coordinator, num_processes=a.num_processes,
                                     process_id=a.process_id)
        except ValueError as e:
            p.error(str(e).replace("coordinator, num_processes and process_id", "--coordinator, --num-processes "
                                   "and --process-id"))
    return True if a.distributed else None


def add_cache_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--compile-cache", metavar="DIR", default=None,
                   help="JAX's persistent compilation cache (default: $MJXGEN_COMPILE_CACHE, else ~/.cache/mjxgen)")
    g.add_argument("--no-compile-cache", action="store_true", help="compile without the persistent cache")


def configure_from(argv: list[str]) -> None:
    """mjxgen.configure() with the compile-cache flags of argv: before anything else, bad input included."""
    pre = Parser(add_help=False)
    add_cache_flags(pre)
    a, _ = pre.parse_known_args(argv)
    configure(compile_cache=False if a.no_compile_cache else a.compile_cache)
