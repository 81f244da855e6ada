"""Whole batches gathered at once, rather than sample by sample.

A DataLoader asks a dataset for a batch's samples one ``__getitem__`` at a time and then
stacks them (``default_collate``). For a camera dataset served from the frame cache that
Python work per sample costs more than the data: ``FrameStore.get`` takes tens of
microseconds. ``gather`` builds the collated batch directly instead, one indexing
operation per column: the numeric columns, the windows with their padding (lerobot's
rule, vectorized: rows clamped to the episode's bounds, ``_is_pad`` outside them) and the
cached camera frames (gathered as uint8 episode by episode, converted to float32 once).
The result equals ``default_collate([store.get(i) for i in indices])`` key by key.

What cannot be gathered that way stays per sample, as ``FrameStore.get`` does it: camera
episodes not in the frame cache are decoded per sample, and ``image_transforms`` are
applied to each sample's frames in turn (lerobot's transforms draw their random
parameters per call, so a batch sees the distribution, and the random draws, that single
samples see). Image features stored as images are read through lerobot's HF dataset with
one list index for the batch.

``Mixture.__getitems__`` (which torch's DataLoader calls with a batch's indices) returns a
``GatheredBatch``: the sequence of samples torch's ``__getitems__`` contract asks for, so
``default_collate`` still works on it, carrying the batch already collated, which
``collate`` (``make_dataloader``'s ``collate_fn``) hands on without stacking anything again.
This module reads ``FrameStore``'s internals; it is that class's batched half.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate

from sir.data.frames import to_float


class GatheredBatch(Sequence):
    """A batch's samples, gathered and collated at once: ``collated`` is the batch;
    item ``i`` is sample ``i`` (views into it), for code that collates samples itself."""

    def __init__(self, collated: dict[str, Any], size: int):
        self.collated = collated
        self._size = size

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._size))]
        if not -self._size <= i < self._size:
            raise IndexError(f"sample {i} of a batch of {self._size}")
        return {key: value[i] for key, value in self.collated.items()}


def collate(batch: Any) -> Any:
    """``make_dataloader``'s ``collate_fn``: a ``GatheredBatch`` is already collated; anything
    else goes through torch's ``default_collate``."""
    if isinstance(batch, GatheredBatch):
        return batch.collated
    return default_collate(batch)


def merge(parts: list[tuple[np.ndarray, dict[str, Any]]], size: int) -> dict[str, Any]:
    """One batch of ``size`` samples from per-dataset batches: ``parts`` holds, per dataset,
    the positions of its samples in the batch and their collated batch."""
    out: dict[str, Any] = {}
    for key, first in parts[0][1].items():
        values = [part[key] for _, part in parts]
        if isinstance(first, torch.Tensor):
            # The dtype torch.stack gives tensors of several dtypes.
            dtype = reduce(torch.promote_types, (v.dtype for v in values))
            merged = torch.empty((size, *first.shape[1:]), dtype=dtype)
            for (positions, _), value in zip(parts, values, strict=True):
                merged.numpy()[positions] = value.to(dtype).numpy()  # numpy: see _take
            out[key] = merged
        else:
            items: list[Any] = [None] * size
            for (positions, _), value in zip(parts, values, strict=True):
                for p, v in zip(positions.tolist(), value, strict=True):
                    items[p] = v
            out[key] = items
    return out


def gather(store, frames: np.ndarray) -> dict[str, Any]:
    """``default_collate([store.get(i) for i in frames])``: ``frames`` are frame indices of
    ``store`` (a ``FrameStore``), in batch order."""
    batch: dict[str, Any] = {key: _take(col, frames) for key, col in store._single}
    query: dict[str, np.ndarray] = {}  # camera keys' window rows, [batch, offsets]
    if store._windows:
        low = (store._frame_start[frames] - frames)[:, None]
        high = (store._frame_stop[frames] - 1 - frames)[:, None]
        for window in store._windows:
            offsets = window.offsets.numpy()[None, :]
            window_rows = np.maximum(np.minimum(offsets, high), low) + frames[:, None]
            pad = torch.from_numpy((offsets < low) | (offsets > high))
            for key, pad_key in window.items:
                col = store.columns.get(key)
                if col is not None:
                    batch[key] = _take(col, window_rows)
                else:
                    query[key] = window_rows
                batch[pad_key] = pad.clone()  # each key its own tensor, as collation gives
    if store.camera_keys:
        batch.update(_camera_frames(store, frames, query))
    for key in store.string_keys:
        batch[key] = store.strings[key][frames].tolist()
    batch["task"] = [store._tasks[t] for t in store._task_index[frames].tolist()]
    if store._subtasks is not None:
        batch["subtask"] = [store._subtasks[s] for s in store.columns["subtask_index"].numpy()[frames].tolist()]
    return batch


def _take(column: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """``column[rows]``, by numpy: torch's indexing runs on its intra-op threads, which on a
    loaded machine made it a hundred times slower (12 ms against 70 us for 6,400 rows)."""
    return torch.from_numpy(np.take(column.numpy(), rows, axis=0))


def _camera_frames(store, frames: np.ndarray, query: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key in store.video_keys:
        out[key] = _video(store, key, frames, query.get(key))
    for key in store.image_keys:
        images = store._images()
        if key in query:
            window_rows = query[key]
            stacked = torch.stack(images[window_rows.reshape(-1).tolist()][key])
            out[key] = stacked.reshape(*window_rows.shape, *stacked.shape[1:])
        else:
            out[key] = torch.stack(images[frames.tolist()][key])
    if store.image_transforms is not None:
        # Per sample and camera, in FrameStore.get's order, so the random draws match it.
        keys = list(out)
        samples = [[store.image_transforms(out[k][b]) for k in keys] for b in range(len(frames))]
        out = {k: torch.stack([s[j] for s in samples]) for j, k in enumerate(keys)}
    return out


def _video(store, key: str, frames: np.ndarray, window_rows: np.ndarray | None) -> torch.Tensor:
    """One camera's frames for the batch: cached episodes gathered as uint8, one fancy index
    per episode; the others decoded per sample (``FrameStore.video_frames``)."""
    rows = window_rows if window_rows is not None else frames[:, None]
    episodes = store.frame_episode[frames]
    order = np.argsort(episodes, kind="stable")
    starts = np.flatnonzero(np.diff(episodes[order])) + 1
    gathered: np.ndarray | None = None
    decoded: list[int] = []
    for group in np.split(order, starts):
        episode = int(episodes[group[0]])
        if (key, episode) not in store.frames:
            decoded.extend(group.tolist())
            continue
        part = store.frames.uint8(key, episode, rows[group] - store.ep_from[episode])
        if gathered is None:
            gathered = np.empty((len(frames), *part.shape[1:]), dtype=part.dtype)
        gathered[group] = part
    squeeze = rows.shape[1] == 1  # lerobot's squeeze(0): a window of one frame is a single frame
    if gathered is None:
        return torch.stack([store.video_frames(key, int(f), r) for f, r in zip(frames, rows, strict=True)])
    out = to_float(gathered[:, 0] if squeeze else gathered)
    for b in decoded:
        out[b] = store.video_frames(key, int(frames[b]), rows[b])
    return out
