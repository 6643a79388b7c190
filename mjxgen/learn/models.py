"""Policy networks as plain JAX pytrees, and the registry that builds them by name (seed 000's ModelRegistry).

A model is a frozen, keyword-only dataclass that describes an architecture: hashable, so two models of the
same architecture are equal and share compiled programs (the training step, the evaluation rollout). Its
weights are a separate pytree of arrays (nested dicts and lists), which is what optax updates, what a
checkpoint stores, and what `rollout_batch` receives as `policy_params`.

BC's parameters are {"net": the MLP's layers, "norm": the normalization}; only "net" is trained:

    net:  {"layers": [{"w": (in, out), "b": (out,)}, ...]}
    norm: {"obs_mean": (D,), "obs_std": (D,), "act_mean": (A,), "act_std": (A,)}
          + {"grip": (2,)} with a gripper head: the two gripper values it chooses between (closed, open)

The network sees the last `n_obs` observations (n_obs, D) and predicts the next `chunk` actions (chunk, A).
As a policy (mjxgen.learn.evaluate.NetworkPolicy) it carries its observation history and the overlapping chunks in
its state and acts with their exponentially weighted average (ACT's temporal ensembling).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from mjxgen import checks
from mjxgen.checks import setting

# A standard deviation below this marks a (nearly) constant feature: it is scaled by 1, not blown up. Reach's
# gripper action is always 0, and without randomization its 7th joint moves by float32 noise (std 5e-7 rad), which
# randomized episodes exceed by 0.02 rad. (diffusion_policy's normalizer uses the same 1e-4 for its range.)
MIN_STD = 1e-4
GRIPPER_HEAD = ("auto", "on", "off")


def widths(name: str, value) -> tuple[int, ...]:
    """Hidden layer widths: a tuple or list of positive integers (empty: no hidden layer)."""
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of positive integers, got {type(value).__name__} {value!r}")
    return tuple(checks.positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))


class PolicyState(NamedTuple):
    """What a BC policy carries from step to step inside the rollout."""

    history: jax.Array  # (n_obs, D) the last n_obs flat observations, oldest first
    sums: jax.Array  # (chunk, A) weighted sums of the predictions for this step and the next chunk - 1
    weights: jax.Array  # (chunk,) the sums of their weights


@dataclasses.dataclass(frozen=True, kw_only=True)
class BCModel:
    """Behaviour cloning: an MLP from the last n_obs flat observations to the next chunk actions, on normalized
    inputs and outputs (the normalization comes from the dataset and is stored with the weights). With
    gripper_head, the last action dimension is a classifier between the dataset's two gripper values."""

    kind: ClassVar[str] = "bc"
    state_dim: int  # D: the flat observation, the observation keys concatenated in the dataset's stored order
    action_dim: int  # A
    hidden: tuple[int, ...] = (256, 256)  # hidden layer widths (ReLU)
    n_obs: int = 1  # observations the network sees: the current one and the n_obs - 1 before it
    chunk: int = 1  # actions it predicts: the current one and the chunk - 1 after it
    ensemble_decay: float = 0.0  # a prediction made j steps ago weighs exp(-ensemble_decay * j) when acting
    gripper_head: bool = False  # classify the last action dimension (open/close) instead of regressing it

    def __post_init__(self):
        for name in ("state_dim", "action_dim", "n_obs", "chunk"):
            object.__setattr__(self, name, checks.positive_int(name, getattr(self, name)))
        object.__setattr__(self, "hidden", widths("hidden", self.hidden))
        object.__setattr__(self, "ensemble_decay", checks.finite_float("ensemble_decay", self.ensemble_decay))
        object.__setattr__(self, "gripper_head", checks.boolean("gripper_head", self.gripper_head))

    # --- weights and normalization -------------------------------------------------------------------------
    def init(self, key: jax.Array) -> dict:
        """The MLP's weights: LeCun-normal, zero biases."""
        sizes = (self.n_obs * self.state_dim, *self.hidden, self.chunk * self.action_dim)
        keys = jax.random.split(key, len(sizes) - 1)
        layers = [{"w": jax.random.normal(k, (n_in, n_out), jnp.float32) / np.sqrt(n_in),
                   "b": jnp.zeros((n_out,), jnp.float32)} for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])]
        return {"layers": layers}

    def identity_norm(self) -> dict:
        """A normalization that changes nothing (before statistics are known)."""
        d, a = self.state_dim, self.action_dim
        norm = {"obs_mean": jnp.zeros(d), "obs_std": jnp.ones(d), "act_mean": jnp.zeros(a), "act_std": jnp.ones(a)}
        return norm | ({"grip": jnp.array([-1.0, 1.0])} if self.gripper_head else {})

    # --- the network ---------------------------------------------------------------------------------------
    def forward(self, net: dict, x: jax.Array) -> jax.Array:
        """Normalized observations (..., n_obs, D) -> outputs (..., chunk, A): normalized actions, and with
        gripper_head the gripper's logit (open vs closed) in the last column."""
        x = x.reshape(*x.shape[:-2], self.n_obs * self.state_dim)
        *hidden, last = net["layers"]
        for layer in hidden:
            x = jax.nn.relu(x @ layer["w"] + layer["b"])
        y = x @ last["w"] + last["b"]
        return y.reshape(*y.shape[:-1], self.chunk, self.action_dim)

    def _outputs(self, params: dict, obs: jax.Array) -> jax.Array:
        """Flat observations (..., n_obs, D) -> (..., chunk, A) in the dataset's units, except that the gripper
        column is the probability of "open" with gripper_head."""
        norm = params["norm"]
        y = self.forward(params["net"], (obs - norm["obs_mean"]) / norm["obs_std"])
        values = y * norm["act_std"] + norm["act_mean"]
        if self.gripper_head:
            values = values.at[..., -1].set(jax.nn.sigmoid(y[..., -1]))
        return values

    def _to_action(self, params: dict, values: jax.Array) -> jax.Array:
        """Outputs (..., A) -> actions: a gripper probability becomes the closed or the open value."""
        if not self.gripper_head:
            return values
        low, high = params["norm"]["grip"][0], params["norm"]["grip"][1]
        return values.at[..., -1].set(jnp.where(values[..., -1] > 0.5, high, low))

    def predict(self, params: dict, obs: jax.Array) -> jax.Array:
        """Flat observations (..., n_obs, D) -> the next chunk actions (..., chunk, A), in the dataset's units."""
        return self._to_action(params, self._outputs(params, obs))

    def loss(self, net: dict, norm: dict, obs: jax.Array, actions: jax.Array, weights: jax.Array) -> jax.Array:
        """Weighted mean over steps of the squared error on normalized actions (with gripper_head, the gripper's
        term is the binary cross-entropy of open vs closed instead): obs (N, n_obs, D), actions (N, chunk, A),
        weights (N, chunk). (N, D), (N, A) and (N,) are taken when n_obs = chunk = 1."""
        n = obs.shape[0]
        obs = obs.reshape(n, self.n_obs, self.state_dim)
        actions, weights = actions.reshape(n, self.chunk, self.action_dim), weights.reshape(n, self.chunk)
        y = self.forward(net, (obs - norm["obs_mean"]) / norm["obs_std"])
        err = jnp.square(y - (actions - norm["act_mean"]) / norm["act_std"])
        if self.gripper_head:
            is_open = (actions[..., -1] > 0.5 * (norm["grip"][0] + norm["grip"][1])).astype(y.dtype)
            logit = y[..., -1]
            bce = jnp.maximum(logit, 0.0) - logit * is_open + jnp.log1p(jnp.exp(-jnp.abs(logit)))
            err = err.at[..., -1].set(bce)
        per_step = jnp.mean(err, axis=-1)
        return jnp.sum(per_step * weights) / jnp.maximum(jnp.sum(weights), 1.0)

    # --- as a policy (mjxgen.learn.evaluate.NetworkPolicy) -----------------------------------------------
    def policy_init(self, obs: jax.Array) -> PolicyState:
        """The state before the first step: the first flat observation (D,) fills the history."""
        return PolicyState(history=jnp.tile(obs[None], (self.n_obs, 1)),
                           sums=jnp.zeros((self.chunk, self.action_dim), obs.dtype),
                           weights=jnp.zeros((self.chunk,), obs.dtype))

    def policy_step(self, params: dict, state: PolicyState, obs: jax.Array) -> tuple[jax.Array, PolicyState]:
        """One step: (action (A,), next state). The new chunk joins the older ones' predictions for the coming
        steps, each weighted by exp(-ensemble_decay * its age); the action is their weighted mean for now."""
        history = jnp.concatenate([state.history[1:], obs[None]])
        values = self._outputs(params, history)  # (chunk, A)
        w = jnp.exp(-self.ensemble_decay * jnp.arange(self.chunk, dtype=values.dtype))
        sums, weights = state.sums + values * w[:, None], state.weights + w
        action = self._to_action(params, sums[0] / weights[0])
        shift = jnp.zeros_like(sums[:1]), jnp.zeros_like(weights[:1])
        return action, PolicyState(history, jnp.concatenate([sums[1:], shift[0]]),
                                   jnp.concatenate([weights[1:], shift[1]]))

    def describe(self) -> str:
        """One line for the CLI's table: the sizes and options."""
        text = f"{self.kind} {self.n_obs} x {self.state_dim} -> {' -> '.join(map(str, self.hidden))} -> " \
               f"{self.chunk} x {self.action_dim}"
        extras = [f"ensemble decay {self.ensemble_decay:g}"] if self.chunk > 1 else []
        return text + "".join(f"; {e}" for e in extras + (["gripper head"] if self.gripper_head else []))

    def to_json(self) -> dict:
        return {"kind": self.kind, "state_dim": self.state_dim, "action_dim": self.action_dim,
                "hidden": list(self.hidden), "n_obs": self.n_obs, "chunk": self.chunk,
                "ensemble_decay": self.ensemble_decay, "gripper_head": self.gripper_head}


def _std(s: np.ndarray) -> np.ndarray:
    """Standard deviations as float32, those of (nearly) constant features (below MIN_STD) replaced by 1."""
    return np.where(s < MIN_STD, 1.0, s).astype(np.float32)


def normalization(obs: np.ndarray, actions: np.ndarray, gripper_head: bool = False) -> dict:
    """Mean and standard deviation of flat observations (N, D) and actions (N, A), as float32 arrays; constant
    features get a standard deviation of 1. With gripper_head also "grip": the smallest and the largest value of
    the last action dimension (a ValueError if it takes more than two values)."""
    obs, actions = np.asarray(obs, np.float64), np.asarray(actions, np.float64)
    norm = {"obs_mean": obs.mean(axis=0).astype(np.float32), "obs_std": _std(obs.std(axis=0)),
            "act_mean": actions.mean(axis=0).astype(np.float32), "act_std": _std(actions.std(axis=0))}
    if gripper_head:
        check_binary_gripper(actions)
        norm["grip"] = np.array([actions[:, -1].min(), actions[:, -1].max()], np.float32)
    return norm


def stored_normalization(statistics: dict | None, obs_keys: tuple[str, ...], gripper_head: bool = False) -> dict | None:
    """normalization() from a file's stored statistics (mjxgen.data.statistics: {"observations/<key>": {"mean",
    "std", "min", "max", ...}, "actions": {...}}, per column) instead of its steps: the keys' means and standard
    deviations concatenated in obs_keys' order, the same rule for constant features, and "grip" from the actions'
    min and max. None when the statistics lack one of the arrays (a version 1 file has none)."""
    names = [f"observations/{k}" for k in obs_keys] + ["actions"]
    if not isinstance(statistics, dict) or any(not isinstance(statistics.get(n), dict) for n in names):
        return None

    def column(name: str, field: str) -> np.ndarray:
        return np.asarray(statistics[name][field], np.float64).reshape(-1)

    obs = names[:-1]
    norm = {"obs_mean": np.concatenate([column(n, "mean") for n in obs]).astype(np.float32),
            "obs_std": _std(np.concatenate([column(n, "std") for n in obs])),
            "act_mean": column("actions", "mean").astype(np.float32), "act_std": _std(column("actions", "std"))}
    if gripper_head:
        norm["grip"] = np.array([column("actions", "min")[-1], column("actions", "max")[-1]], np.float32)
    return norm


def binary_gripper(actions: np.ndarray) -> bool:
    """Whether the last action dimension takes at most two values (an open/close gripper)."""
    return len(np.unique(np.asarray(actions)[:, -1])) <= 2


def check_binary_gripper(actions: np.ndarray) -> None:
    """A ValueError unless the last action dimension takes at most two values (what a gripper head needs)."""
    values = np.unique(np.asarray(actions)[:, -1])
    if len(values) > 2:
        raise ValueError(f"a gripper head needs a gripper action of at most two values; the data have "
                         f"{len(values)} (e.g. {', '.join(f'{v:g}' for v in values[:4])})")


@dataclasses.dataclass(frozen=True, kw_only=True)
class BCConfig:
    """The bc model that `mjxgen train --model bc` builds: its settings table (the flags --hidden, --n-obs,
    --chunk, --ensemble-decay, --gripper-head). The defaults are the recipe measured in docs/training.md: an MLP of
    256-256 that predicts 8-action chunks, acts with their temporal ensemble, and classifies the gripper when the
    data's gripper action takes at most two values. BCModel's own defaults stay seed 000's memoryless MLP
    (`ModelRegistry.create("bc", state_dim=20, action_dim=4)`). Keyword-only, validated."""

    hidden: tuple[int, ...] = setting((256, 256), "hidden layer widths of the MLP (ReLU)", check=widths,
                                      item_check=checks.positive_int, nargs="+", metavar="WIDTH")
    n_obs: int = setting(1, "observations the network sees: this step's and the n_obs - 1 before it (the "
                            "episode's first step repeated before its start)",
                         flag_help="observations the network sees: this step's and the ones before it",
                         check=checks.positive_int)
    chunk: int = setting(8, "actions it predicts: this step's and the next chunk - 1 (past the episode's end they "
                            "weigh 0)", flag_help="actions it predicts: this step's and the next ones",
                         check=checks.positive_int)
    ensemble_decay: float = setting(0.1, "temporal ensembling: acting averages the overlapping chunks' predictions "
                                         "for the step, one made j steps ago weighted exp(-ensemble_decay * j)",
                                    flag_help="temporal ensembling of the overlapping chunks: a prediction made j "
                                              "steps ago weighs exp(-decay * j)", check=checks.finite_float)
    gripper_head: str = setting("auto", "classify the last action dimension (open/close, cross-entropy) instead of "
                                        "regressing it: on, off, or auto (when the data's gripper action takes at "
                                        "most two values)", choices=GRIPPER_HEAD)

    def __post_init__(self):
        checks.check_fields(self)

    def model_settings(self, actions: np.ndarray | None = None) -> dict:
        """BCModel's keywords but state_dim and action_dim; `actions` (N, A) decide gripper_head "auto"."""
        head = self.gripper_head == "on" or (self.gripper_head == "auto" and actions is not None
                                             and binary_gripper(actions))
        return {"hidden": self.hidden, "n_obs": self.n_obs, "chunk": self.chunk,
                "ensemble_decay": self.ensemble_decay, "gripper_head": head}


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
