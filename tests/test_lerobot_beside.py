"""benchmarks/lerobot_train_beside.py end to end on a tiny dataset: lerobot-train trains
sir's policy configuration on the same data for a few seconds, and sir's evaluation scores
its last checkpoint."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "lerobot_train_beside.py"


@pytest.mark.slow
def test_lerobot_train_runs_sirs_configuration_and_its_checkpoint_is_scored(lift_demos, tmp_path):
    spec = importlib.util.spec_from_file_location("lerobot_train_beside", SCRIPT)
    beside = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(beside)
    root, repo_id = lift_demos
    out = tmp_path / "out"
    result = beside.main(["--task", "Lift", "--root", str(root), "--repo-id", repo_id, "--minutes", "0.1",
                          "--save-freq", "5", "--sir-steps", "10", "--eval-episodes", "1",
                          "--train-args", "--preset tiny --batch-size 4 --lr-schedule cosine --training-steps 40",
                          "--out", str(out)])
    assert result["sir"]["steps_per_s"] > 0 and result["lerobot"]["steps_per_s"] > 0
    assert result["lerobot"]["steps"] >= 5 and result["lerobot"]["episodes"] == 1
    # lerobot trained the configuration sir builds, env-state normalization included.
    saved = json.loads((out / "lerobot_run" / "checkpoints" / "last" / "pretrained_model" / "config.json").read_text())
    assert saved["dim_model"] == 32 and saved["normalization_mapping"]["ENV"] == "MEAN_STD"
    # ... with sir's learning-rate schedule: the cosine over the run's training steps.
    trained = json.loads((out / "lerobot_run" / "checkpoints" / "last" / "pretrained_model" /
                          "train_config.json").read_text())
    assert trained["scheduler"]["type"] == "cosine_decay_with_warmup"
    assert (trained["scheduler"]["num_decay_steps"], trained["scheduler"]["num_warmup_steps"]) == (40, 4)
    assert trained["use_policy_training_preset"] is False
    assert len([p for p in (out / "lerobot_run" / "checkpoints").iterdir() if p.name != "last"]) <= 2
    assert json.loads((out / "beside.json").read_text())["lerobot"]["success_rate"] == result["lerobot"]["success_rate"]
