"""Failures that end cleanly (issue 27): one writer per output, episode ids within int32, a policy's action checked,
a dead PushT worker, a full disk, zip bombs in checkpoints, signals at any moment, --overwrite and --resume
that do what they say.

The arm-task runs use tests/test_durable.py's shape (reach, scripted, 160 episodes in shards of 8, 20 steps); the
PushT runs a few dozen samples in shards of 4.
"""

import errno
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from support import (DURABLE_BATCH, DURABLE_HORIZON, assert_same_episodes, assert_same_pusht_files, episodes_of,
                     subprocess_env)
from mjxgen import checks, cli
from mjxgen.data import shards
from mjxgen.data.writer import DatasetWriter
from mjxgen.generate.config import GenerationConfig
from mjxgen.generate.pipeline import generate_dataset, run_generation
from mjxgen.kernels import randomize
from mjxgen.learn import checkpoints as ckpt
from mjxgen.learn.models import ModelRegistry
from mjxgen.pusht import generate as pusht
from mjxgen.sim import episode
from mjxgen.sim.rollout import rollout_batch

BATCH, HORIZON, N, SEED = DURABLE_BATCH, DURABLE_HORIZON, 160, 11
CLI = ["--batch", str(BATCH), "--episodes", str(N), "--max-steps", str(HORIZON), "--seed", str(SEED), "--no-progress"]
MB = 2**20


def lock_path(out) -> Path:
    """Where a run's lock lives (mjxgen.runtime.runlock); gone once the run ends."""
    return Path(f"{out}.lock")


def _settings(path, **settings) -> GenerationConfig:
    base = dict(env_name="reach", n_episodes=N, output_path=path, policy_type="scripted", max_steps=HORIZON, seed=SEED,
                batch_size=BATCH, progress=False)
    return GenerationConfig(**(base | settings))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, and its stats."""
    path = tmp_path_factory.mktemp("ref") / "ref.h5"
    return path, run_generation(_settings(path)).stats


def _task(argv) -> int:
    return cli.task_main("reach", [*CLI, *argv])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and "Exception ignored" not in err, err
    return err


def _assert_same_file(path, reference) -> None:
    """Every episode and every file attribute equal (but the package versions)."""
    ref = episodes_of(reference)
    got = episodes_of(path)
    assert got.keys() == ref.keys()
    assert_same_episodes(got, ref)
    with h5py.File(path) as f, h5py.File(reference) as g:
        a, b = dict(f.attrs), dict(g.attrs)
    for attrs in (a, b):
        attrs.pop("versions")
    assert a.keys() == b.keys() and a["complete"]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _assert_safe_and_resumable(out, reference, capsys) -> None:
    """The unfinished run holds the reference's episodes, and --resume completes it to the reference's file."""
    part = episodes_of(out, allow_incomplete=True)
    assert part and not out.exists()
    assert_same_episodes(part, episodes_of(reference))
    assert _task(["--output", str(out), "--resume"]) == 0
    capsys.readouterr()
    _assert_same_file(out, reference)
    assert not shards.partial_dir(out).exists() and not lock_path(out).exists()


# --------------------------------------------------------------------------- 2. episode ids within int32


@pytest.mark.parametrize("ids, named", [([2**32, 2**32 + 1, 2**40], "4294967296"), ([2**31], "2147483648"),
                                         ([-1], "-1")])
def test_episode_ids_past_int32_are_refused(reach_env, ids, named):
    with pytest.raises(ValueError, match=rf"episode_ids must be integers in \[0, 2\*\*31\) .*got {named}"):
        rollout_batch(reach_env, "scripted", np.asarray(ids), max_steps=HORIZON)


def test_episode_counts_past_int32_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"n_episodes must be a positive integer of at most 2\*\*31"):
        GenerationConfig(n_episodes=2**31 + 1, output_path=tmp_path / "x.h5")
    assert GenerationConfig(n_episodes=2**31, output_path=tmp_path / "x.h5").n_episodes == checks.MAX_EPISODES
    with pytest.raises(SystemExit) as e:
        cli.main(["datagen", "--n-episodes", "3000000000", "--output", str(tmp_path / "x.h5")])
    err = _one_line(capsys)
    assert e.value.code == 2 and "--n-episodes: must be a positive integer of at most 2**31" in err, err
    assert not (tmp_path / "x.h5").exists()
