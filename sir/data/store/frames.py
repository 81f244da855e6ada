"""One dataset's frames served fast: numbers in memory, pictures through lerobot.

``LeRobotDataset.__getitem__`` reads every window through the Hugging Face dataset, row by
row; with ACT's 100-step action chunk that caps training at a few hundred samples a second.
``FrameStore`` reads the parquet files once into tensors and gathers each window with one
indexing operation, following lerobot's rules exactly: window indices are clamped to the
episode's bounds and ``<key>_is_pad`` marks the positions that fell outside it. Image and
video features are still decoded by lerobot's own functions, so a sample is the one
``LeRobotDataset`` returns for the same index (``episode_index`` shifted by
``episode_offset``, plus ``dataset_index``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from sir.data.store.cache import CacheReport, CameraFrames, EpisodeVideo, cache_frames, to_float
from sir.errors import UserError

VISUAL_DTYPES = ("image", "video")
ACTION = "action"  # lerobot's action feature


def is_visual(feature: dict) -> bool:
    return feature["dtype"] in VISUAL_DTYPES


def read_columns(root: Path, columns: list[str]) -> dict[str, np.ndarray]:
    """Columns of every data file, in lerobot's file order, as numpy arrays (one pass)."""
    paths = sorted((root / "data").glob("*/*.parquet"))
    if not paths:
        raise UserError(f"Dataset at {root} has no data files (data/*/*.parquet).")
    tables = [_read_table(p, columns) for p in paths]
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    return {name: _to_numpy(table.column(name), len(table)) for name in columns}


def _read_table(path: Path, columns: list[str]) -> pa.Table:
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as err:  # truncated or overwritten: no parquet footer, bad pages
        reason = str(err).strip().splitlines()[0].split("': ", 1)[-1]  # pyarrow's message repeats the path first
        raise UserError(f"{path} is not a readable parquet file ({reason}); restore the dataset from a copy or "
                        "record it again.") from err


def _to_numpy(column: pa.ChunkedArray, rows: int) -> np.ndarray:
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if isinstance(array.type, pa.ExtensionType):
        array = array.storage
    inner: list[int] = []
    while pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type):
        if pa.types.is_fixed_size_list(array.type):
            inner.append(array.type.list_size)
        array = array.flatten()
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return np.asarray(array.to_pylist(), dtype=object)
    values = array.to_numpy(zero_copy_only=False)
    if not inner:
        inner = [values.size // rows] if values.size != rows else []
    return values.reshape(rows, *inner)


def as_torch(values: np.ndarray) -> torch.Tensor:
    """The tensor lerobot's ``hf_transform_to_torch`` gives for these values.

    lerobot turns each value into Python numbers and calls ``torch.tensor`` on them, so
    every float becomes float32 and every integer int64 whatever the stored width.
    """
    # Copies: arrow hands out read-only buffers, which torch refuses to wrap quietly.
    if values.dtype == np.bool_:
        return torch.from_numpy(np.array(values, dtype=np.bool_))
    if np.issubdtype(values.dtype, np.floating):
        return torch.from_numpy(np.array(values, dtype=np.float32))
    if np.issubdtype(values.dtype, np.integer):
        return torch.from_numpy(np.array(values, dtype=np.int64))
    raise TypeError(f"unsupported column dtype {values.dtype}")


class FrameStore:
    """All frames of one dataset; ``get(index)`` is ``LeRobotDataset(...)[index]``.

    ``keys`` are the features served (the mixture drops some); ``extra_columns`` are read in
    the same pass and kept as numpy arrays in ``self.extra`` (the DAgger labels).
    """

    def __init__(
        self,
        repo_id: str,
        root: Path,
        meta: Any,
        keys: Iterable[str],
        *,
        extra_columns: Iterable[str] = (),
        dataset_index: int = 0,
        episode_offset: int = 0,
        video_backend: str = "pyav",
        tolerance_s: float = 1e-4,
        image_transforms: Callable | None = None,
    ):
        self.repo_id = repo_id
        self.root = Path(root)
        self.meta = meta
        self.video_backend = video_backend
        self.tolerance_s = tolerance_s
        self.image_transforms = image_transforms
        self.episode_offset = episode_offset
        features = meta.features
        keys = [k for k in features if k in set(keys)]
        self.video_keys = [k for k in keys if features[k]["dtype"] == "video"]
        self.image_keys = [k for k in keys if features[k]["dtype"] == "image"]
        self.camera_keys = [k for k in keys if is_visual(features[k])]
        numeric = [k for k in keys if not is_visual(features[k]) and features[k]["dtype"] != "string"]
        self.string_keys = [k for k in keys if features[k]["dtype"] == "string"]
        extra = list(extra_columns)
        needed = list(dict.fromkeys([*numeric, *self.string_keys, "index", "episode_index", "timestamp",
                                     "task_index", *extra]))
        data = read_columns(self.root, needed)

        self.num_frames = len(data["index"])
        if not np.array_equal(data["index"], np.arange(self.num_frames)):
            raise UserError(
                f"Dataset '{repo_id}' has frame indices that are not 0..{self.num_frames - 1} in file order; "
                f"lerobot cannot read such a dataset either."
            )
        self.frame_episode = data["episode_index"].astype(np.int64)
        self.extra = {k: data[k] for k in extra}

        episodes = meta.episodes
        ep_ids = np.asarray(episodes["episode_index"], dtype=np.int64)
        num_ep = int(ep_ids.max()) + 1 if ep_ids.size else 0
        self.ep_from = np.zeros(num_ep, np.int64)
        self.ep_to = np.zeros(num_ep, np.int64)
        self.ep_from[ep_ids] = np.asarray(episodes["dataset_from_index"], dtype=np.int64)
        self.ep_to[ep_ids] = np.asarray(episodes["dataset_to_index"], dtype=np.int64)
        # Per frame as numpy arrays: a lookup costs no tensor work, and DataLoader workers
        # forked from this process share the pages (Python lists would be copied as their
        # reference counts change).
        self._frame_start = self.ep_from[self.frame_episode]
        self._frame_stop = self.ep_to[self.frame_episode]

        self.columns: dict[str, torch.Tensor] = {}
        for key in numeric:
            values = data[key]
            if key == "episode_index":
                values = values + episode_offset
            self.columns[key] = as_torch(values)
        self.columns["dataset_index"] = torch.full((self.num_frames,), dataset_index, dtype=torch.int64)
        self.strings = {k: data[k] for k in self.string_keys}
        self._timestamps = data["timestamp"].astype(np.float32)
        self._task_index = data["task_index"].astype(np.int64)

        tasks = meta.tasks
        self._tasks = _names_by_index(tasks, "task_index")
        self._subtasks = (
            _names_by_index(meta.subtasks, "subtask_index")
            if "subtask_index" in self.columns and getattr(meta, "subtasks", None) is not None
            else None
        )
        self._video_files: dict[str, list[tuple[Path, float]]] = {}
        for key in self.video_keys:
            from_ts = np.zeros(num_ep)
            from_ts[ep_ids] = np.asarray(episodes[f"videos/{key}/from_timestamp"], dtype=np.float64)
            self._video_files[key] = [
                (self.root / meta.get_video_file_path(int(ep), key), float(from_ts[ep])) for ep in range(num_ep)
            ]
        self._image_dataset = None
        self.frames = CameraFrames()  # filled by cache_frames; episodes not in it are decoded per sample
        self._windows: list[tuple[np.ndarray, list[str]]] = []  # (offsets [1, n], keys)
        self._masked_frames: np.ndarray | None = None  # frames whose action no window trains on
        self._single = list(self.columns.items())

    # -- windows ----------------------------------------------------------------------
    def set_delta_indices(self, delta_indices: dict[str, list[int]] | None) -> None:
        """Frame offsets per feature, as lerobot's ``get_delta_indices`` gives them."""
        # Keys that share offsets share one window (ACT: every observation key).
        groups: dict[tuple[int, ...], list[str]] = {}
        for key, offsets in (delta_indices or {}).items():
            groups.setdefault(tuple(int(o) for o in offsets), []).append(key)
        self._windows = [(np.array(offsets, dtype=np.int64)[None, :], keys) for offsets, keys in groups.items()]
        windowed = {k for _, keys in self._windows for k in keys}
        self._single = [(k, col) for k, col in self.columns.items() if k not in windowed]

    def mask_action_frames(self, frames: np.ndarray) -> None:
        """Leave the actions of ``frames`` (a mask over all frames) out of every action window:
        they are marked ``action_is_pad``, as steps past an episode's end are, so lerobot's
        losses that skip padding (ACT's; Diffusion's with ``do_mask_loss_for_padding``)
        do not train on them."""
        self._masked_frames = np.asarray(frames, dtype=bool)

    @property
    def masks_actions(self) -> bool:
        """Whether some frame's action is left out of every action window (``mask_action_frames``)."""
        return self._masked_frames is not None and bool(self._masked_frames.any())

    def cache_frames(
        self, episodes: Iterable[int], budget_bytes: int, cache_dir: Path, progress: Callable | None = None
    ) -> CacheReport:
        """Decode the video frames of ``episodes`` once (see ``sir.data.store.cache``): in memory
        within ``budget_bytes``, the rest on disk under ``cache_dir``."""
        episodes = sorted({int(e) for e in episodes})
        ts = self._timestamps
        videos = [
            EpisodeVideo(key, ep, *self._video_files[key][ep], ts[self.ep_from[ep]:self.ep_to[ep]],
                         int(np.prod(self.meta.features[key]["shape"])))
            for ep in episodes for key in self.video_keys
        ]
        return cache_frames(self.repo_id, videos, self.frames, budget_bytes=budget_bytes, cache_dir=cache_dir,
                            backend=self.video_backend, tolerance_s=self.tolerance_s, progress=progress)

    # -- reading ------------------------------------------------------------------------
    def get(self, index: int) -> dict[str, Any]:
        """The sample at frame ``index``: the batch of one that ``get_batch`` gathers, unbatched,
        so that one implementation of lerobot's rules serves both. Its tensors are views into
        that batch."""
        return {key: value[0] for key, value in self.get_batch(np.array([index], dtype=np.int64)).items()}

    def get_batch(self, frames: np.ndarray) -> dict[str, Any]:
        """``default_collate([self.get(i) for i in frames])``, gathered column by column:
        ``frames`` are frame indices, in batch order.

        Windows follow lerobot's rule, vectorized: for a frame, lerobot reads row
        ``max(start, min(stop - 1, index + offset))`` of its episode ``[start, stop)`` and
        marks ``<key>_is_pad`` where ``index + offset`` leaves it.
        """
        frames = np.asarray(frames, dtype=np.int64)
        batch: dict[str, Any] = {key: take(col, frames) for key, col in self._single}
        query: dict[str, np.ndarray] = {}  # camera keys' window rows, [batch, offsets]
        if self._windows:
            low = (self._frame_start[frames] - frames)[:, None]
            high = (self._frame_stop[frames] - 1 - frames)[:, None]
            for offsets, keys in self._windows:
                window_rows = np.maximum(np.minimum(offsets, high), low) + frames[:, None]
                outside = (offsets < low) | (offsets > high)
                pad = torch.from_numpy(outside)
                for key in keys:
                    col = self.columns.get(key)
                    if col is not None:
                        batch[key] = take(col, window_rows)
                    else:
                        query[key] = window_rows
                    if key == ACTION and self._masked_frames is not None:
                        batch[f"{key}_is_pad"] = torch.from_numpy(outside | self._masked_frames[window_rows])
                    else:
                        batch[f"{key}_is_pad"] = pad.clone()  # each key its own tensor, as collation gives
        if self.camera_keys:
            batch.update(self._camera_frames(frames, query))
        for key in self.string_keys:
            batch[key] = self.strings[key][frames].tolist()
        batch["task"] = [self._tasks[t] for t in self._task_index[frames].tolist()]
        if self._subtasks is not None:
            batch["subtask"] = [self._subtasks[s] for s in self.columns["subtask_index"].numpy()[frames].tolist()]
        return batch

    def _camera_frames(self, frames: np.ndarray, query: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for key in self.video_keys:
            out[key] = self._video(key, frames, query.get(key))
        for key in self.image_keys:
            images = self._images()
            if key in query:
                window_rows = query[key]
                stacked = torch.stack(images[window_rows.reshape(-1).tolist()][key])
                out[key] = stacked.reshape(*window_rows.shape, *stacked.shape[1:])
            else:
                out[key] = torch.stack(images[frames.tolist()][key])
        if self.image_transforms is not None:
            # Per sample and camera, in the order a sample at a time gives, so that a batch
            # sees the random draws single samples see (lerobot's transforms draw per call).
            keys = list(out)
            samples = [[self.image_transforms(out[k][b]) for k in keys] for b in range(len(frames))]
            out = {k: torch.stack([s[j] for s in samples]) for j, k in enumerate(keys)}
        return out

    def _video(self, key: str, frames: np.ndarray, window_rows: np.ndarray | None) -> torch.Tensor:
        """One camera's frames for the batch: cached episodes gathered as uint8, one fancy index
        per episode; the others decoded per sample (``video_frames``)."""
        rows = window_rows if window_rows is not None else frames[:, None]
        episodes = self.frame_episode[frames]
        order = np.argsort(episodes, kind="stable")
        starts = np.flatnonzero(np.diff(episodes[order])) + 1
        gathered: np.ndarray | None = None
        decoded: list[int] = []
        for group in np.split(order, starts):
            episode = int(episodes[group[0]])
            if (key, episode) not in self.frames:
                decoded.extend(group.tolist())
                continue
            part = self.frames.uint8(key, episode, rows[group] - self.ep_from[episode])
            if gathered is None:
                gathered = np.empty((len(frames), *part.shape[1:]), dtype=part.dtype)
            gathered[group] = part
        squeeze = rows.shape[1] == 1  # lerobot's squeeze(0): a window of one frame is a single frame
        if gathered is None:
            return torch.stack([self.video_frames(key, int(f), r) for f, r in zip(frames, rows, strict=True)])
        out = to_float(gathered[:, 0] if squeeze else gathered)
        for b in decoded:
            out[b] = self.video_frames(key, int(frames[b]), rows[b])
        return out

    def video_frames(self, key: str, index: int, rows: np.ndarray) -> torch.Tensor:
        """The frames of camera ``key`` at frame ``rows`` of the sample at ``index``, from the
        cache or decoded now, shaped as lerobot's ``_query_videos`` shapes them (``squeeze(0)``:
        a window of one frame is a single frame)."""
        episode = int(self.frame_episode[index])
        if (key, episode) in self.frames:
            return self.frames.get(key, episode, rows - self.ep_from[episode]).squeeze(0)
        from lerobot.datasets.video_utils import decode_video_frames

        path, from_ts = self._video_files[key][episode]
        timestamps = [from_ts + float(self._timestamps[r]) for r in rows.tolist()]
        return decode_video_frames(path, timestamps, self.tolerance_s, self.video_backend).squeeze(0)

    def _images(self):
        # Image features live in the parquet as encoded files; lerobot's HF dataset decodes them.
        if self._image_dataset is None:
            from lerobot.datasets.utils import (
                get_hf_features_from_features,
                hf_transform_to_torch,
                load_nested_dataset,
            )

            hf = load_nested_dataset(self.root / "data", features=get_hf_features_from_features(self.meta.features))
            hf = hf.select_columns(self.image_keys)
            hf.set_transform(hf_transform_to_torch)
            self._image_dataset = hf
        return self._image_dataset

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers rebuild the HF image dataset themselves (it holds file handles).
        state = dict(self.__dict__)
        state["_image_dataset"] = None
        return state


def take(column: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """``column[rows]``, by numpy: torch's indexing runs on its intra-op threads, which on a
    loaded machine made it a hundred times slower (12 ms against 70 us for 6,400 rows)."""
    return torch.from_numpy(np.take(column.numpy(), rows, axis=0))


def _names_by_index(frame: Any, column: str) -> list[str]:
    """Task strings by index: lerobot's tasks table is indexed by the task text."""
    names: list[str] = [""] * (int(frame[column].max()) + 1 if len(frame) else 0)
    for name, idx in zip(frame.index, frame[column], strict=True):
        names[int(idx)] = str(name)
    return names
