"""The dataset writer shared by ``sir.data.collect`` and ``sir.dagger.record``.

Datasets are LeRobotDataset v3 written by lerobot's own writer. They are built in a
temporary folder beside the target and renamed into place when finalized, so an existing
dataset is never touched and an interrupted recording leaves a loadable dataset.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from sir import atomic
from sir.envs.spec import IMAGE_FEATURE_PREFIX, EnvSpec
from sir.errors import UserError

ACTION_NAMES_OSC = ["dx", "dy", "dz", "dax", "day", "daz", "gripper"]
# AV1 is lerobot's default but libsvtav1 is slow on 2 cores; H.264 decodes everywhere.
DEFAULT_VCODEC = "h264"
SIR_META_FILENAME = "sir_info.json"


def _silence_lerobot_progress() -> None:
    # lerobot's writer runs datasets.map per episode, each drawing a "Map" bar that would
    # drown sir's own progress bar.
    import datasets

    datasets.disable_progress_bars()


def dataset_features(
    spec: EnvSpec, example: dict[str, np.ndarray], action_dim: int, extra: dict[str, dict] | None = None
) -> dict[str, dict]:
    """LeRobot feature descriptions for frames shaped like ``example``."""
    features: dict[str, dict] = {}
    for key, value in example.items():
        if key.startswith(IMAGE_FEATURE_PREFIX):
            features[key] = {"dtype": "video", "shape": tuple(value.shape), "names": ["height", "width", "channels"]}
        else:
            features[key] = {"dtype": "float32", "shape": tuple(value.shape), "names": None}
    names = ACTION_NAMES_OSC if action_dim == len(ACTION_NAMES_OSC) else None
    features["action"] = {"dtype": "float32", "shape": (action_dim,), "names": names}
    features["next.reward"] = {"dtype": "float32", "shape": (1,), "names": None}
    features["next.success"] = {"dtype": "bool", "shape": (1,), "names": None}
    features.update(extra or {})
    return features


class DatasetWriter:
    """Writes whole episodes to a new LeRobotDataset at ``root/repo_id``."""

    def __init__(
        self,
        root: str | Path,
        repo_id: str,
        spec: EnvSpec,
        features: dict[str, dict],
        info: dict[str, Any] | None = None,
    ):
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        _silence_lerobot_progress()
        self.target = Path(root) / repo_id
        if self.target.exists():
            raise UserError(
                f"A dataset already exists at {self.target}; choose another --repo-id or remove it first."
            )
        self.target.parent.mkdir(parents=True, exist_ok=True)
        # Datasets that killed recordings were building here (their parquet files never
        # closed) can never be finished: removed, as a new recording starts beside them.
        removed = atomic.remove_leftovers(self.target.parent)
        if removed:
            print(removed)
        self.tmp = atomic.temporary_path(self.target)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.spec = spec
        self.info = dict(info or {})
        self.dataset = LeRobotDataset.create(
            repo_id=repo_id,
            fps=spec.control_freq,
            features=features,
            root=self.tmp,
            robot_type=spec.robot_type,
            use_videos=True,
            image_writer_threads=4 if spec.cameras else 0,
            vcodec=DEFAULT_VCODEC,
        )
        self.num_episodes = 0
        self.num_frames = 0

    def add_episode(self, frames: list[dict[str, Any]]) -> None:
        """Add one episode's frames (feature arrays; ``task`` is filled in) and save it."""
        for frame in frames:
            self.dataset.add_frame({**frame, "task": self.spec.task})
        self.dataset.save_episode()
        self.num_episodes += 1
        self.num_frames += len(frames)

    def finalize(self) -> Path | None:
        """Close the writer and move the dataset into place; None when nothing was recorded."""
        self.dataset.finalize()
        if self.num_episodes == 0:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return None
        self.spec.save(self.tmp / "meta")
        (self.tmp / "meta" / SIR_META_FILENAME).write_text(json.dumps(self.info, indent=2) + "\n")
        self.tmp.rename(self.target)
        return self.target

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
