import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from sir.envs.factory import action_dim, make_env, observation_to_features, reset_env
from sir.eval.rollout import to_policy_batch
from sir.policies.checkpoint import load_checkpoint
from sir.training.train_policy import main as train


@pytest.fixture(scope="module")
def tiny_run(lift_demos, tmp_path_factory):
    root, repo_id = lift_demos
    ckpt_dir = tmp_path_factory.mktemp("checkpoints")
    run_dir = train([
        "--repo-ids", repo_id, "--root", str(root), "--policy", "act", "--preset", "tiny",
        "--training-steps", "30", "--eval-freq", "15", "--eval-episodes", "2", "--max-steps", "25",
        "--save-freq", "10", "--batch-size", "8", "--checkpoint-dir", str(ckpt_dir), "--log-freq", "5",
    ])
    return run_dir


@pytest.mark.slow
def test_tiny_run_writes_best_periodic_and_final_checkpoints(tiny_run):
    names = sorted(p.name for p in tiny_run.iterdir() if p.is_dir())
    assert names == ["best_model", "checkpoint_10", "checkpoint_20", "checkpoint_30", "final_model"]
    for name in names:
        ckpt = tiny_run / name
        for f in ("config.json", "model.safetensors", "sir_env.json", "sir_checkpoint.json",
                  "policy_preprocessor.json", "policy_postprocessor.json"):
            assert (ckpt / f).is_file(), f"{name} lacks {f}"
    info = json.loads((tiny_run / "final_model" / "sir_checkpoint.json").read_text())
    assert info["step"] == 30
    # The mean of the last --last-k (3) evaluations: both of this run's, which nothing chose.
    rates = [r["eval/success_rate"] for r in map(json.loads, (tiny_run / "metrics.jsonl").read_text().splitlines())
             if "eval/success_rate" in r]
    assert info["last_k"]["steps"] == [15, 30] and info["last_k"]["success_mean"] == pytest.approx(sum(rates) / 2)
    assert info["datasets"][0]["repo_id"] == "lift_demos"
    assert not [p for p in tiny_run.iterdir() if p.name.startswith(".")], "temporary folders left behind"


@pytest.mark.slow
def test_training_loss_goes_down_and_is_logged(tiny_run):
    records = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in records if "train/loss" in r]
    assert len(losses) >= 5
    assert losses[-1] < losses[0]
    evals = [r for r in records if "eval/success_rate" in r]
    assert [r["step"] for r in evals] == [15, 30]


@pytest.mark.slow
def test_reloaded_best_model_drives_the_env(tiny_run):
    policy, pre, post, spec, info = load_checkpoint(tiny_run / "best_model", device="cpu")
    assert info["step"] in (15, 30)
    env = make_env(spec)
    obs = reset_env(env, 123)
    policy.eval()
    with torch.no_grad():
        for _ in range(3):
            action = post(policy.select_action(pre(to_policy_batch(observation_to_features(obs, spec), spec.task))))
            action = action.squeeze(0).numpy()
            assert action.shape == (action_dim(env),)
            assert np.isfinite(action).all()
            obs, *_ = env.step(action)
    env.close()


@pytest.mark.slow
def test_existing_run_is_not_overwritten_without_flag(tiny_run, lift_demos, capsys):
    root, repo_id = lift_demos
    with pytest.raises(SystemExit) as exc:
        train(["--repo-ids", repo_id, "--root", str(root), "--preset", "tiny", "--training-steps", "1",
               "--checkpoint-dir", str(tiny_run.parent)])
    assert exc.value.code == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tiny_run / "best_model" / "model.safetensors").is_file()


def test_unknown_repo_id_exits_2_with_one_sentence_and_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sir.training.train_policy", "--repo-ids", "no_such_dataset", "--root", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "no_such_dataset" in proc.stderr and "not found" in proc.stderr


def test_impossible_flags_are_refused(lift_demos, tmp_path, capsys):
    root, repo_id = lift_demos
    with pytest.raises(SystemExit) as exc:
        train(["--repo-ids", repo_id, "--root", str(root), "--preset", "tiny", "--action-chunk-size", "5",
               "--n-action-steps", "8", "--checkpoint-dir", str(tmp_path)])
    assert exc.value.code == 2
    assert "--n-action-steps 8" in capsys.readouterr().err


@pytest.mark.slow
def test_a_batch_job_logs_plain_lines_to_stdout_and_no_progress_redraws(lift_demos, tmp_path):
    root, repo_id = lift_demos
    proc = subprocess.run(
        [sys.executable, "-m", "sir.training.train_policy", "--repo-ids", repo_id, "--root", str(root),
         "--policy", "act", "--preset", "tiny", "--batch-size", "8", "--training-steps", "6", "--log-freq", "2",
         "--eval-freq", "0", "--eval-episodes", "1", "--max-steps", "5", "--checkpoint-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    steps = [line.split(" | ")[0] for line in proc.stdout.splitlines() if line.startswith("step ")]
    assert steps == ["step 1/6", "step 2/6", "step 4/6", "step 6/6"]
    assert all(" | loss " in line and " steps/s | ETA " in line
               for line in proc.stdout.splitlines() if line.startswith("step "))
    assert "Evaluation Results (step 6)" in proc.stdout
    assert "\r" not in proc.stderr and "Training:" not in proc.stderr


def test_in_a_terminal_progress_is_a_bar_not_lines(capsys):
    from sir.training.tracking import TrainingProgress

    progress = TrainingProgress(0, 4, interactive=True)
    for step in range(1, 5):
        progress.step(step, loss=1.0 / step, lr=1e-4, grad_norm=0.5, log=True)
    progress.close()
    out, err = capsys.readouterr()
    assert "step " not in out
    assert "Training" in err and "4/4" in err


@pytest.mark.slow
def test_a_run_without_rollouts_logs_the_held_out_loss_and_keeps_its_lowest_as_best_model(lift_demos, tmp_path):
    from sir.training import TrainConfig
    from sir.training import train as train_run

    root, repo_id = lift_demos  # 6 episodes: the last 2 held out
    cfg = TrainConfig(repo_ids=[repo_id], root=str(root), policy="act", preset="tiny", batch_size=8,
                      training_steps=12, eval_freq=4, save_freq=100, no_eval=True, val_episodes=2,
                      checkpoint_dir=str(tmp_path), run_name="run", device="cpu")
    run = train_run(cfg)
    records = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    val = {r["step"]: r["val/loss"] for r in records if "val/loss" in r}
    assert sorted(val) == [4, 8, 12] and not [r for r in records if "eval/success_rate" in r]
    assert run.datasets[0]["episodes"] == [0, 1, 2, 3]  # the held-out episodes are never trained on
    lowest = min(val, key=val.get)
    info = json.loads((run.best_model / "sir_checkpoint.json").read_text())
    assert run.best_step == info["step"] == info["selection"]["chosen_step"] == lowest
    assert info["selection"]["val_loss"] == pytest.approx(val[lowest]) and "validation loss" in info["selection"][
        "method"]
    # The same run without validation trains the same weights: the loss draws nothing from training's RNG.
    plain = train_run(TrainConfig(**{**cfg.__dict__, "val_episodes": None, "run_name": "plain", "episodes":
                                     f"{repo_id}=0:4", "policy_overrides": {}}))
    trained = load_checkpoint(run.final_model, device="cpu")[0].state_dict()
    for key, value in load_checkpoint(plain.final_model, device="cpu")[0].state_dict().items():
        assert torch.equal(value, trained[key]), key
