"""Policy networks as plain JAX pytrees, and the registry that builds them by name (seed 000's ModelRegistry).

A model is a frozen, keyword-only dataclass that describes an architecture: hashable, so two models of the
same architecture are equal and share compiled programs (the training step, the evaluation rollout). Its
weights are a separate pytree of arrays (nested dicts and lists), which is what optax updates, what a
checkpoint stores, and what `rollout_batch` receives as `policy_params`.

BC's parameters are {"net": the MLP's layers, "norm": the normalization}; only "net" is trained:

    net:  {"layers": [{"w": (in, out), "b": (out,)}, ...]}
    norm: {"obs_mean": (D,), "obs_std": (D,), "act_mean": (A,), "act_std": (A,)}
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

# A standard deviation below this marks a (nearly) constant feature: it is scaled by 1, not blown up. Reach's
# gripper action is always 0, and without randomization its 7th joint moves by float32 noise (std 5e-7 rad), which
# randomized episodes exceed by 0.02 rad. (diffusion_policy's normalizer uses the same 1e-4 for its range.)
MIN_STD = 1e-4


@dataclasses.dataclass(frozen=True, kw_only=True)
class BCModel:
    """Behaviour cloning: an MLP from the flat observation (D,) to the action (A,), on normalized inputs and
    outputs (the normalization comes from the dataset and is stored with the weights)."""

    kind: ClassVar[str] = "bc"
    state_dim: int  # D: the flat observation, the observation keys concatenated in the dataset's stored order
    action_dim: int  # A
    hidden: tuple[int, ...] = (256, 256)  # hidden layer widths (ReLU)

    def __post_init__(self):
        for name in ("state_dim", "action_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        hidden = tuple(self.hidden)
        if not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h > 0 for h in hidden):
            raise ValueError(f"hidden must be positive integers, got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in hidden))

    def init(self, key: jax.Array) -> dict:
        """The MLP's weights: LeCun-normal, zero biases."""
        sizes = (self.state_dim, *self.hidden, self.action_dim)
        keys = jax.random.split(key, len(sizes) - 1)
        layers = [{"w": jax.random.normal(k, (n_in, n_out), jnp.float32) / np.sqrt(n_in),
                   "b": jnp.zeros((n_out,), jnp.float32)} for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])]
        return {"layers": layers}

    def identity_norm(self) -> dict:
        """A normalization that changes nothing (before statistics are known)."""
        d, a = self.state_dim, self.action_dim
        return {"obs_mean": jnp.zeros(d), "obs_std": jnp.ones(d), "act_mean": jnp.zeros(a), "act_std": jnp.ones(a)}

    def forward(self, net: dict, x: jax.Array) -> jax.Array:
        """Normalized observations (..., D) -> normalized actions (..., A)."""
        *hidden, last = net["layers"]
        for layer in hidden:
            x = jax.nn.relu(x @ layer["w"] + layer["b"])
        return x @ last["w"] + last["b"]

    def predict(self, params: dict, obs: jax.Array) -> jax.Array:
        """Flat observations (..., D) -> actions (..., A), in the dataset's units."""
        norm = params["norm"]
        y = self.forward(params["net"], (obs - norm["obs_mean"]) / norm["obs_std"])
        return y * norm["act_std"] + norm["act_mean"]

    def loss(self, net: dict, norm: dict, obs: jax.Array, actions: jax.Array, weights: jax.Array) -> jax.Array:
        """Weighted mean squared error on normalized actions: obs (N, D), actions (N, A), weights (N,)."""
        y = self.forward(net, (obs - norm["obs_mean"]) / norm["obs_std"])
        err = jnp.mean(jnp.square(y - (actions - norm["act_mean"]) / norm["act_std"]), axis=-1)
        return jnp.sum(err * weights) / jnp.maximum(jnp.sum(weights), 1.0)

    def to_json(self) -> dict:
        return {"kind": self.kind, "state_dim": self.state_dim, "action_dim": self.action_dim,
                "hidden": list(self.hidden)}


def normalization(obs: np.ndarray, actions: np.ndarray) -> dict:
    """Mean and standard deviation of flat observations (N, D) and actions (N, A), as float32 arrays; constant
    features get a standard deviation of 1."""
    obs, actions = np.asarray(obs, np.float64), np.asarray(actions, np.float64)

    def std(x):
        s = x.std(axis=0)
        return np.where(s < MIN_STD, 1.0, s).astype(np.float32)

    return {"obs_mean": obs.mean(axis=0).astype(np.float32), "obs_std": std(obs),
            "act_mean": actions.mean(axis=0).astype(np.float32), "act_std": std(actions)}


class ModelRegistry:
    """Models by name, as seed 000's `ModelRegistry.create("bc", state_dim=20, action_dim=4)`."""

    _models: ClassVar[dict[str, type]] = {"bc": BCModel}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(sorted(cls._models))

    @classmethod
    def register(cls, kind: str, model_class: type) -> None:
        """Add a model class (a frozen dataclass with init/predict/loss/to_json) under `kind`."""
        cls._models[kind] = model_class

    @classmethod
    def create(cls, kind: str, **kwargs: Any):
        """A model of `kind` with these settings; a ValueError names the known kinds."""
        if kind not in cls._models:
            raise ValueError(f"unknown model {kind!r}; choose one of {', '.join(cls.names())}")
        return cls._models[kind](**kwargs)

    @classmethod
    def from_json(cls, spec: dict):
        """The model a checkpoint's config describes (the inverse of `to_json`)."""
        spec = dict(spec)
        kind = spec.pop("kind", None)
        if "hidden" in spec:
            spec["hidden"] = tuple(spec["hidden"])
        try:
            return cls.create(kind, **spec)
        except TypeError as e:
            raise ValueError(f"bad model settings {spec!r} for {kind!r}: {e}") from None
