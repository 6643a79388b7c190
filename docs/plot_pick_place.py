"""Plot one scripted pick_place episode from a dataset file: docs/pick_place_expert.png.

    python -m mjxgen.pick_place --batch 16 --output data/pick_place_scripted.h5
    python docs/plot_pick_place.py data/pick_place_scripted.h5 [episode]

Needs matplotlib (not a dependency of mjxgen: `pip install matplotlib`).
"""

import json
import sys
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

path = sys.argv[1]
episode = int(sys.argv[2]) if len(sys.argv) > 2 else 0
with h5py.File(path) as f:
    g = f[f"episode_{episode}"]
    obs = {k: g["observations"][k][()] for k in g["observations"]}
    actions = g["actions"][()]
    dt = json.loads(f.attrs["config"])["env_config"]["control_dt"]
    success = bool(g.attrs["success"])
t = np.arange(len(actions)) * dt
closed = actions[:, 3] < 0

fig, (ax_z, ax_xy) = plt.subplots(1, 2, figsize=(11, 4))
ax_z.fill_between(t, 0, 0.2, where=closed, color="0.9", step="post", label="gripper closed")
ax_z.plot(t, obs["ee_pos"][:, 2], label="end effector z")
ax_z.plot(t, obs["object_pos"][:, 2], label="cube centre z")
ax_z.plot(t, obs["gripper_pos"][:, 0], label="finger opening (m)")
ax_z.axhline(0.02, color="0.5", ls=":", lw=1, label="cube resting height")
ax_z.set(xlabel="time (s)", ylabel="m", ylim=(0, 0.2), title=f"episode {episode}: heights (success={success})")
ax_z.legend(fontsize=8, loc="upper right")

ax_xy.plot(obs["ee_pos"][:, 1], obs["ee_pos"][:, 0], label="end effector")
ax_xy.plot(obs["object_pos"][:, 1], obs["object_pos"][:, 0], lw=3, alpha=0.6, label="cube")
ax_xy.scatter(*obs["object_pos"][0, [1, 0]], marker="s", s=80, color="C1", label="cube start")
ax_xy.scatter(*obs["place_pos"][0, [1, 0]], marker="o", s=120, facecolors="none", edgecolors="C2", label="place target")
ax_xy.set(xlabel="y (m)", ylabel="x (m)", title="top view", aspect="equal")
ax_xy.legend(fontsize=8)
fig.tight_layout()
out = Path(__file__).parent / "pick_place_expert.png"
fig.savefig(out, dpi=110)
print(f"wrote {out}")
