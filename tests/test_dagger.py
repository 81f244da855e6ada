import json

import numpy as np
import pytest

from sir.dagger.record import RecordConfig, parse_config, record_corrections
from sir.dagger.record import main as record
from sir.training.train_policy import main as train


@pytest.fixture(scope="module")
def weak_policy(lift_demos, tmp_path_factory):
    """A tiny ACT trained for a few steps: it fails, so the corrector has work."""
    root, repo_id = lift_demos
    run = train(["--repo-ids", repo_id, "--root", str(root), "--policy", "act", "--preset", "tiny",
                 "--batch-size", "8", "--training-steps", "5", "--eval-freq", "0", "--eval-episodes", "1",
                 "--max-steps", "5", "--checkpoint-dir", str(tmp_path_factory.mktemp("weak"))])
    return run / "final_model"


@pytest.fixture(scope="module")
def recorded(weak_policy, tmp_path_factory):
    root = tmp_path_factory.mktemp("dagger")
    result = record_corrections(RecordConfig(checkpoint=str(weak_policy), episodes=3, root=str(root),
                                             repo_id="lift_dagger", patience=10, max_steps=150))
    return root, "lift_dagger", result


@pytest.fixture(scope="module")
def dagger_dataset(recorded):
    root, repo_id, result = recorded
    return root, repo_id, result.path


def read_frames(path):
    import pandas as pd

    return pd.concat(pd.read_parquet(f) for f in sorted((path / "data").glob("*/*.parquet")))


@pytest.mark.slow
def test_takeover_frames_are_labelled_human_and_success_is_per_episode(dagger_dataset):
    root, repo_id, path = dagger_dataset
    info = json.loads((path / "meta" / "sir_info.json").read_text())
    assert info["recorded_by"] == "sir.dagger.record" and info["corrector"] == "expert"
    assert info["interventions"] == sum(e["takeover_step"] is not None for e in info["episodes"])
    frames = read_frames(path)
    saved = [e for e in info["episodes"] if e["saved"]]
    assert frames["episode_index"].nunique() == len(saved)
    for ep_index, ep in enumerate(saved):
        f = frames[frames["episode_index"] == ep_index]
        source = np.stack(f["source"].to_numpy()).ravel()
        success = np.stack(f["success"].to_numpy()).ravel()
        k = ep["takeover_step"]
        assert (source[:k] == 0).all() and (source[k:] == 1).all(), "policy frames 0, takeover frames 1"
        assert (success == int(ep["success"])).all()
        assert len(f) == ep["frames"]
    assert frames["source"].map(lambda v: np.asarray(v).dtype == np.int64).all()


@pytest.mark.slow
def test_record_corrections_returns_what_it_wrote(recorded):
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    root, repo_id, result = recorded
    meta = LeRobotDatasetMetadata(repo_id, root=root / repo_id)
    assert result.path == root / repo_id
    assert (result.episodes, result.frames) == (meta.total_episodes, meta.total_frames)
    assert result.episode_lengths == list(meta.episodes["length"])
    info = json.loads((result.path / "meta" / "sir_info.json").read_text())
    assert (result.tried, result.interventions) == (3, info["interventions"])
    assert (result.policy_successes, result.corrected_successes) == (info["policy_successes"], info["corrected_successes"])
    assert result.per_episode == info["episodes"]


def test_the_record_command_line_fills_the_same_config_as_python():
    cfg = parse_config(["--checkpoint", "ck", "--repo-id", "x", "--deviation", "0.5"])
    assert cfg == RecordConfig(checkpoint="ck", repo_id="x", deviation=0.5)


@pytest.mark.slow
def test_the_dataset_layer_keeps_exactly_the_successful_corrections(dagger_dataset):
    from sir.data import make_mixture
    from sir.data.mixture.config import DataConfig

    root, repo_id, path = dagger_dataset
    frames = read_frames(path)
    source = np.stack(frames["source"].to_numpy()).ravel()
    success = np.stack(frames["success"].to_numpy()).ravel()
    expected = int(((source == 1) & (success == 1)).sum())
    assert expected > 0, "the scripted corrector finishes Lift: some corrections succeed"
    mix = make_mixture(DataConfig(repo_ids=repo_id, root=root), verbose=False)
    assert mix.num_frames == expected
    kept = {int(mix[i]["index"]) for i in range(len(mix))}
    want = set(frames["index"][(source == 1) & (success == 1)].astype(int))
    assert kept == want


@pytest.mark.slow
def test_policy_only_successes_are_not_saved_without_the_flag(weak_policy, tmp_path):
    # With a patience longer than the episode, the corrector never takes over; the weak
    # policy fails, so nothing is worth saving and nothing is written.
    out = record(["--checkpoint", str(weak_policy), "--episodes", "1", "--root", str(tmp_path),
                  "--repo-id", "none", "--patience", "1000", "--deviation", "100", "--max-steps", "20"])
    assert out is None and not (tmp_path / "none").exists()


@pytest.mark.slow
def test_rounds_train_collect_and_retrain_on_demos_plus_corrections(lift_demos, tmp_path):
    import csv
    import shutil

    from sir.dagger.loop import LoopConfig, run_rounds

    root, repo_id = lift_demos
    data = tmp_path / "data"
    shutil.copytree(root / repo_id, data / repo_id)
    # As lerobot's editing tools leave demos: without sir's EnvSpec, which the loop rebuilds.
    (data / repo_id / "meta" / "sir_env.json").unlink()
    result = run_rounds(LoopConfig(
        env="Lift", demos=str(data / repo_id), rounds=1, episodes_per_round=2, preset="tiny", training_steps=5,
        batch_size=8, eval_freq=0, eval_episodes=1, max_steps=80, checkpoint_dir=str(tmp_path / "ck"),
        train_args="--log-freq 1", record_args="--deviation 0.5 --deviation-steps 3"))
    base = result.base_dir
    with (base / "dagger_rounds.csv").open() as f:
        rows = list(csv.DictReader(f))
    # The table on disk is the one the function returned.
    assert rows == [{k: "" if v is None else str(v) for k, v in r.items()} for r in result.rows]
    assert [r["round"] for r in rows] == ["0", "1"]
    assert rows[0]["datasets"] == repo_id
    info = json.loads((data / f"dagger_{repo_id}_r1" / "meta" / "sir_info.json").read_text())
    assert info["checkpoint"] == str((base / "round_0" / "best_model").resolve())
    assert info["corrected_successes"] > 0
    assert (info["takeover_rule"]["deviation"], info["takeover_rule"]["deviation_steps"]) == (0.5, 3)
    assert rows[1]["datasets"] == f"{repo_id}+dagger_{repo_id}_r1"
    assert int(rows[1]["correction_frames"]) > 0
    assert int(rows[1]["expert_labelled_frames"]) > int(rows[0]["expert_labelled_frames"])
    # Labels given count every corrector frame recorded, failed corrections too.
    human = sum(e["frames"] - e["takeover_step"] for e in info["episodes"] if e["saved"])
    assert int(rows[1]["labels_given"]) == int(rows[0]["labels_given"]) + human
    assert int(rows[1]["labels_given"]) >= int(rows[1]["expert_labelled_frames"])


@pytest.mark.slow
def test_bc_vs_dagger_experiment_compares_arms_at_an_equal_label_budget(tmp_path, capsys):
    import csv

    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata

    from sir.dagger.experiment import main as experiment

    argv = ["--env", "Lift", "--small-demos", "2", "--pool-demos", "8", "--rounds", "1",
            "--episodes-per-round", "2", "--seeds", "0", "--preset", "tiny", "--training-steps", "5",
            "--batch-size", "8", "--eval-freq", "0", "--eval-episodes", "1", "--max-steps", "90",
            "--modes", "successful-corrections,hg-dagger",
            "--root", str(tmp_path / "data"), "--out", str(tmp_path / "out")]
    out = experiment(argv)
    with (out / "bc_vs_dagger.csv").open() as f:
        rows = list(csv.DictReader(f))
    arms = [r["arm"] for r in rows]
    assert arms == ["bc_small", "dagger_round_1", "dagger_round_1_hg-dagger", "bc_equal_budget"]
    assert [r["mode"] for r in rows] == ["", "successful-corrections", "hg-dagger", ""]
    # The budget is the labels given: the small demos' frames plus every corrector frame recorded.
    small = int(rows[0]["expert_frames"])
    correction = LeRobotDataset("dagger_s0_r1", root=tmp_path / "data" / "dagger_s0_r1")
    human = int(sum(int(s) for s in correction.hf_dataset["source"]))
    assert human > 0
    assert int(rows[1]["expert_frames"]) == int(rows[2]["expert_frames"]) == small + human
    dagger_frames = int(rows[1]["expert_frames"])
    bc_frames = int(rows[3]["expert_frames"])
    # The BC arm gets the fewest whole demos reaching the DAgger arm's label budget.
    pool = tmp_path / "data" / "lift_pool_s0"
    pool_frames = LeRobotDatasetMetadata("lift_pool_s0", root=pool).total_frames
    assert bc_frames >= dagger_frames or bc_frames == pool_frames
    assert (out / "bc_vs_dagger.png").stat().st_size > 0
    with (out / "bc_vs_dagger_summary.csv").open() as f:
        assert [(r["arm"], r["seeds"]) for r in csv.DictReader(f)] == [(a, "1") for a in arms]
    # --max-steps reaches the demos' EnvSpec and every arm's evaluations; each mode trains as named.
    spec = json.loads((tmp_path / "data" / "lift_pool_s0" / "meta" / "sir_env.json").read_text())
    assert spec["horizon"] == 90
    for run, mode in (("bc_s0", "successful-corrections"), ("dagger_s0/round_1", "successful-corrections"),
                      ("dagger_s0/round_1_hg-dagger", "hg-dagger")):
        saved = json.loads((out / run / "train_config.json").read_text())
        assert saved["max_steps"] == 90 and saved["dagger_mode"] == mode
    # Run again with the same settings: the finished seed is kept, nothing is trained again.
    model = out / "bc_s0" / "best_model" / "model.safetensors"
    before = model.stat().st_mtime_ns
    capsys.readouterr()
    experiment(argv)
    assert "Seed 0: kept" in capsys.readouterr().out
    assert model.stat().st_mtime_ns == before
    with (out / "bc_vs_dagger.csv").open() as f:
        assert [r["arm"] for r in csv.DictReader(f)] == arms


def test_the_experiment_summary_averages_each_arm_over_seeds():
    from sir.dagger.experiment import summarize

    rows = [{"seed": s, "arm": arm, "expert_frames": frames + 2 * s, "success_rate": rate}
            for s, rates in ((0, (0.2, 0.5, 0.4)), (1, (0.4, 0.7, 0.4)))
            for arm, frames, rate in zip(("bc_small", "dagger_round_1", "bc_equal_budget"), (100, 300, 310), rates, strict=True)]
    summary = {r["arm"]: r for r in summarize(rows)}
    assert list(summary) == ["bc_small", "dagger_round_1", "bc_equal_budget"]
    assert summary["dagger_round_1"]["seeds"] == 2
    assert summary["dagger_round_1"]["expert_frames"] == 301  # mean of 300 and 302
    assert summary["dagger_round_1"]["success_mean"] == pytest.approx(0.6)
    assert summary["dagger_round_1"]["success_std"] == pytest.approx(0.1414, abs=1e-3)  # sample sd
    assert summary["bc_equal_budget"]["success_std"] == 0.0
