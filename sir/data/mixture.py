"""The training data: one or more LeRobot datasets behind one torch Dataset.

``make_mixture("lift_demos,lift_dagger", root="data")`` resolves each dataset, keeps the
selected episodes, chooses and weights the frames of DAgger datasets (``dagger_mode``) and
checks that the datasets fit together; the ``Mixture`` it returns serves their frames
through the in-memory fast path. A sample is what ``LeRobotDataset`` returns for that
frame, with ``episode_index`` made global (each dataset's episodes follow those of the
datasets before it) and a ``dataset_index``. The mixture also stands in for lerobot's
dataset metadata (``features``, ``fps``, ``stats``), so ``make_policy(cfg, ds_meta=mixture)``
works.
"""

from __future__ import annotations

import bisect
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from sir.data import dagger
from sir.data.batch import GatheredBatch, merge
from sir.data.compat import FeaturePlan, env_spec_differences, plan_features
from sir.data.episodes import parse_episode_spec, select_episodes
from sir.data.fast import FrameStore, is_visual
from sir.data.frames import CacheReport, default_budget_bytes, default_cache_dir
from sir.data.resolve import ResolvedDataset, parse_repo_ids, resolve_dataset
from sir.data.sampling import check_share_options, dataset_shares, make_sampler, parse_weights
from sir.data.stats import IMAGENET_STATS, episode_image_stats, image_stats, numeric_stats
from sir.data.video import video_backend
from sir.envs.spec import EnvSpec
from sir.errors import UserError

__all__ = ["DatasetInfo", "Mixture", "make_mixture"]


@dataclass
class DatasetInfo:
    repo_id: str
    root: Path
    total_episodes: int
    used_episodes: list[int]
    # Training samples: used frames (after episode selection and DAgger filtering) that may
    # start a window (see Mixture.skip_episode_ends).
    frames: int
    env_spec: EnvSpec | None
    revision: str | None = None  # hub commit, when the dataset came from the hub
    total_frames: int = 0
    fps: int = 0
    dagger: dict[str, int] | None = None  # DaggerSummary counts, for DAgger datasets
    dagger_mode: str | None = None  # how a DAgger dataset's frames were chosen and weighted


@dataclass
class Sharing:
    """How samples are shared between datasets and episodes (see ``sir.data.sampling``)."""

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
        self.skip_episode_ends()

    # -- which frames are samples, and how they are drawn ---------------------------------
    def skip_episode_ends(self, first: int = 0, last: int = 0) -> None:
        """Start no sample in the first ``first`` or the last ``last`` frames of an episode.

        lerobot's trainer does this for a policy whose config sets ``drop_n_first_frames`` or
        ``drop_n_last_frames`` (Diffusion does): a window starting there holds mostly
        padding. The frames still appear inside earlier windows and in the statistics.
        Each call starts again from all used frames.
        """
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
        runs = [self._episode_runs(d) for d in range(len(sizes))]
        s = self._sharing
        self.requested_shares: np.ndarray = dataset_shares(
            sizes, [len(r) for r, _ in runs], s.weights, s.balance_datasets, s.balance_episodes
        )
        # Weighted after the ends are skipped, so that the mode's class shares hold for the samples.
        frame_weights = [dagger.frame_weights(i.dagger_mode, c) for i, c in zip(self.infos, self._classes, strict=True)]
        self.sampler = make_sampler(
            self._starts, sizes, runs, self.requested_shares, s.balance_episodes,
            uniform=s.weights is None and not s.balance_datasets, seed=s.seed, frame_weights=frame_weights,
        )

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

    # -- lerobot metadata interface ---------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return sum(len(f) for f in self._frames)

    @property
    def num_episodes(self) -> int:
        return sum(len(i.used_episodes) for i in self.infos)

    @property
    def repo_id_to_index(self) -> dict[str, int]:
        return {r: i for i, r in enumerate(self.repo_ids)}

    def set_delta_timestamps(self, delta_timestamps: dict[str, list[float]] | None) -> None:
        """Windows of neighbouring frames per feature, in seconds (lerobot's convention)."""
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

    def cache_frames(self, budget_gb: float | None = None, cache_dir: str | Path | None = None) -> CacheReport:
        """Decode the camera videos of the used episodes once, so that samples are served from
        memory (within ``budget_gb``, default a quarter of RAM) or from a disk cache under
        ``cache_dir`` (default ``~/.cache/sir/frames``) beyond it; see ``sir.data.frames``."""
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
        indices])``, built column by column per dataset (see ``sir.data.batch``)."""
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
        """The class (``sir.data.dagger.CLASS_NAMES``) of each sample index."""
        return self._per_dataset(indices, lambda d, pos: self._classes[d][pos])

    def __repr__(self) -> str:
        parts = ", ".join(f"{i.repo_id}: {len(i.used_episodes)}/{i.total_episodes} episodes, {i.frames} frames" for i in self.infos)
        return f"Mixture({parts}; fps={self.fps})"


def make_mixture(
    repo_ids: str | list[str],
    root: str | Path | None = None,
    episodes: str | Path | dict | None = None,
    weights: str | list[float] | None = None,
    balance_datasets: bool = False,
    balance_episodes: bool = False,
    dagger_filter: bool = True,
    dagger_mode: str = dagger.DEFAULT_MODE,
    delta_timestamps: dict[str, list[float]] | None = None,
    seed: int = 0,
    image_transforms: Callable | None = None,
    use_imagenet_stats: bool = True,
    verbose: bool = True,
) -> Mixture:
    """The training mixture of ``repo_ids`` (see ``docs/datasets.md``)."""
    say = print if verbose else _quiet

    def warn(message: str) -> None:
        if verbose:
            print(f"warning: {message}", file=sys.stderr)

    ids = parse_repo_ids(repo_ids)
    # Cheap checks of the arguments come before any dataset is read.
    weight_array = parse_weights(weights, len(ids))
    check_share_options(weight_array, balance_datasets)
    mode = dagger.resolve_mode(dagger_mode, dagger_filter)
    selection = parse_episode_spec(episodes, ids)

    resolved = [resolve_dataset(r, root) for r in ids]
    metas = [_load_meta(r) for r in resolved]
    plan = plan_features(ids, [m.features for m in metas], [m.fps for m in metas])
    for line in plan.warnings:
        warn(line)
    for line in plan.notes:
        say(f"note: {line}")
    env_specs = [EnvSpec.load(r.root) for r in resolved]
    for line in env_spec_differences(ids, env_specs):
        warn(line)
    chosen_episodes = [
        select_episodes(selection.get(r.repo_id), m.total_episodes, r.repo_id)
        for r, m in zip(resolved, metas, strict=True)
    ]

    stores: list[FrameStore] = []
    used_frames: list[np.ndarray] = []
    infos: list[DatasetInfo] = []
    frame_classes: list[np.ndarray | None] = []
    episode_offset = 0
    bar = tqdm(list(zip(resolved, metas, strict=True)), desc="Loading datasets", unit="dataset", disable=None)
    for index, (res, meta) in enumerate(bar):
        is_dagger = dagger.is_dagger_dataset(meta.features)
        store = FrameStore(
            res.repo_id, res.root, meta, plan.features.keys(),
            extra_columns=dagger.LABEL_FEATURES if is_dagger else (),
            dataset_index=index, episode_offset=episode_offset, video_backend=video_backend(),
            image_transforms=image_transforms,
        )
        frames, summary, classes = dagger.training_frames(
            res.repo_id, store.frame_episode, store.extra if is_dagger else None, chosen_episodes[index], mode, say
        )
        stores.append(store)
        used_frames.append(frames)
        frame_classes.append(classes)
        infos.append(DatasetInfo(
            repo_id=res.repo_id, root=res.root, total_episodes=int(meta.total_episodes),
            used_episodes=np.unique(store.frame_episode[frames]).tolist(), frames=len(frames),
            env_spec=env_specs[index], revision=res.revision, total_frames=int(meta.total_frames),
            fps=int(meta.fps), dagger=summary.to_dict() if summary is not None else None,
            dagger_mode=mode if classes is not None else None,  # None: demos, labelled or not
        ))
        episode_offset += int(meta.total_episodes)
    bar.close()

    mixture = Mixture(
        ids, plan, int(metas[0].fps), stores, used_frames, infos,
        Sharing(weight_array, balance_datasets, balance_episodes, seed), use_imagenet_stats, frame_classes,
    )
    mixture.set_delta_timestamps(delta_timestamps)
    return mixture


def _quiet(message: str) -> None:
    pass


def _load_meta(res: ResolvedDataset):
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    # lerobot fetches what is missing from the hub, so a damaged local copy would be
    # refused as unreachable (offline) or mixed with the hub's files: said here instead.
    info_path = res.root / "meta" / "info.json"
    try:
        json.loads(info_path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"Dataset '{res.repo_id}': {info_path} cannot be read ({err}); restore the dataset from a "
                        "copy or record it again.") from err
    if not any((res.root / "meta" / "episodes").glob("*/*.parquet")):
        raise UserError(f"Dataset '{res.repo_id}' at {res.root} has no meta/episodes/ files (an incomplete copy?); "
                        "restore the dataset from a copy or record it again.")
    try:
        return LeRobotDatasetMetadata(res.repo_id, root=res.root)
    except Exception as err:  # a folder that is not a readable LeRobot v3 dataset
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"Dataset '{res.repo_id}' at {res.root} could not be read as a LeRobot v3 dataset ({reason})."
        ) from err

