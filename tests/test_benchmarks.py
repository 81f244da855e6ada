"""The benchmarks' own arithmetic, and the data-path benchmark at a tiny size: what the pages'
figures are computed from (docs/performance.md, docs/results.md)."""

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_limit_steps_the_evaluations_own_episodes_dealt_over_its_processes():
    throughput = load("eval_throughput")
    episodes = [{"seed": 100000 + i, "length": 40 - i, "success": i % 2 == 0} for i in range(5)]
    shares = throughput.deal(episodes, 2)
    assert shares == [[(100000, 40), (100002, 38), (100004, 36)], [(100001, 39), (100003, 37)]]
    assert sorted(p for share in shares for p in share) == throughput.deal(episodes, 1)[0]


def test_a_one_shot_evaluation_and_its_limit_are_on_the_same_clock():
    throughput = load("eval_throughput")
    # The CLI's record: 200 steps in 4 s of rollouts (50 steps/s), its workers up after 2 s.
    cli = {"env_steps": 200, "env_steps_per_s": 50.0, "startup_s": 2.0}
    rates = throughput.one_shot_rates(cli, (5.0, 3.0))  # the limit: 5 s from before its start, 3 s from up
    assert rates["with start"] == (pytest.approx(200 / 6.0), pytest.approx(40.0))
    assert rates["from up"] == (50.0, pytest.approx(200 / 3.0))


def test_benchmarks_sharing_a_root_reuse_demos_only_of_the_size_they_ask_for(tmp_path, monkeypatch):
    # eval_throughput.py's random-weights part records 2 demos, async_eval.py trains on 20,
    # both under the docs' --root /tmp/benchroot: one name for both trained on 2 demos.
    monkeypatch.setattr(sys, "path", list(sys.path))  # async_eval puts benchmarks/ on it
    throughput, async_eval = load("eval_throughput"), load("async_eval")
    assert throughput.demo_repo_id(2) != throughput.demo_repo_id(20)
    assert async_eval.throughput.demo_repo_id(20) == throughput.demo_repo_id(20)  # the trained model's demos
    (tmp_path / throughput.demo_repo_id(20)).mkdir()  # there already: not recorded again
    assert throughput.recorded_demos(tmp_path, 20) == "bench_lift20"


def test_the_data_path_benchmark_draws_both_trainers_batches(lift_demos, tmp_path, monkeypatch):
    root, repo_id = lift_demos
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts benchmarks/ on it
    data_path = load("data_path")
    out = tmp_path / "data_path.json"
    result = data_path.main(["--task", "Lift", "--root", str(root), "--repo-id", repo_id, "--seconds", "0.2",
                             "--rounds", "1", "--train-args", "--preset tiny --batch-size 4", "--out", str(out)])
    assert set(result["batches_per_s"]) == {"lerobot-train", "sir"} and min(result["batches_per_s"].values()) > 0
    assert result["batch_size"] == 4 and result["action_window"] == 10  # the tiny preset's chunk
    assert result["command"].startswith("python benchmarks/data_path.py --task Lift")
    assert out.is_file()


def test_the_env_costs_benchmark_times_builds_resets_steps_and_each_rendering():
    costs = load("env_costs").main(["--resets", "1", "--steps", "2", "--frames", "1", "--size", "32",
                                    "--small-size", "16"])
    assert {"first env built in the process", "hard reset (hard_reset=True)", "soft reset (sir's)",
            "frame, sir's video renderer, 32 px", "frame, default, 16 px"} <= set(costs)
    assert all(wall > 0 for _, wall in costs.values())
