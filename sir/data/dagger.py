"""DAgger labels and the filter that keeps the successful human corrections.

A DAgger dataset carries two per-frame features: ``source`` (0 = the policy acted,
1 = a human or expert acted) and ``success`` (0/1, the episode's outcome). An episode
counts as successful when any of its frames says so, so a recorder that marks only the
final frame works as well as one that repeats the outcome on every frame. Training keeps
the human frames of successful episodes; their observation history and action chunks may
still read the neighbouring (policy) frames of the same episode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from sir.errors import UserError

SOURCE = "source"
SUCCESS = "success"
LABEL_FEATURES = (SOURCE, SUCCESS)
# int64 rather than bool, so lerobot's aggregation can merge corrections with other datasets.
LABEL_FEATURE_SPECS = {name: {"dtype": "int64", "shape": (1,), "names": None} for name in LABEL_FEATURES}
POLICY, HUMAN = 0, 1


def label_episode(frames: list[dict[str, np.ndarray]], takeover_step: int | None, success: bool) -> None:
    """Add the labels to an episode's frames: ``source`` POLICY before ``takeover_step`` and
    HUMAN from it on (all POLICY without a takeover), ``success`` the outcome on every frame."""
    first_human = len(frames) if takeover_step is None else takeover_step
    for t, frame in enumerate(frames):
        frame[SOURCE] = np.array([POLICY if t < first_human else HUMAN], dtype=np.int64)
        frame[SUCCESS] = np.array([int(success)], dtype=np.int64)


def is_dagger_dataset(features: dict[str, dict]) -> bool:
    return all(key in features for key in LABEL_FEATURES)


@dataclass
class DaggerSummary:
    episodes: int  # episodes looked at (after episode selection)
    policy_frames: int
    human_frames: int
    successful_episodes: int
    kept_episodes: int  # successful episodes with at least one human frame
    kept_frames: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def check_labels(repo_id: str, name: str, values: np.ndarray) -> np.ndarray:
    """``values`` as int64 0/1, or a UserError naming the dataset and feature."""
    values = np.asarray(values).reshape(len(values), -1)
    if values.shape[1] != 1:
        raise UserError(f"Dataset '{repo_id}' has a '{name}' feature of {values.shape[1]} values per frame; DAgger labels are one 0/1 value per frame.")
    values = values[:, 0].astype(np.int64)
    bad = np.setdiff1d(np.unique(values), [0, 1])
    if bad.size:
        raise UserError(f"Dataset '{repo_id}' has '{name}' values {bad.tolist()}; DAgger labels must be 0 or 1.")
    return values


def successful_human_frames(
    episode_index: np.ndarray, source: np.ndarray, success: np.ndarray, candidates: np.ndarray
) -> tuple[np.ndarray, DaggerSummary]:
    """Mask of the frames to train on among ``candidates`` (a mask over all frames)."""
    num_episodes = int(episode_index.max()) + 1 if episode_index.size else 0
    successful = np.bincount(episode_index[candidates], weights=success[candidates], minlength=num_episodes) > 0
    human = source == HUMAN
    keep = candidates & human & successful[episode_index]
    summary = DaggerSummary(
        episodes=int(np.unique(episode_index[candidates]).size),
        policy_frames=int((candidates & ~human).sum()),
        human_frames=int((candidates & human).sum()),
        successful_episodes=int(successful.sum()),
        kept_episodes=int(np.unique(episode_index[keep]).size),
        kept_frames=int(keep.sum()),
    )
    return keep, summary


def filter_message(repo_id: str, summary: DaggerSummary) -> str:
    return (
        f"{repo_id}: Filtered {summary.episodes} episodes → {summary.kept_episodes} successful human "
        f"corrections ({summary.kept_frames} frames)"
    )


def no_corrections_error(repo_id: str, summary: DaggerSummary) -> UserError:
    return UserError(
        f"Dataset '{repo_id}' has no successful human corrections ({summary.episodes} episodes, "
        f"{summary.human_frames} human frames, {summary.successful_episodes} successful episodes); "
        f"record more corrections or train on everything with --no-dagger-filter."
    )
