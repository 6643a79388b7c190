"""metrics.jsonl: what a training run measured, one JSON object per line, in its output directory.

    {"step": 1000, "loss": 0.0123, "lr": 0.0003, "val_loss": 0.0151, "success_rate": 0.84, "eval_episodes": 64}

A line holds the step and whatever was measured at it: the training loss and learning rate (every log_every
steps, the first and the last), the validation loss (every val_every steps and the last) and the evaluation in
simulation (every eval_every steps). Nothing in it depends on the wall clock or on where the run was broken off:
a resumed run first drops the lines past the step it resumes from (and a torn last line), so after `--resume` the
file equals an unbroken run's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

NAME = "metrics.jsonl"


def read(path: str | os.PathLike) -> list[dict]:
    """The records of a metrics file, in order (a torn, unparsable last line is left out)."""
    records = []
    lines = Path(path).read_text().splitlines() if Path(path).is_file() else []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i != len(lines) - 1:
                raise ValueError(f"{path}: line {i + 1} is not JSON") from None
    return records


class MetricsLog:
    """Appends records to <directory>/metrics.jsonl. A fresh run (resume_step None) starts the file anew; a
    resumed one keeps the records up to resume_step and drops the rest."""

    def __init__(self, directory: str | os.PathLike, resume_step: int | None = None):
        self.path = Path(directory) / NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = [] if resume_step is None else [r for r in read(self.path) if r.get("step", 0) <= resume_step]
        tmp = self.path.with_name(NAME + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.path)

    def write(self, record: dict) -> None:
        """Append one record (a dict with "step") as a line, flushed to the file."""
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
