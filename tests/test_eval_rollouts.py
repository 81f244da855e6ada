"""Rollouts across worker processes: fixed seeds, batched policies, per-task metrics, faults."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import torch

from sir.envs.factory import reset_env
from sir.envs.spec import EnvSpec
from sir.eval import pool as pools
from sir.eval.rollout import DEFAULT_EVAL_SEED, EvalTask, evaluate_policy, evaluate_tasks
from sir.eval.worker import ENV_BUILD_SEED, EnvKey, SlotEnvs, build_env

SPEC = EnvSpec(env_name="Lift")
# The scripted policy below lifts the cube in 30 or 33 steps depending on the start; a
# 31-step limit makes some episodes succeed and others run out, so waves end unevenly.
MAX_STEPS = 31
# Two envs a policy batch (the default on 2 cores would be one for 6 episodes).
WIDTH = 2


def identity(x):
    return x


class ScriptedLiftPolicy(torch.nn.Module):
    """Lifts the cube from raw Lift observations (no normalisation: identity processors) the
    way the scripted expert does, through an ACT-like queue of batched actions refilled every
    ``n_action_steps`` calls. Elementwise maths only: a row's action never depends on the
    rows around it, so results can be compared exactly across batch layouts."""

    def __init__(self, n_action_steps: int = 3):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(12.0), requires_grad=False)
        self.n_action_steps = n_action_steps
        self.reset()

    def reset(self):
        self._queue = deque()

    def select_action(self, batch):
        if not self._queue:
            self._queue.extend([self._act(batch)] * self.n_action_steps)
        return self._queue.popleft()

    def _act(self, batch):
        state, env_state = batch["observation.state"], batch["observation.environment_state"]
        eef, cube = state[:, :3], env_state[:, :3]
        opening = state[:, 7] - state[:, 8]
        d = cube - eef
        horiz = (d[:, 0] ** 2 + d[:, 1] ** 2).sqrt()
        dist = (horiz ** 2 + d[:, 2] ** 2).sqrt()
        hover = cube + torch.tensor([0.0, 0.0, 0.06])
        arm = (self.gain * (hover - eef)).clamp(-1, 1)
        grip = -torch.ones(len(eef))
        descend = horiz <= 0.012
        arm[descend] = (self.gain * d).clamp(-1, 1)[descend]
        close = descend & (d[:, 2] > -0.012)
        arm[close] = 0.0
        grip[close] = 1.0
        lift = (opening < 0.06) & (dist < 0.02)
        arm[lift] = torch.tensor([0.0, 0.0, 1.0])
        grip[lift] = 1.0
        return torch.cat([arm, torch.zeros(len(eef), 3), grip[:, None]], dim=1)


class NaNWhereCubeStarts(torch.nn.Module):
    """Answers NaN for the rows whose cube still lies where one chosen episode's cube starts."""

    def __init__(self, inner, cube_xy):
        super().__init__()
        self.inner = inner
        self.cube_xy = torch.as_tensor(cube_xy, dtype=torch.float32)

    def reset(self):
        self.inner.reset()

    def select_action(self, batch):
        action = self.inner.select_action(batch).clone()
        here = (batch["observation.environment_state"][:, :2] - self.cube_xy).abs().amax(dim=1) < 1e-6
        action[here] = float("nan")
        return action


class _KillOnce:
    """One trigger for every lane's copy of the policy (deepcopy hands back the same one)."""

    def __init__(self, pid, at_call):
        self.pid, self.at_call, self.calls = pid, at_call, 0

    def __deepcopy__(self, memo):
        return self

    def tick(self):
        self.calls += 1
        if self.calls == self.at_call:
            os.kill(self.pid, signal.SIGKILL)


class KillWorkerAt(torch.nn.Module):
    def __init__(self, inner, pid, at_call):
        super().__init__()
        self.inner = inner
        self.trigger = _KillOnce(pid, at_call)

    def reset(self):
        self.inner.reset()

    def select_action(self, batch):
        self.trigger.tick()
        return self.inner.select_action(batch)


def scripted_run(policy=None, episodes=6, workers=2, **kwargs):
    return evaluate_policy(policy or ScriptedLiftPolicy(), identity, identity, SPEC, episodes, MAX_STEPS,
                           workers=workers, batch_width=WIDTH, **kwargs)


def outcomes(metrics):
    return [(e["episode"], e["seed"], e["success"], e["length"], e["reward"], e["failure"])
            for e in metrics["per_episode"]]


@pytest.fixture(scope="module")
def in_process_run():
    return scripted_run(workers=1)


@pytest.mark.slow
def test_in_process_run_scores_the_scripted_policy(in_process_run):
    m = in_process_run
    assert [e["seed"] for e in m["per_episode"]] == [DEFAULT_EVAL_SEED + i for i in range(6)]
    lengths = {e["length"] for e in m["per_episode"]}
    assert 0 < m["success_rate"] < 1, "the test needs both outcomes to mean anything"
    assert all(e["length"] == MAX_STEPS for e in m["per_episode"] if not e["success"])
    assert len(lengths) > 1
    assert m["avg_length"] == pytest.approx(np.mean([e["length"] for e in m["per_episode"]]))
    assert m["env_steps"] == sum(e["length"] for e in m["per_episode"])
    low, high = m["success_ci95"]
    assert low < m["success_rate"] < high
    assert m["env_steps_per_s"] > 0 and m["wall_time_s"] > 0
    assert m["failures"] == {} and m["workers"] == 1


@pytest.mark.slow
def test_parallel_run_matches_in_process_run_episode_for_episode(in_process_run):
    parallel = scripted_run(workers=2)
    assert parallel["workers"] == 2
    assert outcomes(parallel) == outcomes(in_process_run)


@pytest.mark.slow
def test_each_episode_is_driven_by_its_own_observations_only(in_process_run):
    # One episode a batch against two a batch: with rows ending at different steps and the
    # queue refilled for the whole batch, a leak between rows would show.
    alone = evaluate_tasks(ScriptedLiftPolicy(), identity, identity, [("Lift", SPEC, 6)], MAX_STEPS,
                           workers=1, batch_width=1)
    assert in_process_run["per_episode"][0]["length"] != in_process_run["per_episode"][1]["length"] or \
        in_process_run["per_episode"][2]["length"] != in_process_run["per_episode"][3]["length"]
    assert outcomes(alone) == outcomes(in_process_run)


@pytest.mark.slow
def test_act_gives_identical_episodes_in_process_and_in_workers(eval_tiny_act):
    policy, pre, post, spec = eval_tiny_act
    policy.train()
    runs = [evaluate_policy(policy, pre, post, spec, 4, 12, workers=w, batch_width=2) for w in (1, 2)]
    assert outcomes(runs[0]) == outcomes(runs[1])
    assert all(e["length"] == 12 for e in runs[0]["per_episode"])
    assert policy.training, "evaluation must hand the policy back in the mode it found it"


@pytest.mark.slow
def test_evaluation_seeds_fix_initial_states_and_move_with_the_seed(in_process_run):
    moved = scripted_run(workers=2, episodes=3, seed=DEFAULT_EVAL_SEED + 3)
    # Episode i of the moved set starts where episode i + 3 of the first set started.
    shifted = [(s, ok, n, r, f) for _, s, ok, n, r, f in outcomes(moved)]
    assert shifted == [(s, ok, n, r, f) for _, s, ok, n, r, f in outcomes(in_process_run)[3:]]


@pytest.mark.slow
def test_several_tasks_report_metrics_per_task_and_overall(in_process_run):
    short = EnvSpec(env_name="Lift", horizon=20)
    m = evaluate_tasks(ScriptedLiftPolicy(), identity, identity,
                       [EvalTask("lift", SPEC, 3, MAX_STEPS), ("lift_short", short, 2)], workers=2, batch_width=WIDTH)
    assert set(m["per_task"]) == {"lift", "lift_short"}
    assert m["episodes"] == 5
    assert m["per_task"]["lift"]["episodes"] == 3 and m["per_task"]["lift_short"]["episodes"] == 2
    lift = [(s, ok, n, r, f) for _, s, ok, n, r, f in outcomes(m["per_task"]["lift"])]
    assert lift == [(s, ok, n, r, f) for _, s, ok, n, r, f in outcomes(in_process_run)[:3]]
    # The short task's horizon (its spec's) ends every episode before the cube is up.
    assert m["per_task"]["lift_short"]["success_rate"] == 0.0
    assert all(e["length"] == 20 for e in m["per_task"]["lift_short"]["per_episode"])
    assert [e["seed"] for e in m["per_task"]["lift_short"]["per_episode"]] == [DEFAULT_EVAL_SEED + i for i in range(2)]
    assert [e["task"] for e in m["per_episode"]] == ["lift"] * 3 + ["lift_short"] * 2
    n_success = sum(t["success_rate"] * t["episodes"] for t in m["per_task"].values())
    assert m["success_rate"] == pytest.approx(n_success / 5)


@pytest.mark.slow
def test_nan_action_fails_only_its_own_episode(in_process_run):
    env = build_env(EnvKey.make(SPEC, None, 64, ENV_BUILD_SEED))  # as the workers build theirs
    cube_xy = reset_env(env, DEFAULT_EVAL_SEED + 2)["cube_pos"][:2]
    env.close()
    m = scripted_run(NaNWhereCubeStarts(ScriptedLiftPolicy(), cube_xy), workers=2)
    bad = m["per_episode"][2]
    assert (bad["success"], bad["length"], bad["failure"]) == (False, 0, "non-finite action")
    assert m["failures"] == {"non-finite action": 1}
    clean = outcomes(in_process_run)
    assert [o for i, o in enumerate(outcomes(m)) if i != 2] == [o for i, o in enumerate(clean) if i != 2]


@pytest.mark.slow
def test_killed_worker_is_replaced_and_its_episodes_rerun(in_process_run):
    workers = pools.shared_workers(2)
    victim = workers.pids[0]
    m = scripted_run(KillWorkerAt(ScriptedLiftPolicy(), victim, at_call=12), workers=2)
    assert m["worker_restarts"] == 1
    assert victim not in workers.pids and all(pid is not None for pid in workers.pids)
    assert outcomes(m) == outcomes(in_process_run)


@pytest.mark.slow
def test_unstable_simulation_fails_the_episode_and_the_slot_recovers():
    envs = SlotEnvs()
    key = EnvKey.make(SPEC, None, 64, ENV_BUILD_SEED)
    try:
        first = envs.start(0, key, DEFAULT_EVAL_SEED, 10, False)
        assert first.failure is None and not first.done
        env = envs.env_of(0)
        env.sim.data.qvel[:] = np.nan
        report = envs.step(0, np.zeros(7))
        assert report.done and not report.success
        assert report.failure.startswith("unstable simulation")
        again = envs.start(0, key, DEFAULT_EVAL_SEED, 10, False)
        assert again.failure is None
        np.testing.assert_array_equal(again.features["observation.state"], first.features["observation.state"])
    finally:
        envs.close()


@pytest.mark.slow
def test_evaluation_writes_one_labelled_grid_video(tmp_path):
    import imageio.v2 as imageio

    m = evaluate_policy(ScriptedLiftPolicy(), identity, identity, SPEC, 2, 8, workers=2, batch_width=1,
                        video_path=tmp_path / "eval.mp4", video_episodes=2, render_size=64)
    assert m["video"] == str(tmp_path / "eval.mp4")
    frames = imageio.mimread(m["video"])
    assert len(frames) == 9  # the reset and 8 steps
    assert frames[0].shape == (64, 128, 3)  # two 64-pixel tiles side by side
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


CTRL_C_SCRIPT = textwrap.dedent("""
    import sys, torch
    from sir.envs.spec import EnvSpec
    from sir.eval import pool as pools
    from sir.eval.rollout import evaluate_policy

    class Still(torch.nn.Module):
        def reset(self):
            pass

        def select_action(self, batch):
            if not getattr(self, "told", False):
                self.told = True
                print("PIDS", *pools.shared_workers(2).pids, flush=True)
            return torch.zeros(len(batch["task"]), 7)

    if __name__ == "__main__":
        evaluate_policy(Still(), lambda b: b, lambda a: a, EnvSpec(), 40, 400, workers=2)
        print("FINISHED", flush=True)
""")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.mark.slow
def test_ctrl_c_stops_every_worker(tmp_path):
    script = tmp_path / "ctrl_c.py"
    script.write_text(CTRL_C_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = ""
        deadline = time.monotonic() + 120
        while not line.startswith("PIDS") and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()
        pids = [int(p) for p in line.split()[1:]]
        assert len(pids) == 2
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(pid) for pid in pids), "worker processes outlived the interrupted evaluation"


def test_ctrl_c_stops_the_evaluation_even_when_its_keyboardinterrupt_is_swallowed():
    """Python swallows a KeyboardInterrupt raised inside a finalizer, and a policy may catch
    it; the evaluation must stop all the same, not run on for minutes."""

    class SwallowsCtrlC(torch.nn.Module):
        calls = 0

        def reset(self):
            pass

        def select_action(self, batch):
            self.calls += 1
            if self.calls == 3:
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(1)  # the handler runs here, and its exception dies below
                except KeyboardInterrupt:
                    pass
            return torch.zeros(len(batch["task"]), 7)

    policy = SwallowsCtrlC()
    with pytest.raises(KeyboardInterrupt):
        evaluate_policy(policy, identity, identity, EnvSpec(horizon=5), 2, 40, workers=1, batch_width=1)
    assert policy.calls == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_step_limit_above_the_recorded_horizon_is_honoured():
    """The spec's horizon is only the default limit: robosuite must not end the episode there."""

    class Still(torch.nn.Module):
        def reset(self):
            pass

        def select_action(self, batch):
            return torch.zeros(len(batch["task"]), 7)

    metrics = evaluate_policy(Still(), identity, identity, EnvSpec(horizon=5), 1, 9, workers=1, batch_width=1)
    assert [e["length"] for e in metrics["per_episode"]] == [9]


def test_a_worker_error_keeps_its_whole_message_and_a_user_error_reaches_the_caller_as_one():
    """Worker answers are typed: an exception travels as its type, message and traceback, so
    a message holding ': ' (as robosuite's and sir's do) reaches the user whole."""
    from sir.errors import UserError
    from sir.eval.worker import Release, Reply, Start, WorkerError, handle

    class Refuses(SlotEnvs):
        def start(self, slot, key, seed, max_steps, record):
            raise UserError(f"episode {seed}: the env refuses: for a reason")

    key = EnvKey.make(SPEC, None, 64, ENV_BUILD_SEED)
    replies = handle(Refuses(), [Release(), Start(3, 7, key, 11, 5, False)])
    assert len(replies) == 1 and isinstance(replies[0], Reply)
    slot, token, error = replies[0]
    assert (slot, token) == (3, 7) and isinstance(error, WorkerError)
    assert (error.user_error, error.kind, error.message) == (
        True, "UserError", "episode 11: the env refuses: for a reason")
    assert "Traceback" in error.traceback

    in_process = pools.shared_workers(1)
    real, in_process.envs = in_process.envs, Refuses()
    try:
        with pytest.raises(UserError) as caught:
            evaluate_policy(ScriptedLiftPolicy(), identity, identity, SPEC, 1, 5, workers=1)
        assert str(caught.value) == f"episode {DEFAULT_EVAL_SEED}: the env refuses: for a reason"
    finally:
        pools.discard(in_process)
        real.close()


# -- the Ray backend: the same protocol from actors on a cluster (a local one here) --------


@pytest.mark.slow
def test_ray_actors_give_the_in_process_episodes_and_replace_a_killed_one(in_process_run, ray_cluster):
    on_ray = scripted_run(workers=2, backend="ray", ray_address=ray_cluster)
    assert on_ray["workers"] == 2 and on_ray["worker_restarts"] == 0
    assert outcomes(on_ray) == outcomes(in_process_run)
    actors = pools.shared_workers(2, "ray", ray_cluster)
    assert actors.pids and os.getpid() not in actors.pids
    victim = actors.pids[0]
    killed = scripted_run(KillWorkerAt(ScriptedLiftPolicy(), victim, at_call=12), workers=2, backend="ray",
                          ray_address=ray_cluster)
    assert killed["worker_restarts"] == 1
    assert victim not in actors.pids
    assert outcomes(killed) == outcomes(in_process_run)


@pytest.mark.slow
def test_act_on_ray_gives_the_episodes_of_local_workers(eval_tiny_act, ray_cluster):
    policy, pre, post, spec = eval_tiny_act
    local, on_ray = (evaluate_policy(policy, pre, post, spec, 4, 12, workers=2, batch_width=2, backend=b,
                                     ray_address=ray_cluster) for b in ("local", "ray"))
    assert outcomes(on_ray) == outcomes(local)


@pytest.mark.parametrize("command", ["sir.eval.evaluate", "sir.training.train_policy"])
def test_the_ray_backend_without_a_reachable_cluster_is_refused_in_one_sentence(command, tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    args = (["--checkpoint", str(tmp_path)] if command == "sir.eval.evaluate"
            else ["--repo-ids", "anything", "--root", str(tmp_path), "--checkpoint-dir", str(tmp_path)])
    proc = subprocess.run([sys.executable, "-m", command, *args, "--eval-backend", "ray",
                           "--ray-address", f"127.0.0.1:{closed}"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: --eval-backend ray found no Ray cluster at --ray-address 127.0.0.1:{closed}; start one "
        "(`ray start --head`, see docs/evaluation.md) or pass the head's HOST:PORT."]
