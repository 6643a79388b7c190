"""Camera frames that arrive with the batch: made on the device by the JAX renderer (HostBatch.images), handed to
the formats' encoders through the interface of MuJoCo's host renderer (mjxgen.render.opengl.BatchFrames)."""

from __future__ import annotations

import numpy as np


class BatchImages:
    """Episode e's frames of a HostBatch whose `images` the simulation made; nothing is rendered here."""

    def __init__(self, height: int, width: int):
        self.size = (height, width)
        self.frames, self.render_s = 0, 0.0  # frames handed over; no time is spent rendering them here

    def episode(self, batch, e: int) -> np.ndarray:
        """Episode e's frames (L, H, W, 3) uint8."""
        if batch.images is None:
            raise ValueError("the batch holds no camera images (the simulation rendered none)")
        o = batch.offsets
        frames = batch.images[o[e]:o[e + 1]]
        if frames.shape[1:] != (*self.size, 3) or frames.dtype != np.uint8:
            raise ValueError(f"the batch's camera images are {frames.dtype} {frames.shape[1:]}, expected uint8 "
                             f"{(*self.size, 3)}")
        self.frames += len(frames)
        return frames

    def close(self) -> None:
        pass
