"""Recordings survive being killed: SIGKILL loses at most the episode in progress and the next
recording of the same repo-id keeps the finished ones and goes on; a second recording of a
repo-id is refused while the first runs; Ctrl-C ends every command with one line, exit 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sir.data.record import journal
from sir.errors import INTERRUPTED_EXIT_CODE, USAGE_EXIT_CODE

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}


def collect_cmd(root: Path, repo_id: str, episodes: int) -> list[str]:
    return [sys.executable, "-m", "sir.data.collect", "--env", "Lift", "--episodes", str(episodes),
            "--root", str(root), "--repo-id", repo_id, "--max-steps", "80"]


def start(cmd: list[str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def wait_for_episodes(proc: subprocess.Popen, root: Path, repo_id: str, episodes: int, timeout: float = 120) -> int:
    """Wait until ``proc`` has made ``episodes`` episodes durable (its commit record says so)."""
    folder = root / f".{repo_id}.tmp-{proc.pid}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the recording ended early: {proc.communicate()}")
        done = journal.finished_episodes(folder)
        if done >= episodes:
            return done
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no {episodes} finished episodes in {timeout} s")


def frames_of(folder: Path) -> pd.DataFrame:
    """Every frame in a dataset folder's parquet files, in index order."""
    files = sorted((folder / "data").glob("*/*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files]).sort_values("index").reset_index(drop=True)


def load(root: Path, repo_id: str):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(repo_id, root=root / repo_id)


def stop(proc: subprocess.Popen, signum: int) -> tuple[str, str]:
    """Send ``signum`` to ``proc``, wait for it to end; its stdout and stderr."""
    try:
        proc.send_signal(signum)
        return proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_killed_recording_keeps_its_finished_episodes_and_the_next_run_goes_on_until_ctrl_c(tmp_path):
    first = start(collect_cmd(tmp_path, "lift", 20))
    wait_for_episodes(first, tmp_path, "lift", 2)
    stop(first, signal.SIGKILL)
    left = tmp_path / f".lift.tmp-{first.pid}"
    record = journal.read(left)
    kept = record["episodes"]
    assert kept >= 2 and not (tmp_path / "lift").exists()
    before = pd.concat([pd.read_parquet(left / name) for name in record["files"] if name.startswith("data/")])
    before = before.sort_values("index").reset_index(drop=True)
    assert sorted(before["episode_index"].unique()) == list(range(kept))

    # The next recording keeps them, says so, and goes on; Ctrl-C then ends it in one line.
    second = start(collect_cmd(tmp_path, "lift", 20))
    wait_for_episodes(second, tmp_path, "lift", kept + 1)
    out, err = stop(second, signal.SIGINT)
    assert f"Kept {kept} finished episodes of an interrupted recording of {tmp_path / 'lift'}" in out
    assert second.returncode == INTERRUPTED_EXIT_CODE, err
    assert "Traceback" not in err
    path = tmp_path / "lift"
    dataset = load(tmp_path, "lift")
    total = dataset.num_episodes
    assert total > kept and len(dataset.meta.episodes) == total
    lines = [line for line in err.splitlines() if line.startswith("interrupted:")]
    assert lines == [f"interrupted: {total} finished episodes kept in {path}"] and err.rstrip().endswith(lines[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lift"]  # no lock, no temporary folder left
    assert not (path / journal.JOURNAL).exists()
    assert json.loads((path / "meta" / "sir_info.json").read_text())["interruptions"] == 1

    after = frames_of(path)
    assert len(after) == dataset.num_frames == sum(dataset.meta.episodes["length"])
    assert list(after["index"]) == list(range(len(after)))
    # The finished episodes are as the killed run wrote them, frame for frame.
    pd.testing.assert_frame_equal(after.iloc[: len(before)].reset_index(drop=True), before)
    assert dataset[len(before)]["episode_index"] == kept  # the next run's first episode follows them
    # It went on with the seeds after the killed run's: no initial state twice.
    starts = {tuple(np.round(after[after["episode_index"] == e]["observation.environment_state"].iloc[0], 6))
              for e in range(total)}
    assert len(starts) == total


def test_a_second_recording_of_the_same_repo_id_is_refused_and_the_first_completes(tmp_path, capsys):
    from sir.data.collect import main as collect

    proc = start(collect_cmd(tmp_path, "lift", 3))
    try:
        wait_for_episodes(proc, tmp_path, "lift", 1)
        with pytest.raises(SystemExit) as refused:
            collect(collect_cmd(tmp_path, "lift", 2)[3:])
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert refused.value.code == USAGE_EXIT_CODE
    message = capsys.readouterr().err.strip()
    assert message == (f"error: Another recording (process {proc.pid}) is writing {tmp_path / 'lift'} now; "
                       "wait for it to finish or choose another --repo-id.")
    assert proc.returncode == 0, err
    assert load(tmp_path, "lift").num_episodes == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lift"]  # the lock went with the first recording


def test_ctrl_c_ends_training_with_one_line_naming_the_last_checkpoint(tmp_path):
    from sir.data.record.synthetic import make_synthetic_dataset

    make_synthetic_dataset(tmp_path, "demos", [12, 12], seed=0)
    run_dir = tmp_path / "run"
    proc = start([sys.executable, "-m", "sir.training.train_policy", "--repo-ids", "demos", "--root", str(tmp_path),
                  "--policy", "act", "--preset", "tiny", "--batch-size", "4", "--training-steps", "100000",
                  "--save-freq", "2", "--no-eval", "--device", "cpu", "--num-workers", "0",
                  "--checkpoint-dir", str(tmp_path), "--run-name", "run"])
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoint_2").is_dir():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint in 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == INTERRUPTED_EXIT_CODE
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("interrupted:")]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0])
    last = max((p for p in run_dir.glob("checkpoint_*")), key=lambda p: int(p.name.split("_")[1]))
    assert lines[0] == f"interrupted: last checkpoint {last}"


def test_ctrl_c_without_a_note_says_so_generically(capsys):
    from sir import errors

    @errors.cli_errors
    def command() -> None:
        raise KeyboardInterrupt

    errors.note_kept(None)
    with pytest.raises(SystemExit) as stopped:
        command()
    assert stopped.value.code == INTERRUPTED_EXIT_CODE
    assert capsys.readouterr().err == "interrupted: stopped before finishing\n"


def test_ctrl_c_wrapped_by_a_library_is_still_ctrl_c_and_other_errors_are_not(capsys):
    # numba's unpickling (robosuite's jitted code) turns a KeyboardInterrupt into this.
    from sir import errors

    @errors.cli_errors
    def command(error: type[BaseException]) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as err:
            raise error("returned a result with an exception set") from err

    errors.note_kept(None)
    with pytest.raises(SystemExit) as stopped:
        command(SystemError)
    assert stopped.value.code == INTERRUPTED_EXIT_CODE
    assert capsys.readouterr().err == "interrupted: stopped before finishing\n"

    @errors.cli_errors
    def failing() -> None:
        raise SystemError("a real failure")

    with pytest.raises(SystemError):
        failing()


# -- the writer itself, without an env: a kill inside an episode's save, other settings ----


def _writer(root: Path, cameras: tuple[str, ...] = ("agentview",), state_dim: int = 4):
    from sir.data.record.writer import DatasetWriter, dataset_features
    from sir.envs.spec import IMAGE_FEATURE_PREFIX, default_spec

    spec = default_spec("Lift", "Panda", cameras=list(cameras), image_size=16)
    example = {"observation.state": np.zeros(state_dim, np.float32)}
    example.update({IMAGE_FEATURE_PREFIX + cam: np.zeros((16, 16, 3), np.uint8) for cam in cameras})
    return DatasetWriter(root, "demo", spec, dataset_features(spec, example, 7), info={"by": "test"}, resumable=True)


def _episode(seed: int, length: int = 6, state_dim: int = 4) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"observation.state": rng.normal(size=state_dim).astype(np.float32),
             "observation.images.agentview": rng.integers(0, 256, (16, 16, 3), np.uint8),
             "action": rng.normal(size=7).astype(np.float32), "next.reward": np.zeros(1, np.float32),
             "next.success": np.array([t == length - 1])} for t in range(length)]


def _die(writer, root: Path) -> Path:
    """What a SIGKILL leaves: the writer's folder under a dead PID, its lock gone with it."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    writer.lock.release()
    left = root / f".demo.tmp-{child.pid}"
    writer.tmp.rename(left)
    return left


def test_a_kill_inside_an_episode_save_loses_that_episode_only(tmp_path, monkeypatch, capsys):
    writer = _writer(tmp_path)
    for seed in range(2):
        writer.add_episode(_episode(seed), progress={"next_seed": seed + 1})
    # Killed inside lerobot's save of the third: its frames and video written, its metadata not.
    monkeypatch.setattr(writer.dataset.meta, "save_episode", lambda *a, **k: (_ for _ in ()).throw(RuntimeError))
    with pytest.raises(RuntimeError):
        writer.add_episode(_episode(2, length=9))
    left = _die(writer, tmp_path)
    written = {p.relative_to(left).as_posix() for p in left.rglob("*") if p.is_file()}
    assert written - set(journal.read(left)["files"]) - {journal.JOURNAL}  # the third episode's files
    monkeypatch.undo()

    writer = _writer(tmp_path)
    assert "Kept 2 finished episodes of an interrupted recording" in capsys.readouterr().out
    assert writer.recovered == {"next_seed": 2} and writer.num_episodes == 2
    writer.add_episode(_episode(3, length=7))
    path = writer.finalize()
    dataset = load(tmp_path, "demo")
    assert (dataset.num_episodes, dataset.num_frames) == (3, 6 + 6 + 7)
    assert list(dataset.meta.episodes["length"]) == [6, 6, 7]
    assert list(frames_of(path)["index"]) == list(range(19))
    # Each episode's video decodes where its metadata says (the dropped episode's video is gone).
    last = dataset[18]
    assert last["episode_index"] == 2 and last["observation.images.agentview"].shape == (3, 16, 16)
    assert len(list(path.glob("videos/*/*/*.mp4"))) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_an_interrupted_recording_with_other_features_becomes_the_dataset_and_the_new_one_is_refused(tmp_path, capsys):
    from sir.errors import UserError

    writer = _writer(tmp_path, cameras=())
    frames = [{k: v for k, v in f.items() if "images" not in k} for f in _episode(0)]
    writer.add_episode(frames)
    _die(writer, tmp_path)
    with pytest.raises(UserError, match="made with another EnvSpec and set of features"):
        _writer(tmp_path)
    assert f"Kept 1 finished episode of an interrupted recording in {tmp_path / 'demo'}." in capsys.readouterr().out
    assert load(tmp_path, "demo").num_episodes == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_a_ctrl_c_after_an_episode_commit_landed_keeps_that_episode(tmp_path, monkeypatch):
    # The window the crash test above can hit: the commit record of episode 2 is on disk (a kill
    # now would keep it) but journal.commit has not returned when Ctrl-C arrives.
    writer = _writer(tmp_path, cameras=())
    frames = [{k: v for k, v in f.items() if "images" not in k} for f in _episode(0)]
    writer.add_episode(frames)
    real_commit = journal.commit

    def commit_then_interrupted(folder, record):
        real_commit(folder, record)
        raise KeyboardInterrupt

    monkeypatch.setattr(journal, "commit", commit_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        writer.add_episode(frames[:4])
    monkeypatch.undo()
    path = writer.finalize()
    dataset = load(tmp_path, "demo")
    assert list(dataset.meta.episodes["length"]) == [6, 4]
    assert list(frames_of(path)["index"]) == list(range(10))
