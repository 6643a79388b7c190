"""A grid of camera frames from randomized episodes: one row per episode, frames spread over its length.

    mjxgen datagen --env-name pick_place --policy scripted --n-episodes 6 --batch-size 6 --max-steps 200 \
        --randomize --camera --image-size 96 96 --output /tmp/dr.h5
    python docs/plot_dr_frames.py /tmp/dr.h5 [--episodes 6] [--frames 6] [--out docs/dr_frames.png]

Each row is labelled with the episode's light direction and friction scale. Needs matplotlib.
"""

import argparse
from pathlib import Path

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--episodes", type=int, default=6)
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("--out", default=str(Path(__file__).parent / "dr_frames.png"))
    a = p.parse_args()
    with h5py.File(a.file) as f:
        names = sorted(f, key=lambda n: int(n.split("_")[1]))[: a.episodes]
        fig, axes = plt.subplots(len(names), a.frames, figsize=(1.6 * a.frames, 1.75 * len(names)), squeeze=False)
        for row, name in zip(axes, names):
            g = f[name]
            images = g["observations/image"]
            for ax, t in zip(row, np.linspace(0, len(images) - 1, a.frames).astype(int)):
                ax.imshow(images[t])
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_xlabel(f"t={t}", fontsize=7)
            light = g["randomization/light_dir"][()]
            row[0].set_ylabel(f"{name}\nlight ({light[0]:+.1f},{light[1]:+.1f},{light[2]:+.1f})\n"
                              f"friction x{g['randomization/friction_scale'][()]:.2f}", fontsize=6)
        fig.tight_layout()
        fig.savefig(a.out, dpi=100)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
