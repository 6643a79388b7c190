"""`mjxgen train` and `mjxgen eval` (seed 000's flags, and ours). Their settings' flags come from TrainConfig
(mjxgen.learn.training), BCConfig (mjxgen.learn.models: the bc model's) and EvalConfig (mjxgen.learn.evaluate);
the flags that are no config's (the model, the dataset and how it is batched, the checkpoint) are made here."""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

from mjxgen.cli.arguments import add_settings, positive_int, report_failures, settings_from
from mjxgen.data.stats import print_table
from mjxgen.learn.evaluate import EvalConfig
from mjxgen.learn.minibatches import BatchLoader
from mjxgen.learn.models import BCConfig, ModelRegistry
from mjxgen.learn.training import TrainConfig


def add_train(t: argparse.ArgumentParser) -> None:
    """`mjxgen train --model bc --dataset PATH --max-steps N --batch-size B` and TrainConfig's and BCConfig's
    other flags."""
    batch_size = inspect.signature(BatchLoader).parameters["batch_size"].default
    t.add_argument("--model", choices=ModelRegistry.names(), default="bc", help="the model (default bc)")
    t.add_argument("--dataset", required=True, help="an HDF5 dataset of the arm tasks (mjxgen datagen's output)")
    t.add_argument("--batch-size", type=positive_int, default=batch_size,
                   help=f"steps per batch (BatchLoader's; default {batch_size})")
    t.add_argument("--obs-keys", nargs="+", default=None, metavar="KEY",
                   help="observations to use, in this order (default: all but image, in the file's order)")
    names = add_settings(t, TrainConfig)
    group = t.add_argument_group("the bc model (BCConfig; its defaults: the recipe measured in docs/training.md)")
    model_names = add_settings(group, BCConfig)
    t.set_defaults(run=lambda a, argv: train(a, names, model_names))


def train(a: argparse.Namespace, names: list[str], model_names: list[str]) -> int:
    """Train, write checkpoints, print a table; the exit status."""
    from mjxgen.data.dataset import TrajectoryDataset
    from mjxgen.learn.training import Trainer

    def run():
        cfg = TrainConfig(**settings_from(a, names))
        bc = BCConfig(**settings_from(a, model_names))
        try:
            dataset = TrajectoryDataset(a.dataset, obs_keys=a.obs_keys)
        except FileNotFoundError as e:
            raise ValueError(f"--dataset {e}") from None
        loader = BatchLoader(dataset, a.batch_size, seed=cfg.seed)
        state_dim = sum(v[0].size for v in loader.obs.values())
        model = ModelRegistry.create(a.model, state_dim=state_dim, action_dim=loader.actions.shape[1],
                                     **bc.model_settings(loader.actions))
        trainer = Trainer(model, loader, cfg)
        return dataset, model, trainer, trainer.train()

    status, result = report_failures(run, ["mjxgen", "train"])
    if status:
        return status
    print_table(_train_rows(a, *result))
    return 0


def _train_rows(a: argparse.Namespace, dataset, model, trainer, r) -> list[tuple[str, str]]:
    """The table `mjxgen train` prints."""
    from mjxgen.learn.training import NORM_SOURCES

    schedule = f", {a.lr_schedule}" if a.lr_schedule != "constant" else ""
    rows = [
        ("Model", model.describe() if hasattr(model, "describe") else model.kind),
        ("Dataset", f"{dataset.path} ({dataset.n_episodes} episodes, {len(dataset)} steps)"),
        ("Observations", " + ".join(dataset.obs_keys)),
        ("Normalization", NORM_SOURCES.get(r.normalization, "-")),
        ("Steps", f"{r.step} (batch {a.batch_size}, lr {a.lr:g}{schedule})"),
        ("Loss", f"{r.losses[0][1]:.4g} -> {r.losses[-1][1]:.4g}" if r.losses else "-"),
    ]
    if trainer.validation is not None:
        rows.append(("Validation loss", f"{r.val_losses[-1][1]:.4g} ({len(trainer.validation.episodes)} held-out "
                                        f"episodes)" if r.val_losses else "-"))
    if r.evals:
        step, ev = r.evals[-1]
        rows.append(("Success (eval)", f"{ev['success_rate']:.1%} at step {step} ({a.eval_episodes} episodes)"))
    return rows + [("Wall time", f"{r.wall_s:.1f} s (compile included)"), ("Steps/s", f"{r.steps_per_s:,.0f}"),
                   ("Checkpoint", str(r.checkpoint)), ("Metrics", str(r.metrics))]


def add_eval(e: argparse.ArgumentParser) -> None:
    """`mjxgen eval CKPT --env-name reach --n-episodes 100` and EvalConfig's other flags."""
    e.add_argument("checkpoint", help="a checkpoint (checkpoints/final.npz), or a directory holding final.npz")
    names = add_settings(e, EvalConfig, env_name={"default": None, "help": "the task (default: the checkpoint's)"})
    e.set_defaults(run=lambda a, argv: evaluate(a, names))


def evaluate(a: argparse.Namespace, names: list[str]) -> int:
    """One batched rollout, a table of the metrics; the exit status."""
    from mjxgen.learn import checkpoints, evaluate as ev

    path = Path(a.checkpoint) / "final.npz" if Path(a.checkpoint).is_dir() else Path(a.checkpoint)

    def run():
        settings = settings_from(a, names)
        settings["env_name"] = settings["env_name"] or checkpoints.read_config(path).get("env_name") or "reach"
        return settings["env_name"], ev.evaluate(path, **settings)

    status, result = report_failures(run, ["mjxgen", "eval"])
    if status:
        return status
    env_name, r = result
    fresh = {True: "yes", False: "NO: some are training episodes", None: "unknown"}[r.fresh]
    rows = [
        ("Checkpoint", str(path)),
        ("Env", f"{env_name}{' (randomized)' if a.randomize else ''}"),
        ("Episodes", f"{r.n_episodes} (seed {a.seed}, max steps {a.max_steps}; not in the training data: {fresh})"),
        ("Success rate", f"{r.success_rate:.1%}"),
        ("Mean length", f"{r.mean_length:.1f}"),
        ("Mean reward", f"{r.mean_reward:.2f}"),
        ("Batch", f"{r.batch} x {r.n_calls}"),
        ("Wall time", f"{r.wall_s:.1f} s (compile included)"),
    ]
    if a.output:
        rows.append(("Output path", a.output))
    print_table(rows)
    return 0
