"""Batches of the mixture handed to torch's DataLoader already collated.

``FrameStore.get_batch`` gathers a dataset's part of a batch column by column (lerobot's
window rule vectorized, cached camera frames as uint8 episode by episode), and ``merge``
puts the datasets' parts back in batch order. ``Mixture.__getitems__`` (which torch's
DataLoader calls with a batch's indices) returns a ``GatheredBatch``: the sequence of
samples torch's ``__getitems__`` contract asks for, so ``default_collate`` still works on
it, carrying the batch already collated, which ``collate`` (``make_dataloader``'s
``collate_fn``) hands on without stacking anything again.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from typing import Any

import numpy as np
import torch
from torch.utils.data import default_collate


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
                merged.numpy()[positions] = value.to(dtype).numpy()  # numpy: see frames.take
            out[key] = merged
        else:
            items: list[Any] = [None] * size
            for (positions, _), value in zip(parts, values, strict=True):
                for p, v in zip(positions.tolist(), value, strict=True):
                    items[p] = v
            out[key] = items
    return out
