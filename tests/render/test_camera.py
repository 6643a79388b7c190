"""Camera datasets: frames made inside the simulation program by the JAX renderer (the default) are the frames
MuJoCo's renderer draws of the same states, under the same light, camera offset and colour draws; colour jitter
is off by default, stored per episode when on; segments hold the frames that fit the budget."""

import h5py
import numpy as np
import pytest

from support import DURABLE_BATCH, DURABLE_HORIZON
from mjxgen import generate_dataset
from mjxgen.kernels.randomize import RandomizationConfig
from mjxgen.render import camera as render_camera
from mjxgen.render.opengl import EpisodeRenderer, RenderError
from mjxgen import make_env

SIZE = (24, 40)  # the suite's camera size (tests/test_api.py's too): one compiled camera program
# The two renderers differ at silhouettes and shadow edges (MuJoCo anti-aliases with 4x multisampling and softens
# its shadow map; the JAX renderer takes one sample per pixel), which at 24x40 are a few % of the pixels. So: at
# most EDGE_FRACTION of the pixels differ by more than EDGE levels, and elsewhere the mean difference per channel
# is at most AWAY_BAR (0-255; measured 0.2-1.2 with random light, camera offset and colours).
EDGE, EDGE_FRACTION, AWAY_BAR = 30, 0.12, 1.5


def _generate(path, renderer, randomization):
    return generate_dataset("reach", DURABLE_BATCH, path, "scripted", randomization, DURABLE_HORIZON, 11,
                            batch_size=DURABLE_BATCH, camera=True, image_size=SIZE, renderer=renderer, progress=False)


def _frames(path):
    with h5py.File(path) as f:
        return {name: (f[name]["observations/image"][()], {k: v[()] for k, v in f[name]["randomization"].items()})
                for name in f}


@pytest.fixture(scope="module")
def jittered(tmp_path_factory):
    """The same episodes drawn by both renderers, with light, camera offset and colour jitter randomized."""
    d = tmp_path_factory.mktemp("camera")
    draws = RandomizationConfig(colour=0.3)
    _generate(d / "jax.h5", "jax", draws)
    try:
        EpisodeRenderer(make_env("reach").xml, *SIZE).close()
    except RenderError as e:
        pytest.skip(f"no OpenGL backend for MuJoCo's renderer here: {e}")
    _generate(d / "mujoco.h5", "mujoco", draws)
    return _frames(d / "jax.h5"), _frames(d / "mujoco.h5")


def test_the_jax_frames_are_mujocos(jittered):
    jax_files, mujoco_files = jittered
    assert jax_files.keys() == mujoco_files.keys()
    for name, (frames, draw) in jax_files.items():
        reference, ref_draw = mujoco_files[name]
        assert frames.shape == reference.shape and frames.shape[1:] == (*SIZE, 3) and frames.dtype == np.uint8
        for k in draw:
            np.testing.assert_array_equal(draw[k], ref_draw[k], err_msg=k)
        diff = np.abs(frames.astype(float) - reference.astype(float))
        edge = diff.max(axis=-1) > EDGE
        assert edge.mean() <= EDGE_FRACTION and diff[~edge].mean() <= AWAY_BAR, (name, edge.mean(), diff[~edge].mean())
        assert frames.std() > 10 and np.abs(frames[-1].astype(int) - frames[0]).sum() > 0  # a scene; the arm moves
        # Another episode's frames (other draws: light, camera offset, colours) are far from these.
        other = next(v[0] for k, v in mujoco_files.items() if k != name)
        assert np.abs(frames.astype(float) - other).mean() > 2 * diff.mean(), name


def test_colour_jitter_is_drawn_stored_and_off_by_default(jittered, tmp_path):
    jax_files, _ = jittered
    scales = np.stack([draw["geom_rgb_scale"] for _, draw in jax_files.values()])  # (E, ngeom, 3)
    assert scales.min() >= 0.7 and scales.max() <= 1.3 and scales.std(axis=0).min() > 0.05
    _generate(tmp_path / "plain.h5", "jax", RandomizationConfig())  # colour's default: 0
    plain = _frames(tmp_path / "plain.h5")
    for name, (frames, draw) in plain.items():
        np.testing.assert_array_equal(draw["geom_rgb_scale"], 1.0)
        np.testing.assert_array_equal(draw["light_dir"], jax_files[name][1]["light_dir"])  # the other draws alike
        assert np.abs(frames.astype(float) - jax_files[name][0]).mean() > 2  # the jitter changed the colours


def test_segments_hold_the_frames_that_fit():
    cam = render_camera.Camera(64, 64)
    assert render_camera.segment_steps(None, 4096, 32) == 32
    assert render_camera.segment_steps(cam, 256, 32) == 32  # 256 x 32 frames of 12 KiB: 96 MiB
    assert render_camera.segment_steps(cam, 4096, 32) == render_camera.FRAME_BUDGET // (4096 * 64 * 64 * 3) == 5
    assert render_camera.segment_steps(cam, 10**6, 32) == 1
