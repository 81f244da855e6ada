"""The training data: one or more LeRobot datasets behind one torch Dataset.

``make_mixture(DataConfig(repo_ids=["lift_demos", "lift_dagger"], root="data"))``
(``sir.data.mixture.build``) resolves each dataset, keeps the selected episodes, chooses
and weights the frames of DAgger datasets (``dagger_mode``) and checks that the datasets
fit together; the ``Mixture`` it returns serves their frames
through the in-memory fast path. A sample is what ``LeRobotDataset`` returns for that
frame, with ``episode_index`` made global (each dataset's episodes follow those of the
datasets before it) and a ``dataset_index``. The mixture also stands in for lerobot's
dataset metadata (``features``, ``fps``, ``stats``), so ``make_policy(cfg, ds_meta=mixture)``
works.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from sir.data.labels import LabelMapping
from sir.data.mixture import weights as dagger
from sir.data.mixture.compat import FeaturePlan
from sir.data.mixture.sampling import (
    dataset_shares,
    make_sampler,
)
from sir.data.mixture.stats import IMAGENET_STATS, episode_image_stats, image_stats, numeric_stats
from sir.data.store.batch import GatheredBatch, merge
from sir.data.store.cache import CacheReport, default_budget_bytes, default_cache_dir
from sir.data.store.frames import FrameStore, is_visual
from sir.envs.spec import EnvSpec
from sir.errors import UserError

__all__ = ["DatasetInfo", "Mixture"]

_UNBUILT = object()  # a sampler not built yet (None means a plain shuffle)


@dataclass
class DatasetInfo:
    repo_id: str
    root: Path
    total_episodes: int
    used_episodes: list[int]
    # Training samples: used frames (after episode selection and DAgger filtering) that may
    # start a window (see Mixture.fit).
    frames: int
    env_spec: EnvSpec | None
    revision: str | None = None  # hub commit, when the dataset came from the hub
    total_frames: int = 0
    fps: int = 0
    dagger: dict[str, int] | None = None  # DaggerSummary counts, for DAgger datasets
    dagger_mode: str | None = None  # how a DAgger dataset's frames were chosen and weighted
    labels: LabelMapping | None = None  # where its source and success labels come from


@dataclass
class Sharing:
    """How samples are shared between datasets and episodes (see ``sir.data.mixture.sampling``)."""

    weights: np.ndarray | None = None
    balance_datasets: bool = False
    balance_episodes: bool = False
    seed: int = 0


class Mixture(torch.utils.data.Dataset):
    """Training samples from several datasets; also usable as lerobot's ``ds_meta``.

    ``make_mixture`` builds it; ``used_frames`` holds, per dataset, the frame indices it
    trains on. Their statistics are computed here, once.
    """

    def __init__(
        self,
        repo_ids: list[str],
        plan: FeaturePlan,
        fps: int,
        stores: list[FrameStore],
        used_frames: list[np.ndarray],
        infos: list[DatasetInfo],
        sharing: Sharing,
        use_imagenet_stats: bool = True,
        frame_classes: list[np.ndarray | None] | None = None,
    ):
        self.repo_ids = repo_ids
        self.features: dict[str, dict] = plan.features
        self.disabled_features: list[str] = plan.disabled
        self.fps = fps
        self.stores = stores
        self.infos = infos
        self.env_specs: list[EnvSpec | None] = [i.env_spec for i in infos]
        self._used = used_frames
        self._sharing = sharing
        # Per dataset, every frame's dagger class (None: all demos).
        self._frame_classes = frame_classes or [None] * len(stores)
        self.stats: dict[str, dict[str, np.ndarray]] = self._compute_stats(use_imagenet_stats)
        self._sampler_taken = False
        self._choose_samples(0, 0)

    # -- which frames are samples, and how they are drawn ---------------------------------
    def fit_policy(self, policy_cfg: Any) -> None:
        """Fit the samples to a lerobot policy config: its windows (lerobot's
        ``resolve_delta_timestamps``) and the episode ends its config tells lerobot's sampler
        to skip (``drop_n_last_frames``: Diffusion's windows must not start where the action
        horizon is mostly padding)."""
        from lerobot.datasets.factory import resolve_delta_timestamps

        self.fit(resolve_delta_timestamps(policy_cfg, self), skip_last=getattr(policy_cfg, "drop_n_last_frames", 0))

    def fit(self, delta_timestamps: dict[str, list[float]] | None = None, skip_first: int = 0,
            skip_last: int = 0) -> None:
        """Windows of neighbouring frames per feature, in seconds (lerobot's convention), and
        the frames that start samples: none in the first ``skip_first`` or the last
        ``skip_last`` frames of an episode (a window starting there holds mostly padding;
        those frames still appear inside earlier windows and in the statistics). Each call
        starts again from all used frames; the sampler is built after it, when first asked for,
        so a call after ``make_dataloader`` took it is refused."""
        if self._sampler_taken:
            raise RuntimeError("fit the mixture before make_dataloader takes its sampler")
        from lerobot.datasets.utils import check_delta_timestamps, get_delta_indices

        delta_indices = None
        if delta_timestamps:
            unknown = [k for k in delta_timestamps if k not in self.features]
            if unknown:
                raise ValueError(f"delta_timestamps names {unknown}, which the mixture does not serve")
            check_delta_timestamps(delta_timestamps, self.fps, self.stores[0].tolerance_s)
            delta_indices = get_delta_indices(delta_timestamps, self.fps)
        for store in self.stores:
            store.set_delta_indices(delta_indices)
        self._choose_samples(skip_first, skip_last)

    def _choose_samples(self, first: int, last: int) -> None:
        if first < 0 or last < 0:
            raise ValueError(f"episode ends to skip must be non-negative, not first={first}, last={last}")
        self._frames: list[np.ndarray] = []  # per dataset, the frame index of each sample
        self._classes: list[np.ndarray] = []  # per dataset, the dagger class of each sample
        for store, used, info, classes in zip(self.stores, self._used, self.infos, self._frame_classes, strict=True):
            episodes = store.frame_episode[used]
            keep = used[(used >= store.ep_from[episodes] + first) & (used < store.ep_to[episodes] - last)]
            if len(keep) == 0:
                raise UserError(
                    f"Dataset '{info.repo_id}' has no frame left to train on: the policy starts no sample in "
                    f"the first {first} and last {last} frames of an episode, and its used episodes are "
                    f"no longer than {first + last} frames; record longer episodes or shorten the policy's horizon."
                )
            self._frames.append(keep)
            self._classes.append(np.full(len(keep), dagger.DEMO) if classes is None else classes[keep])
            info.frames = len(keep)
        sizes = [len(f) for f in self._frames]
        self._starts: list[int] = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64).tolist()
        self._runs = [self._episode_runs(d) for d in range(len(sizes))]
        s = self._sharing
        self.requested_shares: np.ndarray = dataset_shares(
            sizes, [len(r) for r, _ in self._runs], s.weights, s.balance_datasets, s.balance_episodes
        )
        self._sampler: Any = _UNBUILT

    @property
    def sampler(self) -> Any:
        """How training draws samples (see ``sir.data.mixture.sampling``), None for a plain
        shuffle over frames; built once, after ``fit``."""
        if self._sampler is _UNBUILT:
            s = self._sharing
            sizes = [len(f) for f in self._frames]
            # Weighted after the ends are skipped, so that the mode's class shares hold for the samples.
            everything = np.arange(len(self))
            probabilities = dagger.pooled_probabilities(self.dagger_mode, self.class_of(everything),
                                                        self.episode_of(everything), s.balance_episodes)
            self._sampler = make_sampler(
                self._starts, sizes, self._runs, self.requested_shares, s.balance_episodes,
                uniform=s.weights is None and not s.balance_datasets, seed=s.seed, probabilities=probabilities,
            )
        return self._sampler

    def take_sampler(self) -> Any:
        """The sampler, for the DataLoader that trains on it: the samples are fixed from now on."""
        self._sampler_taken = True
        return self.sampler

    def _episode_runs(self, d: int) -> tuple[np.ndarray, np.ndarray]:
        """(starts, sizes) of each episode's run of sample indices in dataset ``d``."""
        episodes = self.stores[d].frame_episode[self._frames[d]]
        breaks = np.flatnonzero(np.diff(episodes)) + 1
        starts = np.concatenate([[0], breaks])
        sizes = np.diff(np.concatenate([starts, [len(episodes)]]))
        return starts + self._starts[d], sizes

    # -- statistics ---------------------------------------------------------------------
    def _compute_stats(self, use_imagenet_stats: bool) -> dict[str, dict[str, np.ndarray]]:
        stats: dict[str, dict[str, np.ndarray]] = {}
        for key, feature in self.features.items():
            if feature["dtype"] == "string":
                continue
            if is_visual(feature):
                stats[key] = image_stats([self._image_sources(d, key) for d in range(len(self.stores))])
                if use_imagenet_stats:
                    # As lerobot's training does by default (DatasetConfig.use_imagenet_stats):
                    # pretrained backbones expect ImageNet normalization.
                    stats[key].update({k: np.asarray(v, dtype=np.float64) for k, v in IMAGENET_STATS.items()})
            else:
                stats[key] = numeric_stats(
                    [s.columns[key].numpy()[f] for s, f in zip(self.stores, self._used, strict=True)]
                )
        return stats

    def _image_sources(self, d: int, key: str) -> tuple[list[dict[str, np.ndarray]], list[int]]:
        store = self.stores[d]
        used = np.bincount(store.frame_episode[self._used[d]], minlength=len(store.ep_from))
        per_episode = episode_image_stats(store.root, key)
        if per_episode is not None and all(ep in per_episode for ep in np.flatnonzero(used)):
            episodes = np.flatnonzero(used).tolist()
            return [per_episode[ep] for ep in episodes], [int(used[ep]) for ep in episodes]
        whole = {k: np.asarray(v, dtype=np.float64) for k, v in store.meta.stats[key].items()}
        return [whole], [int(used.sum())]

    @property
    def dagger_mode(self) -> str | None:
        """The ``--dagger-mode`` of the mixture's DAgger datasets (None: demos only)."""
        return next((i.dagger_mode for i in self.infos if i.dagger_mode is not None), None)

    @property
    def masks_action_frames(self) -> bool:
        """Whether some samples' action chunks mark actions inside their episode as padding (the
        mode's ``untrained_actions``): a policy whose loss skips padding only when asked
        (Diffusion's ``do_mask_loss_for_padding``) must be asked, or it trains on them."""
        return any(store.masks_actions for store in self.stores)

    def class_shares(self) -> np.ndarray | None:
        """The share of samples per class (``CLASS_NAMES``) that the mode's rule gives this
        mixture, None where it sets none (``sir.data.mixture.weights.class_shares``)."""
        counts = np.bincount(self.class_of(np.arange(len(self))), minlength=len(dagger.CLASS_NAMES))
        return dagger.class_shares(self.dagger_mode, counts)

    # -- lerobot metadata interface ---------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return sum(len(f) for f in self._frames)

    @property
    def num_episodes(self) -> int:
        return sum(len(i.used_episodes) for i in self.infos)

    def cache_frames(self, budget_gb: float | None = None, cache_dir: str | Path | None = None) -> CacheReport:
        """Decode the camera videos of the used episodes once, so that samples are served from
        memory (within ``budget_gb``, default a quarter of RAM) or from a disk cache under
        ``cache_dir`` (default ``~/.cache/sir/frames``) beyond it; see ``sir.data.store.cache``."""
        budget = default_budget_bytes() if budget_gb is None else int(budget_gb * (1 << 30))
        folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        report = CacheReport()
        total = sum(len(i.used_episodes) * len(s.video_keys) for s, i in zip(self.stores, self.infos, strict=True))
        with tqdm(total=total, desc="Decoding camera frames", unit="video", disable=None if total else True) as bar:
            for store, info in zip(self.stores, self.infos, strict=True):
                report.add(store.cache_frames(info.used_episodes, budget - report.in_memory, folder,
                                              lambda _: bar.update()))
        return report

    # -- torch Dataset ------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, idx: int) -> dict[str, Any]:
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(f"index {idx} out of range for a mixture of {len(self)} samples")
        d = bisect.bisect_right(self._starts, idx) - 1
        return self.stores[d].get(int(self._frames[d][idx - self._starts[d]]))

    def __getitems__(self, indices: list[int]) -> GatheredBatch:
        """The samples at ``indices``, gathered as one batch (torch's DataLoader calls this
        with a batch's indices): ``collate`` of it is ``default_collate([self[i] for i in
        indices])``, built column by column per dataset (see ``sir.data.store.batch``)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        idx = np.where(idx < 0, idx + len(self), idx)
        bad = idx[(idx < 0) | (idx >= len(self))]
        if bad.size or not idx.size:
            raise IndexError(f"indices {bad[:3].tolist()} out of range for a mixture of {len(self)} samples"
                             if bad.size else "a batch of no samples")
        datasets = self.dataset_of(idx)
        parts = []
        for d in np.unique(datasets).tolist():
            positions = np.flatnonzero(datasets == d)
            parts.append((positions, self.stores[d].get_batch(self._frames[d][idx[positions] - self._starts[d]])))
        collated = parts[0][1] if len(parts) == 1 else merge(parts, len(idx))
        return GatheredBatch(collated, len(idx))

    def dataset_of(self, indices: np.ndarray | list[int]) -> np.ndarray:
        """The dataset index of each sample index, without loading the samples."""
        return np.searchsorted(np.asarray(self._starts), np.asarray(indices), side="right") - 1

    def _per_dataset(self, indices: np.ndarray | list[int], lookup) -> np.ndarray:
        """``lookup(d, positions)`` for each sample index, ``positions`` counted within dataset d."""
        indices = np.asarray(indices, dtype=np.int64)
        datasets = self.dataset_of(indices)
        out = np.empty_like(indices)
        for d in np.unique(datasets):
            sel = datasets == d
            out[sel] = lookup(d, indices[sel] - self._starts[d])
        return out

    def episode_of(self, indices: np.ndarray | list[int]) -> np.ndarray:
        """The global episode index of each sample index, without loading the samples."""
        return self._per_dataset(indices, lambda d, pos: (
            self.stores[d].frame_episode[self._frames[d][pos]] + self.stores[d].episode_offset))

    def class_of(self, indices: np.ndarray | list[int]) -> np.ndarray:
        """The class (``sir.data.mixture.weights.CLASS_NAMES``) of each sample index."""
        return self._per_dataset(indices, lambda d, pos: self._classes[d][pos])

    def __repr__(self) -> str:
        parts = ", ".join(f"{i.repo_id}: {len(i.used_episodes)}/{i.total_episodes} episodes, {i.frames} frames"
                          for i in self.infos)
        return f"Mixture({parts}; fps={self.fps})"
