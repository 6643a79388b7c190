"""pymunk 7 compatibility for gym-pusht.

gym-pusht 0.1.8 registers its contact counter with
``space.add_collision_handler(0, 0).post_solve = fn``. pymunk 7 removed
``Space.add_collision_handler`` in favour of
``space.on_collision(a, b, begin=..., pre_solve=..., post_solve=..., separate=...)``,
so under pymunk 7 every ``env.reset()`` raises AttributeError.

:func:`patch_pymunk` adds a small ``add_collision_handler`` back onto
``pymunk.Space`` when (and only when) it is missing. The returned handler
forwards each callback assignment to ``on_collision``. pymunk 6 is left
untouched. Old-style ``begin``/``pre_solve`` callbacks returned a bool that
said whether to process the collision; pymunk 7 reads
``arbiter.process_collision`` instead, so a ``False`` return is translated.
"""

from __future__ import annotations

import pymunk

_CALLBACKS = ("begin", "pre_solve", "post_solve", "separate")
_RETURNS_BOOL = ("begin", "pre_solve")


class _CollisionHandler:
    """The pymunk 6 ``CollisionHandler`` surface, on top of ``Space.on_collision``."""

    def __init__(self, space: pymunk.Space, a: int | None, b: int | None):
        object.__setattr__(self, "_space", space)
        object.__setattr__(self, "_types", (a, b))
        object.__setattr__(self, "_callbacks", {})
        object.__setattr__(self, "data", {})

    def __getattr__(self, name):
        if name in _CALLBACKS:
            return self._callbacks.get(name)
        raise AttributeError(name)

    def __setattr__(self, name, fn):
        if name not in _CALLBACKS:
            raise AttributeError(f"collision handlers have no attribute {name!r}")
        self._callbacks[name] = fn
        # on_collision replaces every callback of this (a, b) pair, so pass all of them.
        self._space.on_collision(
            *self._types,
            data=self.data,
            **{k: _adapt(k, f) for k, f in self._callbacks.items() if f is not None},
        )


def _adapt(name, fn):
    if name not in _RETURNS_BOOL:
        return fn

    def callback(arbiter, space, data):
        if fn(arbiter, space, data) is False:
            arbiter.process_collision = False

    return callback


def _add_collision_handler(self, collision_type_a=0, collision_type_b=0):
    return _CollisionHandler(self, collision_type_a, collision_type_b)


def _add_wildcard_collision_handler(self, collision_type_a):
    return _CollisionHandler(self, collision_type_a, None)


def needs_patch() -> bool:
    """True where pymunk lacks ``Space.add_collision_handler`` (pymunk >= 7)."""
    return not hasattr(pymunk.Space, "add_collision_handler")


def patch_pymunk() -> bool:
    """Make gym-pusht run on pymunk 7. Idempotent; returns whether it patched."""
    if not needs_patch():
        return False
    pymunk.Space.add_collision_handler = _add_collision_handler
    pymunk.Space.add_wildcard_collision_handler = _add_wildcard_collision_handler
    return True
