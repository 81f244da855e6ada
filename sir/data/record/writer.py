"""The dataset writer shared by ``sir.data.collect``, ``sir.dagger.record`` and the importers.

Datasets are LeRobotDataset v3 written by lerobot's own writer. They are built in a
temporary folder beside the target and renamed into place when finalized, so an existing
dataset is never touched. One writer at a time holds a repo-id (a lock beside the target);
a second is refused at start.

A *resumable* writer (the recorders') makes each finished episode durable as it goes (see
``sir.data.record.journal``): a recording killed even by SIGKILL loses at most the episode in
progress, and the next writer of the same repo-id keeps the finished episodes and goes on
from them (``recovered`` holds what the recorder noted at the last episode).
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from sir import atomic
from sir.data.record import journal
from sir.data.resolve import dataset_path
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
        resumable: bool = False,
    ):
        _silence_lerobot_progress()
        self.target = dataset_path(root, repo_id, "--repo-id")
        self.lock = _hold(self.target)
        try:
            self._open(repo_id, spec, features, info, resumable)
        except BaseException:
            self.lock.release()
            raise

    def _open(self, repo_id: str, spec: EnvSpec, features: dict[str, dict], info: dict[str, Any] | None,
              resumable: bool) -> None:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        if self.target.exists():
            raise UserError(
                f"A dataset already exists at {self.target}; choose another --repo-id or remove it first."
            )
        # What killed runs left here goes, except recordings with finished episodes: those are
        # kept for the next recording of their repo-id (this one's, below).
        removed = atomic.remove_leftovers(self.target.parent, keep=lambda entry: journal.finished_episodes(entry) > 0)
        if removed:
            print(removed)
        # lerobot adds to the feature dicts it is given (video info): ours stay as the recorder made them.
        self.repo_id, self.spec, self.features, self.info = repo_id, spec, copy.deepcopy(features), dict(info or {})
        self.resumable = resumable
        self.tmp = atomic.temporary_path(self.target)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.num_episodes = 0
        self.num_frames = 0
        self.recovered: dict[str, Any] | None = None  # the recorder's notes at the last kept episode
        self._record: dict[str, Any] | None = None  # the last commit
        self._saving = False  # inside add_episode: lerobot's files may hold part of an episode
        interrupted = _interrupted_recording(self.target)
        if interrupted is not None:
            self._recover(interrupted)
            return
        self.dataset = LeRobotDataset.create(
            repo_id=repo_id,
            fps=spec.control_freq,
            features=copy.deepcopy(features),
            root=self.tmp,
            robot_type=spec.robot_type,
            use_videos=True,
            image_writer_threads=4 if spec.cameras else 0,
            vcodec=DEFAULT_VCODEC,
        )

    def _recover(self, folder: Path) -> None:
        """Take over the finished episodes of a killed recording of this repo-id."""
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        record = journal.read(folder)
        assert record is not None
        journal.roll_back(folder, record)
        folder.rename(self.tmp)
        self._record = record
        self.num_episodes, self.num_frames = int(record["episodes"]), int(record["frames"])
        kept = (f"Kept {self.num_episodes} finished episode{'s' if self.num_episodes > 1 else ''} "
                "of an interrupted recording")
        differ = [name for name, theirs, ours in (("EnvSpec", record["spec"], self.spec.to_dict()),
                                                   ("set of features", record["features"], self.features))
                  if not journal.same(theirs, ours)]
        if differ or not self.resumable:
            # It cannot go on here: it becomes the dataset, as it would have at a Ctrl-C.
            self.spec, self.info = EnvSpec.from_dict(record["spec"]), record["info"]
            path = self._move_into_place()
            print(f"{kept} in {path}.")
            why = f"made with another {' and '.join(differ)}" if differ else "which this command cannot continue"
            raise UserError(f"{path} now holds the finished episodes of an interrupted recording {why}; "
                            f"choose another --repo-id, or remove {path} first.")
        try:
            self.dataset = LeRobotDataset(self.repo_id, root=self.tmp, vcodec=DEFAULT_VCODEC)
        except Exception as err:
            raise UserError(f"The interrupted recording of {self.target} in {self.tmp} cannot be read ({err}); "
                            f"remove {self.tmp} to record {self.target} anew.") from None
        if self.spec.cameras:
            self.dataset.start_image_writer(num_threads=4)
        self.info = {**record["info"], "interruptions": int(record["info"].get("interruptions", 0)) + 1}
        self.recovered = record["progress"]
        print(f"{kept} of {self.target}; recording goes on from there.")

    def add_episode(self, frames: list[dict[str, Any]], progress: dict[str, Any] | None = None) -> None:
        """Add one episode's frames (feature arrays; ``task`` is filled in) and save it. A
        resumable writer then makes it durable, with ``progress`` (JSON) for ``recovered``."""
        self._saving = True
        for frame in frames:
            self.dataset.add_frame({**frame, "task": self.spec.task})
        self.dataset.save_episode()
        if self.resumable:
            # lerobot writes a parquet file's footer only when its writer closes (finalize).
            self.dataset.finalize()
            _continue_in_new_files(self.dataset)
        self.num_episodes += 1
        self.num_frames += len(frames)
        if self.resumable:
            self._record = journal.commit(self.tmp, {
                "episodes": self.num_episodes, "frames": self.num_frames, "spec": self.spec.to_dict(),
                "features": self.features, "info": self.info, "progress": progress or {},
            })
        self._saving = False

    def log(self, name: str, entry: dict[str, Any]) -> None:
        """Add ``entry`` as a JSON line to the dataset's file ``name`` (e.g. ``journal.CORRECTIONS``),
        rewritten whole, atomically. A resumable writer's next commit records the file with
        the episode (a file in ``journal.REWRITTEN``: a kill before it rolls the lines back)."""
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = path.read_text() if path.is_file() else ""
        atomic.write_text(path, text + json.dumps(entry, default=_plain) + "\n")

    def finalize(self) -> Path | None:
        """Close the writer and move the dataset into place; None when nothing was recorded.
        After a Ctrl-C inside ``add_episode``, the finished episodes alone are kept."""
        try:
            if self._saving:
                with contextlib.suppress(Exception):
                    self.dataset.finalize()
                record = self._durable_record()
                if record is None:
                    self.num_episodes = 0
                else:
                    journal.roll_back(self.tmp, record)
                    self.num_episodes, self.num_frames = record["episodes"], record["frames"]
            else:
                self.dataset.finalize()
            if self.num_episodes == 0:
                shutil.rmtree(self.tmp, ignore_errors=True)
                return None
            return self._move_into_place()
        finally:
            self.lock.release()

    def _durable_record(self) -> dict[str, Any] | None:
        """The commit record on disk, which is what a kill at this instant would keep: a Ctrl-C
        that lands after ``journal.commit`` wrote an episode's record but before it returned
        keeps that episode too (the record in memory is then one episode behind)."""
        return (journal.read(self.tmp) if self.resumable else None) or self._record

    def _move_into_place(self) -> Path:
        self.spec.save(self.tmp / "meta")
        atomic.write_json(self.tmp / "meta" / SIR_META_FILENAME, self.info)
        self.tmp.rename(self.target)
        (self.target / journal.JOURNAL).unlink(missing_ok=True)  # after the rename: never a dataset without it
        return self.target

    def abort(self) -> None:
        """Stop on an error: a resumable writer's finished episodes stay for the next recording
        of this repo-id (as after a kill); otherwise nothing is left."""
        try:
            record = self._durable_record()
            if record is None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                return
            with contextlib.suppress(Exception):
                self.dataset.finalize()
            journal.roll_back(self.tmp, record)
            print(f"The {record['episodes']} finished episodes are kept for the next recording of {self.target}.")
        finally:
            self.lock.release()


def _plain(value: Any) -> Any:
    """NumPy scalars as JSON numbers."""
    return value.item() if isinstance(value, np.generic) else str(value)


def refuse_if_busy(root: str | Path, repo_id: str) -> None:
    """Refuse at once (before building an env) a recording of a repo-id another live process
    is writing; the writer itself takes the lock for good."""
    _hold(dataset_path(root, repo_id, "--repo-id")).release()


def _hold(target: Path) -> atomic.ProcessLock:
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = atomic.ProcessLock(target.with_name(f".{target.name}.lock"))
    if not lock.acquire():
        who = f"process {lock.owner}" if lock.owner else "another process"
        raise UserError(f"Another recording ({who}) is writing {target} now; "
                        "wait for it to finish or choose another --repo-id.")
    return lock


def _interrupted_recording(target: Path) -> Path | None:
    """The temporary folder of a killed recording of ``target`` with the most finished episodes."""
    found = [entry for entry, name in atomic.dead_leftovers(target.parent)
             if name == target.name and entry.name.startswith(f".{name}.tmp-") and journal.finished_episodes(entry) > 0]
    return max(found, key=journal.finished_episodes, default=None)


def _continue_in_new_files(dataset: Any) -> None:
    """Have lerobot write the next episode to new data, episodes and video files, as it does
    for a recording resumed on a finalized dataset. Otherwise it would reopen the closed
    episodes file and truncate it (a new ParquetWriter on its path) and rewrite the last video
    file to append to it. Its resume branches read only the last episode's row of
    ``meta.episodes`` (file indices and frame range), which is the row it just wrote."""
    meta = dataset.meta
    last = {key: value[0] if isinstance(value, list) else value for key, value in meta.latest_episode.items()}
    dataset.latest_episode = None
    meta.latest_episode = None
    meta.episodes = [last]
