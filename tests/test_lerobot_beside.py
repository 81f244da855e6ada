"""benchmarks/lerobot_train_beside.py end to end on a tiny dataset: each trainer's speed is
probed, each gets a schedule of the steps it makes in the same minutes, both train to its end,
and sir's evaluation scores sir's best model and lerobot-train's last checkpoint on the same
episodes."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "lerobot_train_beside.py"


def load_script():
    spec = importlib.util.spec_from_file_location("lerobot_train_beside", SCRIPT)
    beside = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(beside)
    return beside


def test_each_trainers_schedule_is_the_steps_it_makes_in_the_time_spread_as_the_recipes():
    beside = load_script()
    assert beside.sized(8.23, 60 * 21, 5) == 10365 and beside.sized(4.19, 60 * 21, 5) == 5275
    assert beside.sized(0.01, 10, 5) == 5  # at least a step a part
    recipe = {"training_steps": 10000, "eval_freq": 2000, "save_freq": 2000, "lr_schedule": "cosine"}
    assert beside.evaluations(recipe) == 5
    assert beside.with_schedule(recipe, 5275 - 5275 % 5, 5) == {
        "training_steps": 5275, "eval_freq": 1055, "save_freq": 1055, "log_freq": 1055, "lr_schedule": "cosine"}
    # A probe's rate leaves its start out: between its first and last checkpoints.
    assert beside.lerobot_speed({"checkpoints": [150, 300], "times_s": [40.0, 70.0]})["steps_per_s"] == 5.0
    assert beside.lerobot_speed({"checkpoints": [300], "times_s": [60.0]})["steps_per_s"] == 5.0



@pytest.mark.parametrize("task, train_args", [("NutAssemblySquare", ""), ("PickPlaceCan", "--ema-decay 0.999")])
def test_a_weight_average_lerobot_train_lacks_is_refused_in_one_sentence_before_anything_is_written(
        tmp_path, capsys, task, train_args):
    beside = load_script()
    out = tmp_path / "beside"
    with pytest.raises(SystemExit) as exit_info:
        beside.main(["--task", task, "--root", str(tmp_path / "no_data"), "--train-args", train_args,
                     "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert "--ema-decay" in err and "PickPlaceCan" in err and "NutAssemblySquare, " not in err, err
    assert not out.exists()


@pytest.mark.slow
def test_both_trainers_run_their_sized_schedules_to_the_end_and_both_are_scored_on_the_same_episodes(
        lift_demos, tmp_path):
    beside = load_script()
    root, repo_id = lift_demos
    out = tmp_path / "out"
    result = beside.main(["--task", "Lift", "--root", str(root), "--repo-id", repo_id, "--minutes", "0.05",
                          "--probe-steps", "10", "--eval-episodes", "1",
                          "--train-args", "--preset tiny --batch-size 4 --lr-schedule cosine --max-steps 10",
                          "--out", str(out)])
    sir, lerobot = result["sir"], result["lerobot"]
    for r in (sir, lerobot):  # each schedule is its probe's rate times the minutes, run to its end
        assert r["steps"] == r["settings"]["training_steps"] == beside.sized(r["probe"]["steps_per_s"], 3, 4)
        assert r["steps_per_s"] > 0 and r["episodes"] == 1 and r["eval_seed"] == 1_000_000
    assert lerobot["exit_code"] == 0 and lerobot["checkpoints"][-1] == lerobot["steps"]
    assert sir["best_step"] is not None and Path(sir["model"]).name == "best_model"
    # lerobot trained the configuration sir builds, env-state normalization included ...
    saved = out / "lerobot_run" / "checkpoints" / "last" / "pretrained_model"
    config = json.loads((saved / "config.json").read_text())
    assert config["dim_model"] == 32 and config["normalization_mapping"]["ENV"] == "MEAN_STD"
    # ... with sir's learning-rate schedule: the cosine over its own steps.
    trained = json.loads((saved / "train_config.json").read_text())
    assert trained["scheduler"]["type"] == "cosine_decay_with_warmup"
    assert trained["scheduler"]["num_decay_steps"] == lerobot["steps"] == trained["steps"]
    assert trained["use_policy_training_preset"] is False
    assert len([p for p in (out / "lerobot_run" / "checkpoints").iterdir() if p.name != "last"]) <= 2
    written = json.loads((out / "beside.json").read_text())
    assert written["lerobot"]["success_rate"] == lerobot["success_rate"]
    assert written["command"].startswith("python benchmarks/lerobot_train_beside.py --task Lift")
