"""Exported programs, kept on disk: a warm process runs the stored programs without tracing MJX.

JAX's persistent compilation cache (mjxgen.runtime.compile_cache) skips only the XLA compile: JAX traces and lowers the
program first, to compute its cache key, and for the segment program that alone takes 10-20 s on a CPU. Here
the program is exported once (jax.export: StableHLO plus its signature), so a later process deserializes it,
lowers a call to it (about a second) and loads the compiled program from JAX's cache.

    jit(run, kind=, env=, policy=, params_at=, ...)
                                         what stream.compiled_segment and values._compiled_values return: an
                                         Exportable for a built-in policy name (calls without params run the
                                         exported form of `run`), else the plain jit
    stored(kind, env, compute, ...)      a small picklable value kept beside the programs (the slot shapes,
    stored_for(policy, kind, env, ...)   env.obs_shapes: each a trace of a reset);
                                         stored_for: only for a built-in policy name

The exported program is flat: its arguments and results are the leaves of the pytree-level ones, PRNG keys
as their raw key data, so nothing but plain arrays is serialized; the pytree structures (PyTreeDefs, pickled)
and which leaves are keys are stored with it. A process uses the exported form whether or not the disk cache is
on, so data never depend on the cache: the disk only saves the trace.

Where: `<compile cache>/programs/` (the directory mjxgen.runtime.compile_cache enabled), off with the compile cache.
An entry's name is the sha256 of everything the program depends on (`key`): the source of mjxgen/ and kernels/,
the env (name, config, XML), the policy name, the argument shapes and dtypes, the versions of Python, NumPy,
JAX, jaxlib, MuJoCo and MJX, the JAX settings that change a trace, the backend, the device kind and XLA_FLAGS.
So an entry is never used after a code change. Entries are written atomically (a temporary file, then
os.replace); an entry that can't be read is ignored (one warning) and written again; a directory that can't be
written gives one warning and no stored programs, never an error. Entries are pickles: the cache directory must
be as trusted as the code (it is the user's own cache, like JAX's).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import pickle
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from mjxgen.runtime import compile_cache
from mjxgen.runtime.versions import package_versions

# Bumped when the entry format changes (entries of another format are not found: the format is part of the key).
FORMAT = 1
SUBDIR = "programs"
# JAX settings that change what a trace produces (dtypes, the PRNG, the bits it draws, the matmul precision).
JAX_SETTINGS = ("jax_enable_x64", "jax_default_prng_impl", "jax_threefry_partitionable", "jax_numpy_dtype_promotion",
                "jax_default_matmul_precision", "jax_export_calling_convention_version")
# The packages whose source every key covers (mjxgen.kernels is a folder of its own in a source checkout).
PACKAGES = ("mjxgen", "mjxgen.kernels")

_warned: set = set()
_warn_lock = threading.Lock()


def _warn_once(what: str, message: str) -> None:
    with _warn_lock:
        if what in _warned:
            return
        _warned.add(what)
    warnings.warn(message, stacklevel=3)


def directory() -> Path | None:
    """Where the programs are kept: `programs/` in the compile cache in use, or None (the cache is off)."""
    base = compile_cache.active()
    return None if base is None else base / SUBDIR


@functools.cache
def source_hash() -> str:
    """sha256 of every .py file of the PACKAGES as imported (installed or not), read once per process."""
    return source_hash_of(package_dirs())


def package_dirs() -> dict[str, Path]:
    """Each of the PACKAGES' folder, as this process imports it."""
    return {name: Path(importlib.util.find_spec(name).submodule_search_locations[0]) for name in PACKAGES}


def source_hash_of(dirs: dict[str, Path]) -> str:
    """sha256 of the .py files under the folders {package name: folder}: each module's dotted name, then its
    bytes. A module found under two folders (an installed mjxgen holds mjxgen.kernels) counts once, from the
    folder of its innermost package."""
    modules = {}
    for name, folder in sorted(dirs.items(), key=lambda item: -item[0].count(".")):
        for path in Path(folder).rglob("*.py"):
            modules.setdefault(".".join([name, *path.relative_to(folder).with_suffix("").parts]), path)
    h = hashlib.sha256()
    for module, path in sorted(modules.items()):
        data, label = path.read_bytes(), module.encode()
        h.update(len(label).to_bytes(8, "little") + label + len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def environment() -> dict:
    """What a program depends on besides the code and its arguments: versions, JAX settings, the device."""
    device = jax.local_devices()[0]
    return {
        "versions": package_versions(),  # Python and the packages a file's `versions` attribute records
        "jax_settings": {name: str(getattr(jax.config, name, None)) for name in JAX_SETTINGS},
        "platform": device.platform,
        "device_kind": device.device_kind,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def key(kind: str, env, **fields) -> str:
    """The entry name of a program (or value) of `kind` for `env`: sha256 of everything it depends on."""
    parts = {"format": FORMAT, "kind": kind, "source": source_hash(), "env": env.name,
             "env_config": env.config_dict(), "xml": hashlib.sha256(env.xml.encode()).hexdigest(),
             "fields": fields, **environment()}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()


# --- the files ----------------------------------------------------------------------------------------------------
def _path(name: str) -> Path | None:
    d = directory()
    return None if d is None else d / f"{name}.pkl"


def load(name: str) -> Any | None:
    """The entry `name`, or None: not there, the cache off, or unreadable (then one warning)."""
    path = _path(name)
    if path is None or not path.is_file():
        return None
    try:
        entry = pickle.loads(path.read_bytes())
        if not (isinstance(entry, dict) and entry.get("format") == FORMAT and entry.get("key") == name):
            raise ValueError("not an mjxgen program entry of this format")
        return entry["value"]
    except Exception as e:  # noqa: BLE001 (a damaged file can raise anything from unpickling)
        _warn_once(str(path), f"mjxgen: ignoring the unreadable program cache entry {path} "
                              f"({type(e).__name__}: {e}); it will be written again")
        return None


def save(name: str, value: Any) -> bool:
    """Write entry `name` atomically; False (and one warning per directory) if it can't be written."""
    path = _path(name)
    if path is None:
        return False
    try:
        data = pickle.dumps({"format": FORMAT, "key": name, "value": value}, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as e:  # noqa: BLE001
        _warn_once(f"pickle:{name}", f"mjxgen: can't store a program ({type(e).__name__}: {e}); it will be traced "
                                     "again by the next process")
        return False
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:16]}-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # as JAX's cache entries (mkstemp makes it private)
        os.replace(tmp, path)
        return True
    except OSError as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        _warn_once(str(path.parent), f"mjxgen: the program cache {path.parent} is not writable "
                                     f"({e.strerror or e}); programs will be traced again by the next process")
        return False


def stored(kind: str, env, compute: Callable[[], Any], **fields) -> Any:
    """compute(), kept on disk under key(kind, env, **fields): a later process loads it instead."""
    name = key(kind, env, **fields)
    value = load(name)
    if value is None:
        value = compute()
        save(name, value)
    return value


# --- exported programs --------------------------------------------------------------------------------------------
def _key_impl(x) -> str | None:
    """The PRNG implementation's name of a key array (or tracer), None for any other leaf."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return str(jax.random.key_impl(x))
    return None


def _unwrap(leaves, impls):
    return [x if i is None else jax.random.key_data(x) for x, i in zip(leaves, impls)]


def _wrap(leaves, impls):
    return [x if i is None else jax.random.wrap_key_data(x, impl=i) for x, i in zip(leaves, impls)]


def _spec(x, impl) -> jax.ShapeDtypeStruct:
    """The flat program's argument for leaf x: its shape and dtype, or its key data's for a key."""
    if impl is not None:
        return jax.eval_shape(jax.random.key_data, x)
    return jax.ShapeDtypeStruct(np.shape(x), x.dtype, weak_type=bool(getattr(x, "weak_type", False)))


def signature(args) -> tuple:
    """(shape, dtype, weak type) of every leaf of args: what an exported program is specialized to (every call
    computes it: 0.3 ms for the segment program's 235 leaves)."""
    return tuple((x.shape, x.dtype, getattr(x, "weak_type", False)) for x in jax.tree.leaves(args))


class FlatProgram:
    """An exported program of plain arrays and how to call it with pytrees: the argument and result structures,
    and which leaves are PRNG keys (by implementation name)."""

    def __init__(self, exported, in_tree, in_keys: tuple, out_tree, out_keys: tuple):
        self.exported, self.in_tree, self.in_keys = exported, in_tree, in_keys
        self.out_tree, self.out_keys = out_tree, out_keys

    @classmethod
    def export(cls, fn: Callable, args: tuple) -> FlatProgram:
        """Trace fn(*args) once and export it for the shapes and dtypes of args."""
        leaves, in_tree = jax.tree.flatten(args)
        in_keys = tuple(_key_impl(x) for x in leaves)
        out = {}

        def flat(*xs):
            result = fn(*in_tree.unflatten(_wrap(xs, in_keys)))
            ys, out["tree"] = jax.tree.flatten(result)
            out["keys"] = tuple(_key_impl(y) for y in ys)
            return _unwrap(ys, out["keys"])

        exported = jax.export.export(jax.jit(flat))(*[_spec(x, i) for x, i in zip(leaves, in_keys)])
        return cls(exported, in_tree, in_keys, out["tree"], out["keys"])

    def matches(self, args) -> bool:
        """Whether args have the structure, shapes and dtypes the program was exported for."""
        leaves, tree = jax.tree.flatten(args)
        if tree != self.in_tree or len(leaves) != len(self.exported.in_avals):
            return False
        for x, i, aval in zip(leaves, self.in_keys, self.exported.in_avals):
            if _key_impl(x) != i:
                return False
            s = _spec(x, i)
            if tuple(s.shape) != tuple(aval.shape) or s.dtype != aval.dtype:
                return False
        return True

    def call(self, *args):
        """The program on pytree arguments (inside a jit: it traces to one call of the exported module)."""
        leaves, tree = jax.tree.flatten(args)
        if tree != self.in_tree:
            raise ValueError(f"arguments of structure {tree} for a program exported for {self.in_tree}")
        return self.out_tree.unflatten(_wrap(self.exported.call(*_unwrap(leaves, self.in_keys)), self.out_keys))

    def to_state(self) -> dict:
        return {"exported": bytes(self.exported.serialize()), "in_tree": self.in_tree, "in_keys": self.in_keys,
                "out_tree": self.out_tree, "out_keys": self.out_keys}

    @classmethod
    def from_state(cls, state: dict) -> FlatProgram:
        return cls(jax.export.deserialize(bytearray(state["exported"])), state["in_tree"], tuple(state["in_keys"]),
                   state["out_tree"], tuple(state["out_keys"]))


@functools.cache
def _prepare_runtime() -> None:
    """Set up what JAX's lowering rules set up lazily and a loaded program needs: on the CPU, LAPACK (the
    kernels of Cholesky, triangular solves, ...) is initialized when the first linear-algebra op is lowered,
    not when a program that calls it runs, so a process that only runs a deserialized program would call it
    uninitialized and crash (pick_place's constraint solver; jax-ml/jax#28908). Lowering a 2x2 Cholesky
    initializes it (milliseconds, nothing compiled)."""
    if jax.default_backend() == "cpu":
        jax.jit(jax.numpy.linalg.cholesky).lower(jax.ShapeDtypeStruct((2, 2), np.float32))


def jit(run: Callable, *, kind: str, env, policy, params_at: int, donate_argnums=(), **fields):
    """jax.jit(run, donate_argnums), run as an exported program (Exportable) when `policy` is a built-in policy
    name and the call's params (argument `params_at`) are None: a policy object or params can't be named in a
    key, so those run the plain jit."""
    traced = jax.jit(run, donate_argnums=donate_argnums)
    if not isinstance(policy, str):
        return traced
    return Exportable(run, traced, donate_argnums=donate_argnums, when=lambda args: args[params_at] is None,
                      key=dict(kind=kind, env=env, policy=policy, **fields))


def obs_shapes(env) -> dict[str, tuple[int, ...]]:
    """env.obs_shapes, kept on disk: a later process loads it instead of tracing a reset."""
    return stored("obs_shapes", env, lambda: env.obs_shapes)


def stored_for(policy, kind: str, env, compute: Callable[[], Any], **fields) -> Any:
    """stored(...) for a built-in policy name; compute() for anything else (it can't be named in a key)."""
    if isinstance(policy, str):
        return stored(kind, env, compute, policy=policy, **fields)
    return compute()


class Exportable:
    """A jitted program that runs as an exported program, stored on disk, for the calls where `when(args)`
    holds, and as `traced` (the jit of `run`) otherwise.

    Each argument signature (shapes and dtypes) gets its own exported program, made at its first call: loaded
    from disk, else exported from `run` (one trace, as jit would) and stored. `key` (a dict: kind, env, ...)
    names what the program is; the signature and the environment are added to it. Called like the jitted
    function, with the same donated arguments; `lower(*args)` lowers the form a call would run."""

    def __init__(self, run: Callable, traced, *, key: dict, when: Callable[[tuple], bool], donate_argnums=()):
        self._run, self._traced, self._key, self._when = run, traced, dict(key), when
        self._donate = tuple(donate_argnums)
        self._programs: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, *args):
        return self.program_for(args)(*args)

    def lower(self, *args):
        return self.program_for(args).lower(*args)

    def program_for(self, args: tuple):
        """The jitted function that runs args: the exported program of their signature, or the traced one."""
        if not self._when(args):
            return self._traced
        try:
            sig = signature(args)
        except AttributeError:  # a leaf that is no array (a Python number): the plain jit handles it
            return self._traced
        fn = self._programs.get(sig)
        if fn is None:
            with self._lock:  # rollout_batch's device threads: one export per signature
                fn = self._programs.get(sig)
                if fn is None:
                    fn = self._programs[sig] = self._make(args, sig)
        return fn

    def _make(self, args, sig):
        fields = dict(self._key)
        kind, env = fields.pop("kind"), fields.pop("env")
        name = key(kind, env, signature=[(list(shape), str(dtype), bool(weak)) for shape, dtype, weak in sig],
                   **fields)
        program = None
        state = load(name)
        if state is not None:
            try:
                program = FlatProgram.from_state(state)
                if not program.matches(args):
                    raise ValueError("its arguments differ from this call's")
            except Exception as e:  # noqa: BLE001
                _warn_once(name, f"mjxgen: ignoring the program cache entry {name} ({type(e).__name__}: {e}); "
                                 "exporting it again")
                program = None
        if program is not None:
            _prepare_runtime()
        else:
            try:
                program = FlatProgram.export(self._run, args)
            except Exception as e:  # noqa: BLE001 (an op jax.export does not support: run the traced program)
                _warn_once(f"export:{kind}", f"mjxgen: can't export the {kind} program ({type(e).__name__}: {e}); "
                                             "running it traced, as a jit")
                return self._traced
            program = self._stored(name, program)

        def call(*a):
            return program.call(*a)

        call.__name__ = call.__qualname__ = f"{kind}_exported"  # the module's name (in JAX's cache key)
        return jax.jit(call, donate_argnums=self._donate)

    def _stored(self, name: str, program: FlatProgram) -> FlatProgram:
        """Serialize the program (and store it, if the cache is on); return the deserialized copy, which a warm
        process will run too, so both lower to the same module (and JAX's compile cache serves the second)."""
        try:
            state = program.to_state()
            copy = FlatProgram.from_state(state)
        except Exception as e:  # noqa: BLE001 (flatbuffers missing, an unserializable tree)
            _warn_once("serialize", f"mjxgen: can't serialize an exported program ({type(e).__name__}: {e}); it "
                                    "will be traced again by the next process"
                                    + (" (pip install flatbuffers)" if isinstance(e, ImportError) else ""))
            return program
        save(name, state)
        return copy
