"""MP4 videos in LeRobot's encoding, with PyAV (its bundled FFmpeg): AV1 by SVT-AV1 (`libsvtav1`), yuv420p, a key
frame every 2 frames (g=2), crf 30, preset 12, as lerobot.datasets.video_utils.encode_video_frames; libx264 with
the same settings where the bundled FFmpeg has no libsvtav1 (the codec is recorded in info.json either way).

LeRobot v3.0 concatenates episodes into files of up to `video_files_size_in_mb`: episode e's frames span
[from_timestamp, to_timestamp) of its file, frame k at time from_timestamp + k / fps. One encoder writes each file
straight through (frame i of the file at pts i in a 1/fps time base), so the timestamps are exact, and a new file
starts before an episode once the current one holds the size limit."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

CODECS = ("libsvtav1", "libx264")  # in order of preference
OPTIONS = {"libsvtav1": {"g": "2", "crf": "30", "preset": "12"}, "libx264": {"g": "2", "crf": "30"}}
PIX_FMT = "yuv420p"


def codec() -> str:
    """The first of CODECS that PyAV's FFmpeg can encode."""
    import av

    for name in CODECS:
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001  (PyAV raises its own UnknownCodecError, whose class moved between releases)
            continue
    raise ValueError(f"PyAV's FFmpeg has none of the video encoders {', '.join(CODECS)}")


class VideoFiles:
    """Episodes' frames of one camera key appended to videos/<key>/chunk-CCC/file-FFF.mp4 files."""

    def __init__(self, root: Path, path_template: str, key: str, fps: int, limit_mb: float, chunks_size: int):
        self.root, self.template, self.key, self.fps = root, path_template, key, int(fps)
        self.limit, self.chunks_size = limit_mb * 1024 * 1024, chunks_size
        self.codec = codec()
        self.file_index, self._container, self._stream, self._frames, self._bytes = -1, None, None, 0, 0
        self.first_path: Path | None = None
        os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner per encoder unless told errors only

    def _open(self, height: int, width: int) -> None:
        import av

        self.close()
        self.file_index += 1
        path = self.root / self.template.format(video_key=self.key, chunk_index=self.file_index // self.chunks_size,
                                                file_index=self.file_index % self.chunks_size)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.first_path = self.first_path or path
        self._container = av.open(str(path), "w")
        self._stream = self._container.add_stream(self.codec, rate=self.fps, options=OPTIONS[self.codec])
        self._stream.pix_fmt, self._stream.width, self._stream.height = PIX_FMT, width, height
        self._frames = self._bytes = 0

    def add(self, frames: np.ndarray) -> dict:
        """Append one episode's (L, H, W, 3) uint8 frames; returns its videos/<key>/... episode columns."""
        import av

        if self._container is None or self._bytes >= self.limit:
            self._open(*frames.shape[1:3])
        first = self._frames
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts = self._frames
            self._mux(self._stream.encode(vf))
            self._frames += 1
        prefix = f"videos/{self.key}/"
        return {prefix + "chunk_index": self.file_index // self.chunks_size,
                prefix + "file_index": self.file_index % self.chunks_size,
                prefix + "from_timestamp": first / self.fps, prefix + "to_timestamp": self._frames / self.fps}

    def _mux(self, packets) -> None:
        for packet in packets:
            self._bytes += packet.size
            self._container.mux(packet)

    def close(self) -> None:
        if self._container is not None:
            self._mux(self._stream.encode())
            self._container.close()
            self._container = None


def info(path: Path) -> dict:
    """A video file's `info` entry of info.json, as lerobot.datasets.video_utils.get_video_info reads it."""
    import av

    with av.open(str(path)) as f:
        s = f.streams.video[0]
        return {"video.height": s.height, "video.width": s.width, "video.codec": s.codec.canonical_name,
                "video.pix_fmt": s.pix_fmt, "video.is_depth_map": False, "video.fps": int(s.base_rate),
                "video.channels": 3, "has_audio": False}
