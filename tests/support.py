"""Constants and helpers the tests share (the fixtures and hooks are conftest.py's). Imported as `support`:
pytest's `pythonpath` setting puts tests/ on sys.path, and never the checkout's root, so mjxgen itself is always
the installed package."""

import os
from pathlib import Path
from typing import Iterator

import h5py
import jax.numpy as jnp
import numpy as np
import pytest

from mjxgen.kernels import policies
from mjxgen.data import shards
from mjxgen.data.hostbatch import HostBatch
from mjxgen.data.writer import DatasetWriter
from mjxgen.envs.reach import ReachEnv
from mjxgen.generate.config import GenerationConfig
from mjxgen.generate.pipeline import run_generation

# Small files kept in the repository (format version 1 files: the readers still take them).
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# One horizon for the whole suite: long enough for the scripted expert to succeed (mean length ~66).
HORIZON = 120
BATCH = 32
# A small reach/scripted shape for runs of many short batches (tests/test_durable.py, camera tests) and for the
# argument and flag tests (tests/test_api.py, tests/test_cli.py).
DURABLE_BATCH, DURABLE_HORIZON = 8, 20
# The shape of seed 000's examples (tests/test_docs.py runs them verbatim): 100 episodes of at most 200 steps (its
# default horizon), one block. Every reach/random run of the suite uses it, so that policy compiles once.
SEED_N, SEED_T = 100, 200



def session_cache_dir(tmp_path_factory) -> Path:
    """The session's persistent compilation cache: this process's (shared_compile_cache) and every subprocess's
    (subprocess_env), so a shape compiled on either side is a cache hit on the other (where JAX's cache key,
    which covers the XLA flags and the device count, matches). Tests of the cache itself use their own."""
    return tmp_path_factory.getbasetemp() / "jax-cache"




def subprocess_env(tmp_path_factory) -> dict:
    """This process's environment for a subprocess that runs mjxgen: every such subprocess of the session
    shares one persistent compilation cache with this process, so only the first one compiles a shape, and
    mjxgen's exported programs (mjxgen.sim.programs, in the cache's programs/), so only the first one traces it.
    This process keeps its own program cache off: its tests count what it traces."""
    env = dict(os.environ)
    env["MJXGEN_COMPILE_CACHE"] = str(session_cache_dir(tmp_path_factory))
    env["JAX_COMPILATION_CACHE_DIR"] = str(session_cache_dir(tmp_path_factory))
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return env


def _natural(name: str):
    head, _, number = name.rpartition("_")
    return (head, int(number)) if number.isdigit() else (name, -1)


def iter_groups(path: str | os.PathLike) -> Iterator[tuple[str, h5py.Group]]:
    """(name, group) of every top-level group of a complete file or of an unfinished run's shards, in item
    order (episode_2 before episode_10). Each group is valid until the next one is requested."""
    path = Path(path)
    files = [shard for _, _, shard in shards.list_shards(path)] if path.is_dir() else [path]
    for file in files:
        with h5py.File(file, "r") as f:
            for name in sorted(f, key=_natural):
                yield name, f[name]


def episodes_of(path, allow_incomplete=False) -> dict:
    """{name: ({dataset path: array}, attributes)} of every episode of a file (or of an unfinished run)."""
    out = {}
    for name, g in iter_groups(path if Path(path).is_file() or not allow_incomplete
                                      else shards.partial_dir(path)):
        arrays = {}
        g.visititems(lambda k, v: arrays.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
        out[name] = (arrays, dict(g.attrs))
    return out


def assert_same_episodes(part: dict, ref: dict) -> None:
    """Every episode of `part` (episodes_of) is in `ref`, with equal arrays and attributes."""
    for name, (arrays, attrs) in part.items():
        ref_arrays, ref_attrs = ref[name]
        assert arrays.keys() == ref_arrays.keys()
        for k in arrays:
            np.testing.assert_array_equal(arrays[k], ref_arrays[k], err_msg=f"{name}/{k}")
        assert attrs == ref_attrs


# The fields of a PushT sample (seed 003).
PUSHT_ARRAYS = [
    "weights", "start_pixels", "start_normalized", "goal_pixels", "goal_normalized", "timestamps",
    "dmp_waypoints_pixels", "dmp_waypoints_normalized", "dmp_velocity_normalized", "dmp_forcing_normalized",
    "dmp_canonical_phase_actions", "dmp_canonical_phase_observations",
    "executed_actions_pixels", "executed_action_timestamps", "observations", "observation_timestamps", "rewards",
]
PUSHT_BLOBS = [
    "reset_info", "env_info", "step_infos", "env_pos_agent", "env_vel_agent", "env_block_pose", "env_goal_pose",
    "env_n_contacts", "env_is_success", "env_coverage",
]
PUSHT_ATTRS = [
    "seed", "duration", "stiffness", "damping", "executed_steps", "terminated", "truncated", "dmp_dt",
    "dmp_alpha_s", "dmp_n_basis",
]


# gym-pusht's coverage (shapely/GEOS polygon intersection) is not bit-reproducible: the same state gives
# values one float64 ulp apart from call to call, even in one process. Coverage, the reward derived from it,
# and the info blobs that carry it are therefore compared to 1e-12; everything else must be identical.
PUSHT_NOISY = {"rewards", "step_infos", "env_coverage", "env_info"}


def _close(x, y, name):
    if isinstance(x, dict):
        assert x.keys() == y.keys(), name
        for k in x:
            _close(x[k], y[k], f"{name}.{k}")
    elif isinstance(x, list):
        assert len(x) == len(y), name
        for i, (u, v) in enumerate(zip(x, y)):
            _close(u, v, f"{name}[{i}]")
    elif isinstance(x, float):
        assert x == pytest.approx(y, rel=1e-12, abs=1e-15), name
    else:
        assert x == y, name


def assert_same_pusht_files(path_a, path_b) -> None:
    """Two PushT files hold the same samples: every field exact, but the coverage-derived ones (PUSHT_NOISY)."""
    from mjxgen.pusht import writer

    with h5py.File(path_a) as a, h5py.File(path_b) as b:
        assert list(a) == list(b)
        for name in a:
            for key in PUSHT_ARRAYS:
                x, y = a[name][key][()], b[name][key][()]
                if key in PUSHT_NOISY:
                    np.testing.assert_allclose(x, y, rtol=1e-6, err_msg=f"{name}/{key}")
                else:
                    np.testing.assert_array_equal(x, y, err_msg=f"{name}/{key}")
            for key in PUSHT_BLOBS:
                if key in PUSHT_NOISY:
                    _close(writer.read_json(a[name], key), writer.read_json(b[name], key), f"{name}/{key}")
                else:
                    assert a[name][key][()] == b[name][key][()], f"{name}/{key}"
            for key in PUSHT_ATTRS:
                assert a[name].attrs[key] == b[name].attrs[key]



def generate_file(tmp_path_factory, env_name, n, policy, horizon, batch, seed):
    path = tmp_path_factory.mktemp("data") / f"{env_name}_{policy}.h5"
    cfg = GenerationConfig(env_name=env_name, n_episodes=n, output_path=path, policy_type=policy, max_steps=horizon,
                           seed=seed, batch_size=batch, progress=False)
    return path, run_generation(cfg)




PP_BATCH = 16
PP_HORIZON = 200  # the expert needs ~150 steps

class NanReach(ReachEnv):
    """Reach whose "nan" policy sends NaN actions in episodes whose target lies beyond x = 0.5 m. Register it
    with `monkeypatch.setitem(mjxgen.envs.ENVS, "reach_nan", NanReach)`."""

    name = "reach_nan"
    policy_names = ("nan",)

    def _policies(self):
        def act(key, obs):
            nan = obs["target_pos"][0] > 0.5
            return jnp.where(nan, jnp.nan, policies.p_controller(obs["ee_pos"], obs["target_pos"]))

        return {"nan": policies.stateless(act)}


# Synthetic batches for the writer and the readers (no simulation): reach's observation widths, arbitrary numbers.
FAKE_OBS = {"joint_pos": 7, "joint_vel": 7, "ee_pos": 3, "target_pos": 3}


def fake_batch(ids, horizon=5):
    """A HostBatch of arbitrary numbers (the writer does not interpret them): episodes of `horizon` steps."""
    b = len(ids)
    n = b * horizon
    rng = np.random.default_rng(0)
    return HostBatch(
        first=min(ids), end=max(ids) + 1, episode_ids=np.asarray(ids), lengths=np.full(b, horizon),
        success=np.zeros(b, bool), valid=np.ones(b, bool),
        observations={k: rng.normal(size=(n, d)).astype(np.float32) for k, d in FAKE_OBS.items()},
        actions=rng.normal(size=(n, 4)).astype(np.float32), rewards=rng.normal(size=n).astype(np.float32),
        policy_record={}, randomization=None, mocap_pos=np.zeros((b, 1, 3)), qpos=None,
    )


class StandInRenderer:
    """opengl.EpisodeRenderer's surface without GL: a frame whose pixels encode (episode mocap x, step)."""

    def __init__(self, model_xml, height, width):
        self.shape = (height, width, 3)

    def render(self, qpos, mocap_pos, light_dir=None, camera_offset=None, rgb_scale=None):
        return np.stack([np.full(self.shape, (int(mocap_pos[0, 0]) + t) % 256, np.uint8) for t in range(len(qpos))])

    def close(self):
        pass


def image_file(path, monkeypatch, n_episodes, length, size):
    from mjxgen.render import opengl

    monkeypatch.setattr(opengl, "EpisodeRenderer", StandInRenderer)
    w = DatasetWriter(path, env_name="reach", policy="random", seed=0, config={}, model_xml="<mujoco/>",
                      obs_shapes={k: (d,) for k, d in FAKE_OBS.items()}, action_size=4, image_size=size)
    for first in range(0, n_episodes, 100):
        b = fake_batch(list(range(first, first + 100)), horizon=length)
        mocap = np.arange(first, first + 100, dtype=float)[:, None, None] * np.ones((1, 1, 3))
        w.write_batch(b._replace(mocap_pos=mocap, qpos=np.zeros((100 * length, 9))))
    w.close()
