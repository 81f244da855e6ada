"""The DAgger label schema, shared by the datasets sir writes and the mixture that reads them.

Every dataset sir records carries two per-frame features: ``source`` (0 = the policy acted,
1 = a human or expert acted) and ``success`` (0/1, the episode's outcome). Demonstrations
are all ``source`` 1, so lerobot's ``aggregate_datasets`` (which needs equal features) can
merge demos with corrections.

Datasets from elsewhere label the same things under other names (``label_mapping``):
lerobot 0.6's ``lerobot-rollout --strategy.type=dagger`` records a per-frame ``intervention``
(bool, shape (1,), True while the person drives; ``rollout/context.py`` and
``rollout/strategies/dagger.py`` at v0.6.1) and no outcome; lerobot's ``gym_manipulator``
records ``next.reward`` and ``next.done``; sir's own and other recorders record
``next.success``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


INTERVENTION = "intervention"  # lerobot 0.6's per-frame takeover flag
NEXT_SUCCESS = "next.success"
NEXT_REWARD = "next.reward"
# Columns that are labels rather than data wherever they appear.
LABEL_COLUMNS = (SOURCE, SUCCESS, INTERVENTION)


@dataclass(frozen=True)
class LabelMapping:
    """Where a dataset's ``source`` and ``success`` come from."""

    source: str  # the column read as source: true/1 while a human or expert acted
    success: str | None  # the column read as success; None: the dataset records no outcome
    # With success from next.reward: an episode succeeded when its last frame's reward
    # reaches this, the env's reward for success.
    success_reward: float | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for c in (self.source, self.success) if c is not None))

    @property
    def is_sirs(self) -> bool:
        return (self.source, self.success) == (SOURCE, SUCCESS)

    def describe(self) -> str:
        if self.is_sirs:
            return f"{SOURCE}, {SUCCESS}"
        source = f"{SOURCE} <- {self.source}" + (" (human while true)" if self.source == INTERVENTION else "")
        if self.success is None:
            success = f"{SUCCESS} not recorded"
        elif self.success == NEXT_REWARD:
            success = f"{SUCCESS} <- final {NEXT_REWARD} >= {self.success_reward:g} (the env's success reward)"
        else:
            success = f"{SUCCESS} <- {self.success}"
        return f"{source}, {success}"

    def read(self, columns: dict[str, np.ndarray], frame_episode: np.ndarray) -> dict[str, np.ndarray | None]:
        """{SOURCE: values, SUCCESS: values or None} per frame from the mapped ``columns``
        (0/1 checks come after). A success from the final reward is marked on each
        episode's last frame: an episode counts as successful when any frame says so."""
        source = np.asarray(columns[self.source]).reshape(len(frame_episode), -1)
        if self.source == INTERVENTION and source.dtype == bool:
            source = source.astype(np.int64)
        success = None
        if self.success == NEXT_REWARD:
            reward = np.asarray(columns[NEXT_REWARD], dtype=np.float64).reshape(len(frame_episode), -1)[:, 0]
            last = np.r_[frame_episode[1:] != frame_episode[:-1], True]
            # robosuite's rewards reach reward_scale exactly at success; a float tolerance.
            success = (last & (reward >= self.success_reward - 1e-6)).astype(np.int64)[:, None]
        elif self.success is not None:
            success = np.asarray(columns[self.success]).reshape(len(frame_episode), -1)
        return {SOURCE: source, SUCCESS: success}


def success_reward(spec: Any) -> float | None:
    """The reward a successful step earns in the env that recorded a dataset: robosuite
    scales every task's reward so that success scores ``reward_scale`` (its default 1.0;
    e.g. Lift's ``reward()``: 2.25 on success, times reward_scale / 2.25), and lerobot's
    ``gym_manipulator`` records 1.0 at success. None where robosuite was left unscaled."""
    if spec is None:
        return 1.0
    scale = (getattr(spec, "env_kwargs", None) or {}).get("reward_scale", 1.0)
    return None if scale is None else float(scale)


def label_mapping(features: dict[str, dict], spec: Any = None) -> LabelMapping | None:
    """How ``features`` (a dataset's) give the DAgger labels; None for a dataset without a
    source of labels (demonstrations from elsewhere). ``spec``: the dataset's EnvSpec, for
    the success reward."""
    source = SOURCE if SOURCE in features else INTERVENTION if INTERVENTION in features else None
    if source is None:
        return None
    for name in (SUCCESS, NEXT_SUCCESS):
        if name in features:
            return LabelMapping(source, name)
    if NEXT_REWARD in features and (reward := success_reward(spec)) is not None:
        return LabelMapping(source, NEXT_REWARD, reward)
    return LabelMapping(source, None)


def missing_success(repo_id: str, mapping: LabelMapping, mode: str, modes_without: tuple[str, ...]) -> str:
    """The sentence refusing a mode that needs episode outcomes on a dataset without any."""
    return (f"Dataset '{repo_id}' marks who acted ('{mapping.source}') but records no outcome (no '{SUCCESS}', "
            f"'{NEXT_SUCCESS}' or '{NEXT_REWARD}' feature), which --dagger-mode {mode} needs to tell successful "
            f"episodes; train it with --dagger-mode {', '.join(modes_without[:-1])} or {modes_without[-1]}, which "
            "use no outcome.")

