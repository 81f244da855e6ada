"""Normalization statistics over the frames a mixture trains on.

The result has lerobot's layout (``meta/stats.json``: per feature ``min``, ``max``,
``mean``, ``std``, ``count`` and the quantiles ``q01`` … ``q99`` that the QUANTILES
normalization modes read), so it goes straight to ``make_pre_post_processors``.

Numeric features: each dataset's used frames give a count, mean, variance, min and max,
pooled across datasets (count-weighted means, pooled variances, global extremes).
Quantiles cannot be pooled exactly, and the frames are in memory anyway, so they are taken
over the used frames of all datasets together.

Image and video features cannot be recomputed without decoding every frame. lerobot keeps
per-episode image statistics in ``meta/episodes``; those of the used episodes are pooled,
each weighted by the frames the mixture uses from it (the dataset-wide ``stats.json`` is the
fallback for datasets without per-episode statistics).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

# lerobot.datasets.factory.IMAGENET_STATS, which lerobot's training substitutes for camera
# mean/std by default.
IMAGENET_STATS = {
    "mean": [[[0.485]], [[0.456]], [[0.406]]],
    "std": [[[0.229]], [[0.224]], [[0.225]]],
}
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
QUANTILE_KEYS = tuple(f"q{int(round(q * 100)):02d}" for q in QUANTILES)


@dataclass
class Moments:
    """Count, mean, (population) variance, min and max of some frames, per dimension."""

    count: int
    mean: np.ndarray
    var: np.ndarray
    min: np.ndarray
    max: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> Moments:
        rows = as_rows(values)
        return cls(len(values), rows.mean(0), rows.var(0), rows.min(0), rows.max(0))


def as_rows(values: np.ndarray) -> np.ndarray:
    """Frames as float64 rows over the feature's last axis, the way lerobot reduces them."""
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(-1, 1) if values.ndim == 1 else values.reshape(-1, values.shape[-1])


def pool(parts: list[Moments], weights: list[float] | None = None) -> Moments:
    """Moments of the union of the parts (weighted by ``weights``, default their counts)."""
    w = np.asarray(weights if weights is not None else [p.count for p in parts], dtype=np.float64)
    w = w.reshape(-1, *([1] * parts[0].mean.ndim))
    means = np.stack([p.mean for p in parts])
    total = w.sum(0)
    mean = (w * means).sum(0) / total
    var = (w * (np.stack([p.var for p in parts]) + (means - mean) ** 2)).sum(0) / total
    return Moments(
        count=sum(p.count for p in parts),
        mean=mean,
        var=var,
        min=np.min(np.stack([p.min for p in parts]), 0),
        max=np.max(np.stack([p.max for p in parts]), 0),
    )


def numeric_stats(per_dataset: list[np.ndarray]) -> dict[str, np.ndarray]:
    """lerobot-format statistics of one numeric feature over the given frames of each dataset."""
    parts = [Moments.of(v) for v in per_dataset if len(v)]
    pooled = pool(parts)
    stats = _format(pooled)
    every = np.concatenate([as_rows(v) for v in per_dataset if len(v)])
    for key, value in zip(QUANTILE_KEYS, np.quantile(every, QUANTILES, axis=0), strict=True):
        stats[key] = value
    return stats


def _format(m: Moments) -> dict[str, np.ndarray]:
    return {
        "min": m.min,
        "max": m.max,
        "mean": m.mean,
        "std": np.sqrt(np.maximum(m.var, 0.0)),
        "count": np.array([m.count], dtype=np.int64),
    }


def episode_image_stats(root: Path, key: str) -> dict[int, dict[str, np.ndarray]] | None:
    """Per-episode statistics of camera ``key`` from ``meta/episodes``, or None if absent."""
    files = sorted((Path(root) / "meta" / "episodes").glob("*/*.parquet"))
    prefix = f"stats/{key}/"
    out: dict[int, dict[str, np.ndarray]] = {}
    for path in files:
        names = [n for n in pq.read_schema(path).names if n.startswith(prefix)]
        if not names:
            return None
        table = pq.read_table(path, columns=["episode_index", *names]).to_pydict()
        for row, ep in enumerate(table["episode_index"]):
            out[int(ep)] = {n[len(prefix):]: np.asarray(table[n][row], dtype=np.float64) for n in names}
    return out or None


def image_stats(sources: list[tuple[list[dict[str, np.ndarray]], list[int]]]) -> dict[str, np.ndarray]:
    """Pool image statistics: ``sources`` holds (stats, frames used) pairs per dataset.

    Each entry of stats is one episode's (or a whole dataset's) lerobot image statistics
    of shape (3, 1, 1); it weighs as much as the frames the mixture uses from it.
    """
    entries = [(s, n) for stats, used in sources for s, n in zip(stats, used, strict=True) if n > 0]
    weights = [float(n) for _, n in entries]
    parts = [
        Moments(n, s["mean"], s["std"] ** 2, s["min"], s["max"]) for s, n in entries
    ]
    out = _format(pool(parts, weights))
    total = sum(weights)
    for key in QUANTILE_KEYS:
        if all(key in s for s, _ in entries):
            out[key] = sum(w * s[key] for (s, _), w in zip(entries, weights, strict=True)) / total
    return out
