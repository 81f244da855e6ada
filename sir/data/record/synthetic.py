"""Small synthetic LeRobot datasets, for tests and benchmarks that must not touch the hub.

They are written by sir's own ``DatasetWriter`` (so by lerobot's writer), with the feature
layout ``sir.data.collect`` records; values are random but reproducible from ``seed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sir.data.labels import LABEL_FEATURE_SPECS
from sir.envs.spec import IMAGE_FEATURE_PREFIX, default_spec


def dagger_features(dtype: str = "int64") -> dict[str, dict]:
    """The DAgger label features; ``dtype`` other than int64 makes a dataset recorded elsewhere."""
    return {name: {**spec, "dtype": dtype} for name, spec in LABEL_FEATURE_SPECS.items()}


def dagger_episode(*runs: tuple[int, int], success: bool) -> tuple[list[int], int]:
    """One episode's ``dagger`` entry from runs of (source, frames):
    ``dagger_episode((0, 20), (1, 10), success=True)`` is 20 policy frames, then a takeover."""
    return [source for source, frames in runs for _ in range(frames)], int(success)


def make_synthetic_dataset(
    root: str | Path,
    repo_id: str,
    episode_lengths: Sequence[int],
    *,
    state_dim: int = 9,
    env_state_dim: int = 10,
    action_dim: int = 7,
    fps: int = 20,
    cameras: Sequence[str] = (),
    image_size: int = 32,
    offset: float = 0.0,
    dagger: Sequence[tuple[Sequence[int], int]] | None = None,
    label_dtype: str = "int64",
    use_videos: bool = True,
    drop_features: Sequence[str] = (),
    spec_overrides: dict | None = None,
    seed: int = 0,
) -> Path:
    """Write a dataset of ``len(episode_lengths)`` episodes to ``root/repo_id``.

    ``offset`` shifts every state and action value, so datasets differ in their statistics.
    ``dagger`` gives, per episode, the per-frame ``source`` labels (0 policy, 1 human) and
    the episode's ``success`` (0/1); with it the dataset carries the two DAgger features.
    ``use_videos=False`` stores camera frames as images in the parquet files instead;
    ``drop_features`` leaves features out, ``spec_overrides`` changes the EnvSpec saved.
    """
    from sir.data.record.writer import DatasetWriter, dataset_features

    rng = np.random.default_rng(seed)
    spec = default_spec(
        "Lift", "Panda", cameras=list(cameras), image_size=image_size, control_freq=fps, **(spec_overrides or {})
    )
    example: dict[str, np.ndarray] = {"observation.state": np.zeros(state_dim, np.float32)}
    if env_state_dim:
        example["observation.environment_state"] = np.zeros(env_state_dim, np.float32)
    for cam in cameras:
        example[IMAGE_FEATURE_PREFIX + cam] = np.zeros((image_size, image_size, 3), np.uint8)
    features = dataset_features(spec, example, action_dim,
                                extra=dagger_features(label_dtype) if dagger is not None else None)
    if dagger is not None and len(dagger) != len(episode_lengths):
        raise ValueError("dagger needs one (sources, success) pair per episode")
    for key in drop_features:
        features.pop(key)
    label_type = bool if label_dtype == "bool" else np.int64
    if use_videos:
        writer = DatasetWriter(root, repo_id, spec, features, info={"recorded_by": "sir.data.record.synthetic"})
    else:
        writer = _ImageWriter(root, repo_id, spec, {
            k: {**f, "dtype": "image"} if f["dtype"] == "video" else f for k, f in features.items()
        })
    try:
        for ep, length in enumerate(episode_lengths):
            frames = []
            for t in range(length):
                frame = {
                    key: (rng.normal(size=v.shape) + offset + ep).astype(np.float32)
                    for key, v in example.items()
                    if not key.startswith(IMAGE_FEATURE_PREFIX)
                }
                for cam in cameras:
                    frame[IMAGE_FEATURE_PREFIX + cam] = rng.integers(0, 256, (image_size, image_size, 3), np.uint8)
                frame["action"] = (rng.normal(size=action_dim) * (1 + ep) + offset).astype(np.float32)
                frame["next.reward"] = np.array([float(t == length - 1)], np.float32)
                frame["next.success"] = np.array([t == length - 1], bool)
                if dagger is not None:
                    sources, success = dagger[ep]
                    frame["source"] = np.array([sources[t]], label_type)
                    frame["success"] = np.array([success], label_type)
                frames.append({k: v for k, v in frame.items() if k not in drop_features})
            writer.add_episode(frames)
    except BaseException:
        writer.abort()
        raise
    path = writer.finalize()
    assert path is not None
    return path


class _ImageWriter:
    """lerobot's writer with cameras stored as images (sir's own writer always uses video)."""

    def __init__(self, root: str | Path, repo_id: str, spec, features: dict[str, dict]):
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        self.spec = spec
        self.path = Path(root) / repo_id
        self.dataset = LeRobotDataset.create(
            repo_id=repo_id, fps=spec.control_freq, features=features, root=self.path,
            robot_type=spec.robot_type, use_videos=False, image_writer_threads=0,
        )

    def add_episode(self, frames: list[dict]) -> None:
        for frame in frames:
            self.dataset.add_frame({**frame, "task": self.spec.task})
        self.dataset.save_episode()

    def finalize(self) -> Path:
        self.dataset.finalize()
        self.spec.save(self.path / "meta")
        return self.path

    def abort(self) -> None:
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)
