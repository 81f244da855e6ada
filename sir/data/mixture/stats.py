"""Normalization statistics over the frames a mixture trains on.

The result has lerobot's layout (``meta/stats.json``: per feature ``min``, ``max``,
``mean``, ``std``, ``count`` and the quantiles ``q01`` … ``q99`` that the QUANTILES
normalization modes read), so it goes straight to ``make_pre_post_processors``.

Numeric features: each dataset's used frames give a count, mean, standard deviation, min
and max, pooled by lerobot's ``aggregate_feature_stats`` (count-weighted means, pooled
variances, global extremes). It would average the datasets' quantiles too, which is not
the quantile of their union; the frames are in memory, so quantiles are taken over the
used frames of all datasets together instead.

Image and video features cannot be recomputed without decoding every frame. lerobot keeps
per-episode image statistics in ``meta/episodes``; those of the used episodes are pooled
the same way, each weighted by the frames the mixture uses from it (the dataset-wide
``stats.json`` is the fallback for datasets without per-episode statistics).
"""

from __future__ import annotations

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


def as_rows(values: np.ndarray) -> np.ndarray:
    """Frames as float64 rows over the feature's last axis, the way lerobot reduces them."""
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(-1, 1) if values.ndim == 1 else values.reshape(-1, values.shape[-1])


def numeric_stats(per_dataset: list[np.ndarray]) -> dict[str, np.ndarray]:
    """lerobot-format statistics of one numeric feature over the given frames of each dataset."""
    from lerobot.datasets.compute_stats import aggregate_feature_stats

    rows = [as_rows(v) for v in per_dataset if len(v)]
    stats = aggregate_feature_stats([
        {"min": r.min(0), "max": r.max(0), "mean": r.mean(0), "std": r.std(0), "count": np.array([len(r)])}
        for r in rows
    ])
    for key, value in zip(QUANTILE_KEYS, np.quantile(np.concatenate(rows), QUANTILES, axis=0), strict=True):
        stats[key] = value
    return stats


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
    of shape (3, 1, 1); it weighs as much as the frames the mixture uses from it, not as
    the images lerobot sampled to compute it (its own ``count``).
    """
    from lerobot.datasets.compute_stats import aggregate_feature_stats

    return aggregate_feature_stats([
        {**s, "count": np.array([n])} for stats, used in sources for s, n in zip(stats, used, strict=True) if n > 0
    ])
