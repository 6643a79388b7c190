"""The command lines: one-line errors for bad input, and a real small run."""

import subprocess
import sys

import h5py
import pytest

from mjxgen import cli


@pytest.mark.parametrize(
    "argv, message",
    [
        (["datagen", "--env-name", "juggle", "--n-episodes", "2"], "unknown env 'juggle'"),
        (["datagen", "--n-episodes", "0"], "must be a positive integer"),
        (["datagen", "--n-episodes", "-3"], "must be a positive integer"),
        (["datagen", "--batch-size", "1.5"], "must be a positive integer"),
        (["datagen", "--policy", "teleop"], "unknown policy 'teleop'"),
        (["datagen", "--camera", "--image-size", "64", "0"], "must be a positive integer"),
        (["datagen", "--camera", "--image-size", "600", "64"], "image_size must be two integers"),
    ],
)
def test_datagen_bad_input_is_one_line(argv, message, capsys, tmp_path):
    argv = argv + ["--output", str(tmp_path / "x.h5")]
    try:
        status = cli.main(argv)
    except SystemExit as e:  # argparse's own errors
        status = e.code
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert message in err
    assert err.count("\n") == 0 and "error:" in err


def test_existing_output_and_unwritable_directory(capsys, tmp_path):
    existing = tmp_path / "old.h5"
    existing.write_text("")
    assert cli.task_main("reach", ["--batch", "2", "--output", str(existing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "already exists; pass --overwrite" in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.task_main("reach", ["--batch", "2", "--output", str(blocker / "d" / "x.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot create output directory" in err


def test_batch_must_be_a_positive_integer(capsys):
    for bad in ("0", "-1", "abc", "2.5"):
        with pytest.raises(SystemExit) as e:
            cli.task_main("reach", ["--batch", bad])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert "--batch: must be a positive integer" in err and err.count("\n") == 0


def test_reach_module_runs_end_to_end(tmp_path):
    """`python -m mjxgen.reach` in a fresh process: stats table, and a complete file."""
    out = tmp_path / "r.h5"
    proc = subprocess.run(
        [sys.executable, "-m", "mjxgen.reach", "--batch", "4", "--max-steps", "10", "--output", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for label in ("Episodes", "Total steps", "Mean length", "Mean reward", "Success rate", "File size", "Physics steps/s"):
        assert label in proc.stdout
    with h5py.File(out) as f:
        assert f.attrs["complete"] and len(f.keys()) == 4
    # A second run without --overwrite is refused in one line, with no traceback.
    again = subprocess.run([sys.executable, "-m", "mjxgen.reach", "--batch", "4", "--output", str(out)],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 2
    assert "Traceback" not in again.stderr and "already exists" in again.stderr
