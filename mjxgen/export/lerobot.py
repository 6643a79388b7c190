"""LeRobot dataset v3.0 on disk (what lerobot 0.4.x's LeRobotDataset reads), written with pyarrow and PyAV:

    meta/info.json                                  codebase_version "v3.0", fps, robot_type, features, totals, ...
    meta/stats.json                                 every feature's statistics (mjxgen.export.stats)
    meta/tasks.parquet                              one row per task: task_index, the task text as pandas' index
    meta/episodes/chunk-000/file-000.parquet        one row per episode: length, tasks, dataset_from/to_index,
                                                    data/ and videos/<key>/ locations, stats/<feature>/<stat>
    data/chunk-CCC/file-FFF.parquet                 one row per frame (files of up to 100 MB, 1000 per chunk)
    videos/<key>/chunk-CCC/file-FFF.mp4             episodes' frames back to back (mjxgen.export.video)

Paths, names and defaults are lerobot 0.4.4's (lerobot.datasets.utils). Frames are the source's steps: the
observation before each action, the action, and what followed it (next.reward, next.done at the episode's last
step, next.success where success ended it). Episodes are renumbered 0..E-1 in file order (LeRobot indexes its
episode table by episode_index); floats are stored as float32.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mjxgen.export import Export, Options, register, stats, video
from mjxgen.export.sources import Source

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE, DATA_FILE_MB, VIDEO_FILE_MB = 1000, 100, 200
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
DEFAULT_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
TASKS = {"reach": "Move the gripper to the target position.",
         "pick_place": "Pick up the cube and place it at the target position.",
         "pusht": "Push the T-shaped block onto the T-shaped target."}
ROBOT_TYPES = {"pusht": "pusht_agent"}  # the arm tasks: "mjxgen_arm"
VIDEO_KEYS = {"pusht": "observation.image"}  # LeRobot's PushT name; the arm's camera: observation.images.front


class Layout:
    """Which source arrays make which LeRobot feature."""

    def __init__(self, source: Source, images: bool):
        self.source, self.fps = source, fps_of(source)
        env = tuple(k for k in source.keys if k not in source.state_keys)
        self.groups = {"observation.state": source.state_keys, "observation.environment_state": env}
        self.groups = {name: keys for name, keys in self.groups.items() if keys}
        self.video_key = VIDEO_KEYS.get(source.kind, "observation.images.front") if images else None
        self.features = {name: {"dtype": "float32", "shape": [sum(len(source.names(k)) for k in keys)],
                                "names": [n for k in keys for n in source.names(k)]}
                         for name, keys in self.groups.items()}
        self.features["action"] = {"dtype": "float32", "shape": [len(source.action_names)],
                                   "names": list(source.action_names)}
        self.features.update({"next.reward": {"dtype": "float32", "shape": [1], "names": None},
                              "next.done": {"dtype": "bool", "shape": [1], "names": None},
                              "next.success": {"dtype": "bool", "shape": [1], "names": None}})
        if self.video_key:
            h, w = source.image_size
            self.features[self.video_key] = {"dtype": "video", "shape": [h, w, 3],
                                             "names": ["height", "width", "channels"]}
        self.features.update(DEFAULT_FEATURES)

    def columns(self, ep, position: int, first_index: int) -> dict[str, np.ndarray]:
        """The episode's frames' columns (every feature but the video)."""
        n = ep.length
        out = {name: np.concatenate([np.asarray(ep.observations[k], np.float32).reshape(n, -1) for k in keys], axis=1)
               for name, keys in self.groups.items()}
        out["action"] = np.asarray(ep.actions, np.float32)
        out["next.reward"] = np.asarray(ep.rewards, np.float32)
        out["next.done"] = ep.terminated | ep.truncated
        out["next.success"] = ep.terminated.copy()
        frame = np.arange(n, dtype=np.int64)
        out.update(timestamp=(frame / self.fps).astype(np.float32), frame_index=frame,
                   episode_index=np.full(n, position, np.int64), index=first_index + frame,
                   task_index=np.zeros(n, np.int64))
        return out


def fps_of(source: Source) -> int:
    """LeRobot's fps is an integer: the source's control rate, which must be one."""
    if source.fps is None:
        raise ValueError(f"LeRobot needs the frame rate, and {source.path}'s config has no env_config.control_dt")
    fps = round(source.fps)
    if fps < 1 or abs(source.fps - fps) > 1e-6 * fps:
        raise ValueError(f"LeRobot needs an integer frame rate; {source.path}'s control rate is {source.fps:g} Hz")
    return fps


class DataFiles:
    """Frames' columns, buffered and written as data/chunk-CCC/file-FFF.parquet files of up to DATA_FILE_MB."""

    def __init__(self, root: Path, features: dict):
        self.root, self.features, self.file_index = root, features, 0
        self.row_bytes = sum(np.dtype(ft["dtype"]).itemsize * int(np.prod(ft["shape"]))
                             for ft in features.values() if ft["dtype"] != "video")
        self._blocks: list[dict] = []
        self._rows = 0

    def location(self) -> dict:
        """The data/ columns of the episode about to be added (starting a new file if this one is full)."""
        if self._rows * self.row_bytes >= DATA_FILE_MB * 1024 * 1024:
            self.flush()
        return {"data/chunk_index": self.file_index // CHUNKS_SIZE, "data/file_index": self.file_index % CHUNKS_SIZE}

    def add(self, columns: dict) -> None:
        self._blocks.append(columns)
        self._rows += len(columns["index"])

    def flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._blocks:
            return
        arrays = {}
        for name, ft in self.features.items():
            if ft["dtype"] == "video":
                continue
            values = np.concatenate([b[name] for b in self._blocks])
            arrays[name] = pa.array(values) if values.ndim == 1 else \
                pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])
        path = self.root / DATA_PATH.format(chunk_index=self.file_index // CHUNKS_SIZE,
                                            file_index=self.file_index % CHUNKS_SIZE)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(arrays), path, compression="snappy")
        self.file_index += 1
        self._blocks, self._rows = [], 0


class LeRobotExport(Export):
    name = "lerobot"
    output_kind = "a LeRobot v3.0 dataset directory"
    holds_images, holds_task = True, True

    def owns(self, path: Path) -> bool:
        return path.is_dir() and (path / "meta" / "info.json").is_file()

    def write(self, source: Source, output: Path, options: Options) -> dict:
        layout = Layout(source, options.images)
        task = options.task or TASKS.get(source.kind, f"The {source.kind} task.")
        data, vk = DataFiles(output, layout.features), layout.video_key
        videos = video.VideoFiles(output, VIDEO_PATH, vk, layout.fps, VIDEO_FILE_MB, CHUNKS_SIZE) if vk else None
        rows, pending, frames = [], [], 0
        per_episode = {name: [] for name, ft in layout.features.items() if ft["dtype"] != "video"}
        try:
            for position, ep in enumerate(self.progress(source, options)):
                row = {"episode_index": position, "tasks": [task], "length": ep.length, **data.location(),
                       "dataset_from_index": frames, "dataset_to_index": frames + ep.length}
                columns = layout.columns(ep, position, frames)
                data.add(columns)
                if videos is not None:
                    row.update(videos.add(ep.frames[:ep.length]))
                    per_episode.setdefault(vk, []).append(stats.frames(ep.frames[:ep.length]))
                    row.update({f"stats/{vk}/{s}": v.tolist() for s, v in per_episode[vk][-1].items()})
                pending.append((row, columns))
                rows.append(row)
                frames += ep.length
                if len(pending) >= 256:
                    _episode_stats(pending, per_episode)
            _episode_stats(pending, per_episode)
            data.flush()
        finally:
            if videos is not None:
                videos.close()
        if videos is not None:
            layout.features[vk]["info"] = video.info(videos.first_path)
        _write_meta(output, layout, rows, per_episode, task, frames)
        return {"episodes": len(rows), "frames": frames, "fps": layout.fps, "task": task}


def _episode_stats(pending: list, per_episode: dict) -> None:
    """Statistics of the pending episodes, every feature at once over their rows, into their episode rows."""
    if not pending:
        return
    lengths = np.array([row["length"] for row, _ in pending])
    for name, blocks in per_episode.items():
        if name not in pending[0][1]:  # the video's: per episode, as it is added
            continue
        block = stats.segments(np.concatenate([columns[name] for _, columns in pending]), lengths)
        blocks.append(block)
        for e, (row, _) in enumerate(pending):
            row.update({f"stats/{name}/{s}": block[s][e].tolist() for s in stats.NAMES})
    pending.clear()


def _write_meta(root: Path, layout: Layout, rows: list, per_episode: dict, task: str, frames: int) -> None:
    """info.json, stats.json, tasks.parquet and the episodes' table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dataset_stats = {}
    for name, blocks in per_episode.items():
        join = np.stack if name == layout.video_key else np.concatenate  # the video's blocks are single episodes
        dataset_stats[name] = stats.jsonable(stats.aggregate({s: join([b[s] for b in blocks]) for s in stats.NAMES}))
    for r in rows:
        r.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
    path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path, compression="snappy")
    _write_tasks(root / "meta" / "tasks.parquet", [task])
    info = {"codebase_version": CODEBASE_VERSION, "robot_type": ROBOT_TYPES.get(layout.source.kind, "mjxgen_arm"),
            "total_episodes": len(rows), "total_frames": frames, "total_tasks": 1, "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": DATA_FILE_MB, "video_files_size_in_mb": VIDEO_FILE_MB, "fps": layout.fps,
            "splits": {"train": f"0:{len(rows)}"}, "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if layout.video_key else None, "features": layout.features}
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    (root / "meta" / "stats.json").write_text(json.dumps(dataset_stats, indent=4))


def _write_tasks(path: Path, tasks: list[str]) -> None:
    """LeRobot writes a pandas DataFrame (task_index, indexed by the task text) with DataFrame.to_parquet; pandas
    restores the index from the schema's `pandas` metadata, written here by hand (pandas is not a dependency)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()),
                      "__index_level_0__": pa.array(tasks, pa.string())})
    pandas_meta = {"index_columns": ["__index_level_0__"], "column_indexes": [
        {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
         "metadata": {"encoding": "UTF-8"}}],
        "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
                     "metadata": None},
                    {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode",
                     "numpy_type": "object", "metadata": None}],
        "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3"}
    table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
    pq.write_table(table, path)


LEROBOT = register(LeRobotExport())
