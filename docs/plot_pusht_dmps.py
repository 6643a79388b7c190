"""Plot sampled DMP paths over the PushT workspace, from a file written by `python -m mjxgen.pusht`.

    python docs/plot_pusht_dmps.py data/random_dmp_dataset.h5 [--samples 8] [--out docs/pusht_dmp_paths.png]

Needs matplotlib (not a dependency of mjxgen). The background is sample 0's first frame, rendered by a
fresh gym-pusht env reset with the sample's stored seed. Lines are the DMP waypoints (pixels), dots the
agent's executed positions, crosses the goals.
"""

import argparse
import sys
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mjxgen.pusht.execute import make_env  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--out", default=str(Path(__file__).parent / "pusht_dmp_paths.png"))
    a = p.parse_args()
    with h5py.File(a.file) as f:
        names = sorted(f)[: a.samples]
        env = make_env()
        try:
            env.reset(seed=int(f[names[0]].attrs["seed"]))
            frame = env.render()
        finally:
            env.close()
        fig, ax = plt.subplots(figsize=(6, 6))
        ax.imshow(frame, extent=(0, 512, 512, 0), alpha=0.5)  # pygame y points down, as the env's pixels
        for i, name in enumerate(names):
            g = f[name]
            color = plt.cm.tab10(i % 10)
            way = g["dmp_waypoints_pixels"][()]
            agent = g["observations"][:, :2]
            ax.plot(way[:, 0], way[:, 1], "-", color=color, lw=2, label=f"{name} ({g.attrs['duration']:.1f} s)")
            ax.plot(agent[:, 0], agent[:, 1], ".", color=color, ms=3)
            ax.plot(*g["start_pixels"][()], "o", color=color, mec="k")
            ax.plot(*g["goal_pixels"][()], "x", color=color, ms=10, mew=2)
        scale = "scaled" if f.attrs["scale_forcing"] else "unscaled"
        ax.set(xlim=(0, 512), ylim=(512, 0), xlabel="x (pixels)", ylabel="y (pixels)",
               title=f"{len(names)} random DMPs ({scale} forcing): waypoints, executed agent (dots)")
        ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    sys.exit(main())
