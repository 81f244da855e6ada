"""The DAgger label schema, shared by the datasets sir writes and the mixture that reads them.

Every dataset sir records carries two per-frame features: ``source`` (0 = the policy acted,
1 = a human or expert acted) and ``success`` (0/1, the episode's outcome). Demonstrations
are all ``source`` 1, so lerobot's ``aggregate_datasets`` (which needs equal features) can
merge demos with corrections.
"""

from __future__ import annotations

import numpy as np

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


def label_demo(frames: list[dict[str, np.ndarray]], success: bool) -> None:
    """Label a demonstration: every frame ``source`` HUMAN, ``success`` the outcome (1 but for
    failures kept with ``--keep-failures``)."""
    label_episode(frames, 0, success)


def is_dagger_dataset(features: dict[str, dict]) -> bool:
    return all(key in features for key in LABEL_FEATURES)
