"""Evaluations beside training (--async-eval): the same results as a run that waits for
them, and faults and resumes that lose nothing."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sir.policies.checkpoint import load_checkpoint
from sir.training import TrainConfig, train

# Two evaluations: the first runs while training goes on, the second waits behind it, so
# none is replaced by a newer one however fast this machine trains.
STEPS, EVAL_FREQ = 20, 10
TIMING = {"wall_time_s", "env_steps_per_s"}


def config(lift_demos, checkpoint_dir, **overrides) -> TrainConfig:
    root, repo_id = lift_demos
    return TrainConfig(**{
        "repo_ids": [repo_id], "root": str(root), "policy": "act", "preset": "tiny", "batch_size": 8,
        "training_steps": STEPS, "eval_freq": EVAL_FREQ, "save_freq": EVAL_FREQ, "eval_episodes": 3,
        "max_steps": 25, "log_freq": 1, "eval_workers": 1, "checkpoint_dir": str(checkpoint_dir), "run_name": "run",
        **overrides,
    })


def history(run_dir) -> list[dict[str, str]]:
    with (run_dir / "eval_history.csv").open() as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def without_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMING | {"startup_s", "workers"}}


@pytest.fixture(scope="module")
def waiting_run(lift_demos, tmp_path_factory):
    """The reference: a run that waits for each evaluation."""
    return train(config(lift_demos, tmp_path_factory.mktemp("sync"), async_eval=False))


@pytest.mark.slow
def test_evaluating_beside_training_gives_the_waiting_runs_history_best_model_and_result(
        waiting_run, lift_demos, tmp_path):
    beside = train(config(lift_demos, tmp_path, async_eval=True))
    rows = history(beside.run_dir)
    assert [r["step"] for r in rows] == ["10", "20"]
    assert rows == history(waiting_run.run_dir)
    assert len({r["avg_reward"] for r in rows}) == 2, "the two evaluations must differ to mean anything"
    assert beside.best_step == waiting_run.best_step
    assert without_timing(beside.best_metrics) == without_timing(waiting_run.best_metrics)
    assert without_timing(beside.last_metrics) == without_timing(waiting_run.last_metrics)
    evals = [json.loads(line) for line in (beside.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in evals if "eval/success_rate" in r] == [10, 20]
    best = json.loads((beside.run_dir / "best_model" / "sir_checkpoint.json").read_text())
    assert best["step"] == beside.best_step and best["metrics"]["success_rate"] == beside.best_metrics["success_rate"]
    load_checkpoint(beside.run_dir / "best_model", device="cpu")
    assert not (beside.run_dir / "eval_snapshots").exists(), "snapshots outlived their evaluations"
    assert not [p for p in beside.run_dir.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_the_last_k_evaluations_are_never_skipped_beside_training(lift_demos, tmp_path, capsys):
    """Training outruns its evaluations (ten tiny steps against an evaluation of 3 episodes): a
    newer snapshot may replace a waiting one, but not one of the last --last-k, whose mean is
    the run's score: training waits for it instead."""
    from sir.training.config import last_evaluations

    cfg = config(lift_demos, tmp_path, async_eval=True, training_steps=40, last_k=2)
    assert last_evaluations(cfg) == {30, 40}
    assert last_evaluations(dataclasses.replace(cfg, eval_freq=0)) == {40}
    assert last_evaluations(dataclasses.replace(cfg, eval_start=25, last_k=5)) == {30, 40}
    result = train(cfg)
    steps = [r["step"] for r in history(result.run_dir)]
    assert steps[-2:] == ["30", "40"] and steps[0] == "10"
    out = capsys.readouterr().out
    assert "Evaluation of step 30 skipped" not in out
    if "20" not in steps:  # step 30 replaced it (whether 30 then waited at step 40 depends on timing)
        assert "Evaluation of step 20 skipped: step 30 replaces it" in out
    info = json.loads((result.run_dir / "final_model" / "sir_checkpoint.json").read_text())
    assert info["last_k"]["steps"] == [30, 40]


@pytest.mark.slow
def test_a_failing_background_evaluation_fails_the_run_resumably_and_resume_evaluates_it_again(
        waiting_run, lift_demos, tmp_path):
    # A video folder that is a file: the evaluation rolls out, then cannot write its video.
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    broken = config(lift_demos, tmp_path, async_eval=True, save_video=True, video_episodes=1,
                    video_dir=str(blocker / "videos"))
    with pytest.raises(RuntimeError, match="the evaluation of step 10 failed"):
        train(broken)
    run_dir = tmp_path / "run"
    kept = sorted(p.name for p in run_dir.glob("checkpoint_*"))
    assert kept, "no resumable checkpoint was written"
    state = json.loads((run_dir / kept[-1] / "training_state" / "sir_run_state.json").read_text())
    assert 10 in state["pending_evals"]
    resumed = train(dataclasses.replace(broken, save_video=False, video_dir=None, resume=str(run_dir / kept[-1])))
    assert [r["step"] for r in history(run_dir)] == ["10", "20"]
    assert history(run_dir) == history(waiting_run.run_dir)
    assert resumed.best_step == waiting_run.best_step


KILLED_RUN = """
import sys
from sir.training.train_policy import main
main(sys.argv[1:])
"""


def _start(lift_demos, checkpoint_dir):
    root, repo_id = lift_demos
    args = ["--repo-ids", repo_id, "--root", str(root), "--policy", "act", "--preset", "tiny", "--batch-size", "8",
            "--training-steps", str(STEPS), "--eval-freq", str(EVAL_FREQ), "--save-freq", str(EVAL_FREQ),
            "--eval-episodes", "3", "--max-steps", "25", "--log-freq", "1", "--eval-workers", "1",
            "--checkpoint-dir", str(checkpoint_dir), "--run-name", "run", "--async-eval"]
    return subprocess.Popen([sys.executable, "-c", KILLED_RUN, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_for(path, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while not path.is_file():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _gone(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.mark.slow
def test_a_run_killed_with_evaluations_pending_loses_no_checkpoint_and_resume_runs_them(
        waiting_run, lift_demos, tmp_path):
    proc = _start(lift_demos, tmp_path)
    run_dir = tmp_path / "run"
    # checkpoint_10 is written right after the evaluation of step 10 was handed over; the
    # evaluation process takes seconds to start, so it is pending.
    _wait_for(run_dir / "checkpoint_10" / "training_state" / "sir_run_state.json", proc)
    helpers = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 20
    while not all(_gone(p) for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(p) for p in helpers), "the evaluation process outlived the killed run"
    for folder in run_dir.glob("checkpoint_*"):
        load_checkpoint(folder, device="cpu")
    state = json.loads((run_dir / "checkpoint_10" / "training_state" / "sir_run_state.json").read_text())
    assert state["pending_evals"] == [10]
    resumed = train(config(lift_demos, tmp_path, async_eval=True, resume=str(run_dir / "checkpoint_10")))
    assert history(run_dir) == history(waiting_run.run_dir)
    assert resumed.best_step == waiting_run.best_step


@pytest.mark.slow
def test_ctrl_c_with_an_evaluation_pending_ends_with_one_line(lift_demos, tmp_path):
    proc = _start(lift_demos, tmp_path)
    _wait_for(tmp_path / "run" / "checkpoint_10" / "training_state" / "sir_run_state.json", proc)
    helpers = _children(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines() == [f"interrupted: last checkpoint {tmp_path / 'run' / 'checkpoint_10'}"]
    deadline = time.monotonic() + 20
    while not all(_gone(p) for p in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(p) for p in helpers)


@pytest.mark.slow
def test_a_run_evaluating_on_a_ray_cluster_gives_the_waiting_runs_history(waiting_run, lift_demos, tmp_path,
                                                                          ray_cluster, fresh_evaluation_process):
    # (fresh_evaluation_process: one started before the cluster would lack its environment)
    on_ray = train(config(lift_demos, tmp_path, async_eval=True, eval_backend="ray", ray_address=ray_cluster,
                          eval_workers=2))
    assert history(on_ray.run_dir) == history(waiting_run.run_dir)
    assert on_ray.best_step == waiting_run.best_step


@pytest.mark.slow
def test_a_newer_snapshot_replaces_the_waiting_one_and_the_log_says_so(eval_tiny_act, tmp_path):
    from sir.eval.background import BackgroundEvaluator
    from sir.policies.checkpoint import save_checkpoint
    from sir.training.evaluation import Evaluations
    from sir.training.run_folder import RunFolder

    policy, pre, post, spec = eval_tiny_act
    lines: list[str] = []
    run = RunFolder(tmp_path)
    evals = Evaluations(run, {"episodes": 1, "max_steps": 3, "seed": 0, "workers": 1}, "cpu", None, None, lines.append)
    evals.evaluator = BackgroundEvaluator()
    try:
        folders = {step: save_checkpoint(run.snapshot(step), policy, pre, post, spec, {"step": step})
                   for step in (10, 20, 30)}
        for step in (10, 20, 30):
            evals.submit(step, folders[step])
        assert lines == ["Evaluation of step 20 skipped: step 30 replaces it while step 10 is still being evaluated."]
        assert sorted(evals.unrecorded) == [10, 30] and not folders[20].exists()
        assert [job.step for job in evals.evaluator.pending] == [10, 30]
        outcomes = evals.evaluator.wait()
        assert [o.step for o in outcomes] == [10, 30] and all(o.error is None for o in outcomes)
        assert [o.metrics["episodes"] for o in outcomes] == [1, 1]
    finally:
        evals.evaluator.close()
