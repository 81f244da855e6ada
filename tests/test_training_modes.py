"""Issue 6's training modes: accumulation, fine-tuning, LoRA, resume, run configs,
sequential stages, wandb offline, TensorBoard."""

import copy
import csv
import json

import numpy as np
import pytest
import torch

from sir.training.train_policy import main as train

TINY = ["--policy", "act", "--preset", "tiny", "--batch-size", "8", "--eval-episodes", "1", "--max-steps", "5",
        "--log-freq", "1"]


@pytest.fixture(scope="module")
def second_lift(tmp_path_factory):
    from sir.data.collect import main as collect

    root = tmp_path_factory.mktemp("second")
    collect(["--env", "Lift", "--episodes", "3", "--root", str(root), "--repo-id", "lift_more", "--seed", "500",
             "--noise", "0.3"])
    return root, "lift_more"


@pytest.fixture(scope="module")
def base_run(lift_demos, tmp_path_factory):
    root, repo_id = lift_demos
    out = tmp_path_factory.mktemp("base")
    return train(["--repo-ids", repo_id, "--root", str(root), *TINY, "--training-steps", "20",
                  "--eval-freq", "0", "--save-freq", "10", "--checkpoint-dir", str(out)])


def metrics_of(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_accumulated_update_equals_one_k_times_larger_batch(lift_demos):
    from accelerate import Accelerator
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.utils import dataset_to_policy_features
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    from sir.data import make_mixture
    from sir.data.mixture.config import DataConfig
    from sir.policies import build_config
    from sir.training.step import update

    root, repo_id = lift_demos
    mix = make_mixture(DataConfig(repo_ids=repo_id, root=root), verbose=False)
    feats = dataset_to_policy_features(mix.features)
    out = {k: f for k, f in feats.items() if f.type is FeatureType.ACTION}
    cfg = build_config("act", "tiny", {k: f for k, f in feats.items() if k not in out}, out, "cpu")
    cfg.use_vae, cfg.dropout = False, 0.0  # deterministic forward: the two updates must agree
    mix.fit_policy(cfg)
    torch.manual_seed(0)
    policy = make_policy(cfg, ds_meta=mix)
    pre, _ = make_pre_post_processors(cfg, dataset_stats=mix.stats)
    items = [mix[i] for i in range(0, 64, 8)]
    big = torch.utils.data.default_collate(items)
    halves = [torch.utils.data.default_collate(items[:4]), torch.utils.data.default_collate(items[4:])]
    accelerator = Accelerator(cpu=True)

    results = []
    for batches, k in ((iter([big]), 1), (iter(halves), 2)):
        p = copy.deepcopy(policy)
        opt = torch.optim.SGD(p.parameters(), lr=0.1)
        loss, _, _ = update(p, pre, batches, opt, accelerator, accum_steps=k)
        results.append((loss, torch.cat([q.detach().flatten() for q in p.parameters()])))
    (loss_big, w_big), (loss_acc, w_acc) = results
    assert loss_acc == pytest.approx(loss_big, rel=1e-5)
    before = torch.cat([q.detach().flatten() for q in policy.parameters()])
    assert not torch.allclose(w_big, before)
    torch.testing.assert_close(w_acc, w_big, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_accumulation_prints_effective_batch(lift_demos, tmp_path, capsys):
    root, repo_id = lift_demos
    train(["--repo-ids", repo_id, "--root", str(root), *TINY, "--training-steps", "2", "--eval-freq", "0",
           "--grad-accum-steps", "3", "--checkpoint-dir", str(tmp_path)])
    assert "effective 24" in capsys.readouterr().out


@pytest.mark.slow
def test_resume_continues_from_the_checkpoint_step_to_the_end(base_run):
    final_before = json.loads((base_run / "final_model" / "sir_checkpoint.json").read_text())
    assert final_before["step"] == 20
    assert (base_run / "checkpoint_10" / "training_state" / "optimizer_state.safetensors").is_file()
    train(["--resume", str(base_run / "checkpoint_10")])
    # Steps 11..20 are logged again by the resumed run, replacing the first run's records.
    steps = [r["step"] for r in metrics_of(base_run) if "train/loss" in r]
    assert steps == list(range(1, 21))
    assert json.loads((base_run / "final_model" / "sir_checkpoint.json").read_text())["step"] == 20
    assert not [p for p in base_run.iterdir() if p.name.startswith(".")]


def test_resume_from_a_folder_without_training_state_is_refused(base_run, capsys):
    with pytest.raises(SystemExit) as exc:
        train(["--resume", str(base_run / "final_model")])
    assert exc.value.code == 2
    assert "training_state" in capsys.readouterr().err


@pytest.mark.slow
def test_fine_tuning_merges_stats_and_takes_the_new_lr(base_run, lift_demos, second_lift, tmp_path):
    from sir.training.finetune import saved_stats

    root2, repo2 = second_lift
    run = train(["--repo-ids", repo2, "--root", str(root2), "--policy-path", str(base_run / "final_model"),
                 "--lr", "1e-4", "--batch-size", "8", "--training-steps", "3", "--eval-freq", "0",
                 "--eval-episodes", "1", "--max-steps", "5", "--log-freq", "1", "--checkpoint-dir", str(tmp_path)])
    assert metrics_of(run)[0]["train/lr"] == pytest.approx(1e-4)
    old = saved_stats(base_run / "final_model")["observation.state"]
    merged = saved_stats(run / "final_model")["observation.state"]
    from sir.data import make_mixture
    from sir.data.mixture.config import DataConfig

    new = make_mixture(DataConfig(repo_ids=repo2, root=root2), verbose=False).stats["observation.state"]
    n_old, n_new = float(np.ravel(old["count"])[0]), float(np.ravel(new["count"])[0])
    expected = (n_old * old["mean"] + n_new * np.asarray(new["mean"])) / (n_old + n_new)
    np.testing.assert_allclose(merged["mean"], expected, rtol=1e-4)
    assert json.loads((run / "final_model" / "sir_checkpoint.json").read_text())["datasets"][0]["repo_id"] == repo2


def test_fine_tuning_refuses_data_the_model_was_not_built_for(base_run, tmp_path, capsys):
    from sir.data.record.synthetic import make_synthetic_dataset

    root = tmp_path / "data"
    make_synthetic_dataset(root, "other", [10, 10], state_dim=4, action_dim=7)
    with pytest.raises(SystemExit) as exc:
        train(["--repo-ids", "other", "--root", str(root), "--policy-path", str(base_run / "final_model"),
               "--training-steps", "1", "--checkpoint-dir", str(tmp_path / "ck")])
    assert exc.value.code == 2
    assert "observation.state" in capsys.readouterr().err


@pytest.mark.slow
def test_lora_trains_only_the_adapters_and_exports_a_merged_model(base_run, lift_demos, tmp_path, capsys):
    from safetensors.torch import load_file

    root, repo_id = lift_demos
    run = train(["--repo-ids", repo_id, "--root", str(root), "--policy-path", str(base_run / "final_model"),
                 "--lora-rank", "4", "--lr", "1e-2", "--batch-size", "8", "--training-steps", "5",
                 "--eval-freq", "0", "--eval-episodes", "1", "--max-steps", "5", "--checkpoint-dir", str(tmp_path)])
    assert "trainable" in capsys.readouterr().out
    assert (run / "final_model" / "adapter" / "adapter_config.json").is_file()
    base = load_file(base_run / "final_model" / "model.safetensors")
    tuned = load_file(run / "final_model" / "model.safetensors")
    assert set(base) == set(tuned), "the exported model is a plain lerobot model with the same weights"
    changed = {k for k in base if not torch.equal(base[k], tuned[k])}
    assert changed, "the merged adapters changed some weights"
    # Adapters sit on linear layers only: everything else is frozen and must be untouched.
    assert all(k.endswith("weight") for k in changed)
    assert not any("norm" in k or k.endswith("bias") for k in changed)


def test_lora_without_a_base_model_is_refused(lift_demos, tmp_path, capsys):
    root, repo_id = lift_demos
    with pytest.raises(SystemExit) as exc:
        train(["--repo-ids", repo_id, "--root", str(root), *TINY, "--lora-rank", "4", "--training-steps", "1",
               "--checkpoint-dir", str(tmp_path)])
    assert exc.value.code == 2
    assert "--policy-path" in capsys.readouterr().err


@pytest.mark.slow
def test_config_file_supplies_flags_and_train_config_reruns_the_same(lift_demos, tmp_path):
    root, repo_id = lift_demos
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"repo_ids: {repo_id}\nroot: {root}\npreset: tiny\nbatch_size: 4\ntraining_steps: 3\n"
                   f"eval_freq: 0\neval_episodes: 1\nmax_steps: 5\ncheckpoint_dir: {tmp_path / 'ck'}\n")
    run = train(["--config", str(cfg), "--batch-size", "8"])  # the command line wins
    first = json.loads((run / "train_config.json").read_text())
    assert first["batch_size"] == 8 and first["training_steps"] == 3 and first["preset"] == "tiny"
    again = train(["--config", str(run / "train_config.json"), "--overwrite"])
    second = json.loads((again / "train_config.json").read_text())
    assert again == run
    assert {k: v for k, v in second.items() if k != "_resolved"} == {k: v for k, v in first.items() if k != "_resolved"}


def test_config_file_with_an_unknown_flag_is_refused(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("repo_ids: a\nbatch_sise: 4\n")
    with pytest.raises(SystemExit) as exc:
        train(["--config", str(cfg)])
    assert exc.value.code == 2
    assert "batch_sise" in capsys.readouterr().err


@pytest.mark.slow
def test_sequential_trains_a_stage_per_dataset_and_writes_the_forgetting_matrix(lift_demos, second_lift, tmp_path):
    import shutil

    root, repo_id = lift_demos
    root2, repo2 = second_lift
    shutil.copytree(root2 / repo2, root / repo2, dirs_exist_ok=True)
    base = train(["--repo-ids", f"{repo_id},{repo2}", "--root", str(root), *TINY, "--sequential",
                  "--steps-per-stage", "4", "--eval-freq", "0", "--checkpoint-dir", str(tmp_path)])
    stage1, stage2 = base / f"stage_1_{repo_id}", base / f"stage_2_{repo2}"
    assert (stage1 / "final_model" / "config.json").is_file()
    assert (stage2 / "final_model" / "config.json").is_file()
    assert json.loads((stage2 / "train_config.json").read_text())["policy_path"] == str(stage1 / "final_model")
    with (base / "forgetting_matrix.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["stage", repo_id, repo2]
    assert rows[1][2] == "" and rows[2][1] != "" and rows[2][2] != ""
    assert (base / "forgetting_matrix.png").stat().st_size > 0


@pytest.mark.slow
def test_wandb_logs_offline_into_the_run_dir(lift_demos, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    root, repo_id = lift_demos
    run = train(["--repo-ids", repo_id, "--root", str(root), *TINY, "--training-steps", "2", "--eval-freq", "0",
                 "--use-wandb", "--checkpoint-dir", str(tmp_path)])
    assert list((run / "wandb").glob("offline-run-*"))


@pytest.mark.slow
def test_tensorboard_holds_the_runs_scalars_and_evaluation_videos(lift_demos, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root, repo_id = lift_demos
    run = train(["--repo-ids", repo_id, "--root", str(root), *TINY, "--training-steps", "4", "--eval-freq", "2",
                 "--save-freq", "2", "--save-video", "--video-episodes", "1", "--report-to", "tensorboard",
                 "--checkpoint-dir", str(tmp_path)])

    def check_events():
        events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
        events.Reload()
        logged: dict[str, dict[int, float]] = {}
        for record in metrics_of(run):
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    logged.setdefault(key, {})[record["step"]] = value
        assert {"train/loss", "train/lr", "eval/success_rate", "eval/avg_length"} <= set(logged)
        assert set(events.Tags()["scalars"]) == set(logged)  # the scalars wandb gets, every one
        for key, by_step in logged.items():
            got = [(e.step, e.value) for e in events.Scalars(key)]
            assert [step for step, _ in got] == sorted(by_step), key  # each step once
            assert all(value == pytest.approx(by_step[step]) for step, value in got), key
        videos = events.Images("eval/video")
        assert [v.step for v in videos] == [2, 4]
        assert videos[0].encoded_image_string[:4] == b"GIF8" and 0 < max(videos[0].width, videos[0].height) <= 256

    check_events()
    assert not (run / "wandb").exists()
    # Resumed at step 2: what the first process logged after it is replaced, not doubled.
    first_loss = {r["step"]: r["train/loss"] for r in metrics_of(run) if "train/loss" in r}
    train(["--resume", str(run / "checkpoint_2")])
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 2
    check_events()
    assert {r["step"] for r in metrics_of(run) if "train/loss" in r} == set(first_loss)


def test_use_wandb_contradicting_report_to_is_refused(lift_demos, tmp_path, capsys):
    root, repo_id = lift_demos
    with pytest.raises(SystemExit) as exc:
        train(["--repo-ids", repo_id, "--root", str(root), *TINY, "--use-wandb", "--report-to", "tensorboard",
               "--checkpoint-dir", str(tmp_path)])
    assert exc.value.code == 2 and "--report-to tensorboard" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_two_cpu_processes_train_together_and_only_the_main_one_writes(lift_demos, tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root, repo_id = lift_demos
    torchrun = Path(sys.executable).with_name("torchrun")
    assert torchrun.exists() or shutil.which("torchrun")
    proc = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "-m", "sir.training.train_policy", "--repo-ids", repo_id,
         "--root", str(root), *TINY, "--training-steps", "4", "--eval-freq", "0", "--device", "cpu",
         "--checkpoint-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "x 2 processes" in proc.stdout
    assert "effective 16" in proc.stdout  # batch 8 on each of 2 processes
    assert proc.stdout.count("Training finished") == 1
    run = tmp_path / f"act_{repo_id}"
    assert json.loads((run / "final_model" / "sir_checkpoint.json").read_text())["step"] == 4


@pytest.mark.slow
def test_evaluation_episodes_default_to_the_recorded_horizon(lift_demos, tmp_path):
    from sir.envs.spec import EnvSpec

    root, repo_id = lift_demos
    horizon = EnvSpec.load(root / repo_id).horizon
    run = train(["--repo-ids", repo_id, "--root", str(root), "--policy", "act", "--preset", "tiny", "--batch-size", "8",
                 "--training-steps", "2", "--eval-freq", "0", "--eval-episodes", "1",
                 "--checkpoint-dir", str(tmp_path)])
    info = json.loads((run / "final_model" / "sir_checkpoint.json").read_text())
    # Two training steps cannot lift the cube, so the episode runs to its limit.
    assert info["metrics"]["success_rate"] == 0.0
    assert info["metrics"]["avg_length"] == horizon


def test_merged_stats_equal_the_stats_of_both_datasets_together():
    from sir.training.finetune import merge_stats

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, (40, 3)), rng.normal(2, 3, (120, 3))

    def stats(x):
        return {"observation.state": {"mean": x.mean(0), "std": x.std(0), "min": x.min(0), "max": x.max(0),
                                      "count": np.array([len(x)])}}

    merged = merge_stats(stats(a), stats(b))["observation.state"]
    both = np.concatenate([a, b])
    np.testing.assert_allclose(merged["mean"], both.mean(0))
    np.testing.assert_allclose(merged["std"], both.std(0))
    np.testing.assert_array_equal(merged["min"], both.min(0))
    np.testing.assert_array_equal(merged["max"], both.max(0))
    assert int(merged["count"][0]) == 160
    # A checkpoint saved without counts weighs both sides equally.
    old = stats(a)
    del old["observation.state"]["count"]
    np.testing.assert_allclose(merge_stats(old, stats(b))["observation.state"]["mean"], (a.mean(0) + b.mean(0)) / 2)
