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


def corrector_steps(corrections, length: int) -> list[int]:
    """The source labels an episode of ``length`` frames has with these corrections."""
    source = [0] * length
    for c in corrections:
        source[c["step"]:c["step"] + c["steps"]] = [1] * c["steps"]
    return source


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
        # The corrector's frames are 1, exactly the steps of its corrections; the policy's 0.
        assert ep["takeover_step"] == ep["corrections"][0]["step"]
        assert list(source) == corrector_steps(ep["corrections"], len(f))
        assert (success == int(ep["success"])).all()
        assert len(f) == ep["frames"]
    assert frames["source"].map(lambda v: np.asarray(v).dtype == np.int64).all()
    # The log beside the data has a line per episode run, the saved ones with their index.
    log = [json.loads(line) for line in (path / "meta" / "sir_corrections.jsonl").read_text().splitlines()]
    assert [e["corrections"] for e in log] == [e["corrections"] for e in info["episodes"]]
    assert [e["episode_index"] for e in log if e["episode_index"] is not None] == list(range(len(saved)))


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
    assert (result.policy_successes, result.corrected_successes) == (
        info["policy_successes"], info["corrected_successes"])
    assert result.per_episode == info["episodes"]


def test_the_record_command_line_fills_the_same_config_as_python():
    cfg = parse_config(["--checkpoint", "ck", "--repo-id", "x", "--oracle-deviation", "0.5"])
    assert cfg == RecordConfig(checkpoint="ck", repo_id="x", oracle_deviation=0.5)


def test_the_takeover_and_hand_back_flags_reach_the_scripted_correctors_rule_and_noise():
    from sir.dagger.corrector import TakeoverRule
    from sir.dagger.record import corrector_noise, takeover_rule
    from sir.experts import RECORDING_NOISE, ExpertNoise

    cfg = parse_config(["--checkpoint", "ck", "--repo-id", "x", "--patience", "9", "--away-steps", "0",
                        "--reaction-delay", "2", "--oracle-deviation", "0.5", "--oracle-deviation-steps", "4",
                        "--agree", "0.1", "--agree-steps", "3", "--agree-mid-recovery", "--reset-after", "60",
                        "--max-correction", "30", "--no-hand-back", "--noise", "0.2", "--target-jitter", "0"])
    assert takeover_rule(cfg) == TakeoverRule(patience=9, away_steps=0, reaction_delay=2, oracle_deviation=0.5,
                                              oracle_deviation_steps=4, agree=0.1, agree_steps=3,
                                              agree_mid_recovery=True, reset_after=60, max_correction=30,
                                              hand_back=False)
    assert corrector_noise(cfg) == ExpertNoise(action_std=0.2, target_jitter=0.0)
    default = RecordConfig(checkpoint="ck", repo_id="x")
    assert takeover_rule(default) == TakeoverRule() and TakeoverRule().oracle_deviation is None
    # The corrector acts with the demos' noise unless told otherwise.
    assert corrector_noise(default) == RECORDING_NOISE


@pytest.mark.parametrize("old, new", [("--deviation", "--oracle-deviation"),
                                      ("--deviation-steps", "--oracle-deviation-steps")])
def test_the_old_deviation_flags_are_refused_in_one_sentence_naming_the_oracle_flags(old, new, capsys):
    with pytest.raises(SystemExit) as exc:
        record(["--checkpoint", "ck", "--repo-id", "x", old, "3"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and f"{old} is now {new}" in err, err


def test_the_rule_before_issue_33_is_reachable_by_flags():
    import dataclasses

    from sir.config import flags_given
    from sir.dagger.corrector import TakeoverRule
    from sir.dagger.record import RULE_BEFORE_ISSUE_33, corrector_noise, takeover_rule
    from sir.experts import ExpertNoise

    cfg = dataclasses.replace(RecordConfig(), **flags_given(RecordConfig, RULE_BEFORE_ISSUE_33, "before"))
    assert takeover_rule(cfg) == TakeoverRule(patience=15, away_steps=0, reaction_delay=0, oracle_deviation=1.0,
                                              oracle_deviation_steps=8, agree_mid_recovery=True, max_correction=50)
    assert corrector_noise(cfg) == ExpertNoise()


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
                  "--repo-id", "none", "--patience", "1000", "--away-steps", "0", "--max-steps", "20"])
    assert out is None and not (tmp_path / "none").exists()


@pytest.mark.slow
def test_the_default_corrector_takes_over_a_weak_policy_on_what_a_person_sees_and_hands_back(weak_policy, tmp_path):
    from sir.dagger.corrector import DROPPED, MOVING_AWAY, NO_PROGRESS
    from sir.experts import RECORDING_NOISE

    # Issue 33's "done when": the recorder's own defaults, on a weak Lift policy.
    path = record(["--checkpoint", str(weak_policy), "--episodes", "3", "--root", str(tmp_path), "--repo-id", "d",
                   "--max-steps", "150", "--device", "cpu"])
    log = [json.loads(line) for line in (path / "meta" / "sir_corrections.jsonl").read_text().splitlines()]
    corrections = [c for e in log for c in e["corrections"]]
    assert corrections and {c["reason"] for c in corrections} <= {NO_PROGRESS, DROPPED, MOVING_AWAY}, corrections
    assert any(c["hand_back"] in ("subgoal", "agreement") for c in corrections), corrections
    info = json.loads((path / "meta" / "sir_info.json").read_text())
    assert info["takeover_rule"]["oracle_deviation"] is None
    assert info["corrector_noise"] == {"action_std": RECORDING_NOISE.action_std,
                                       "target_jitter": RECORDING_NOISE.target_jitter}


@pytest.mark.slow
def test_rounds_train_collect_and_retrain_on_demos_plus_corrections(lift_demos, tmp_path, logged, progress_lines):
    import csv
    import shutil

    from sir.dagger.loop import LoopConfig, loop_training, run_rounds
    from sir.dagger.record import RecordConfig

    root, repo_id = lift_demos
    data = tmp_path / "data"
    shutil.copytree(root / repo_id, data / repo_id)
    # As lerobot's editing tools leave demos: without sir's EnvSpec, which the loop rebuilds.
    (data / repo_id / "meta" / "sir_env.json").unlink()
    # Output to a file, as in a batch job: the rounds' recording and training print plain lines.
    result, text = logged(run_rounds, LoopConfig(
        env="Lift", demos=str(data / repo_id), rounds=1, episodes_per_round=2,
        train=loop_training(preset="tiny", training_steps=5, batch_size=8, eval_freq=0, eval_episodes=1, max_steps=80,
                            checkpoint_dir=str(tmp_path / "ck"), log_freq=1),
        record=RecordConfig(oracle_deviation=0.5, oracle_deviation_steps=3, patience=10)))
    assert "\r" not in text
    assert progress_lines(text, "DAgger Lift") == [(1, 2), (2, 2)]
    assert [line.split(" | ")[0] for line in text.splitlines() if line.startswith("step ")] == \
        [f"step {n}/5" for n in range(1, 6)] * 2  # rounds 0 and 1, --log-freq 1
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
    assert (info["takeover_rule"]["oracle_deviation"], info["takeover_rule"]["oracle_deviation_steps"]) == (0.5, 3)
    assert rows[1]["datasets"] == f"{repo_id}+dagger_{repo_id}_r1"
    assert int(rows[1]["correction_frames"]) > 0
    assert int(rows[1]["expert_labelled_frames"]) > int(rows[0]["expert_labelled_frames"])
    # Every deployment that succeeded is kept, the policy's own successes too; failures are not.
    assert info["auto_save_on_success"] and info["drop_failures"]
    assert [e["saved"] for e in info["episodes"]] == [e["success"] for e in info["episodes"]]
    # Labels given count every corrector frame recorded, kept or not; the round's log sums up its deployments.
    assert int(rows[1]["corrector_labels"]) == info["corrector_frames"] > 0
    assert int(rows[1]["labels_given"]) == int(rows[0]["labels_given"]) + info["corrector_frames"]
    assert float(rows[1]["intervention_ratio"]) == pytest.approx(info["corrector_frames"] / info["deployment_frames"])
    assert float(rows[1]["takeovers_per_episode"]) == pytest.approx(info["takeovers"] / len(info["episodes"]))
    assert float(rows[1]["autonomous_success_rate"]) == pytest.approx(info["policy_successes"] / len(info["episodes"]))
    assert rows[0]["intervention_ratio"] == ""


def test_only_hg_dagger_rounds_keep_failed_corrections_by_default():
    from sir.dagger.loop import keeps_failures

    assert keeps_failures("hg-dagger", False)
    assert not any(keeps_failures(m, False) for m in ("successful-corrections", "iwr", "sirius", "all"))
    assert keeps_failures("sirius", True)


def test_training_steps_grow_with_the_data_by_one_rule():
    from sir.dagger.loop import training_steps

    assert training_steps(600, None, 32, 10_000) == 600
    assert training_steps(600, 2.0, 32, 4_000) == 600  # 250 passes' worth is fewer
    assert training_steps(600, 2.0, 32, 16_000) == 1_000


@pytest.mark.slow
def test_bc_vs_dagger_experiment_compares_arms_at_an_equal_label_budget(tmp_path, capsys, logged, progress_lines):
    """Issue 33's protocol, tiny: round 1 recorded once from round 0's final_model and shared by
    the modes, round 2 each mode's own; every arm the same steps at a cosine schedule; the last
    round's models scored by their last 2 checkpoints, the earlier ones' by their final one, on
    the same test episodes, their outcomes kept."""
    import csv

    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    from sir.dagger.experiment import main as experiment

    modes = ("successful-corrections", "hg-dagger")
    argv = ["--env", "Lift", "--small-demos", "2", "--pool-demos", "8", "--rounds", "2",
            "--episodes-per-round", "2", "--seeds", "0", "--preset", "tiny", "--training-steps", "6",
            "--batch-size", "8", "--eval-freq", "3", "--last-k", "2", "--eval-episodes", "2", "--max-steps", "90",
            "--modes", ",".join(modes),
            # The oracle's trigger takes over early enough for corrections to finish within 90 steps
            # (the default waits for the tiny policy's slow approach to stall).
            "--record-args", "--oracle-deviation 1.0",
            "--root", str(tmp_path / "data"), "--out", str(tmp_path / "out")]
    data, runs = tmp_path / "data", tmp_path / "out"
    # Output to a file, as in a batch job: plain progress lines of each recording and training.
    out, text = logged(experiment, argv)
    assert "\r" not in text
    assert progress_lines(text, "Recording Lift")[-1] == (8, 8)
    # Three recordings of 2 episodes: round 1 once for both modes, then each mode's round 2.
    assert progress_lines(text, "DAgger Lift") == [(1, 2), (2, 2)] * 3
    assert sorted(p.name for p in data.iterdir() if not p.name.startswith(".")) == [
        "hg-dagger_s0_r2", "lift_pool_s0", "shared_s0_r1", "successful-corrections_s0_r2"]
    with (out / "bc_vs_dagger.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sum(line.startswith("step 1/6 | loss ") for line in text.splitlines()) == len(rows)  # one per arm
    arms = [(r["arm"], r["mode"], r["round"]) for r in rows]
    assert arms == [("bc", "", "0"), *[("dagger", m, k) for m in modes for k in "12"], ("bc", "", "1"),
                    ("bc", "", "2")]
    shared = json.loads((data / "shared_s0_r1" / "meta" / "sir_info.json").read_text())
    # Recorded from round 0's final_model (nothing chose it), keeping every deployment for the modes to filter.
    assert shared["checkpoint"] == str((runs / "bc_s0_r0" / "final_model").resolve())
    assert shared["auto_save_on_success"] and not shared["drop_failures"]
    shared_log = (data / "shared_s0_r1" / "meta" / "sir_corrections.jsonl").read_text().splitlines()
    with (out / "bc_vs_dagger_corrections.csv").open() as f:
        corrections = {(r["mode"], r["round"]): r for r in csv.DictReader(f)}
    first = [r for r in rows if r["round"] == "1" and r["arm"] == "dagger"]
    for r in first:
        # The budget is the labels given: the small demos' frames plus every corrector frame recorded.
        assert int(r["expert_frames"]) == int(rows[0]["expert_frames"]) + shared["corrector_frames"]
        assert float(r["intervention_ratio"]) == pytest.approx(shared["corrector_frames"] / shared["deployment_frames"])
        assert float(r["autonomous_success_rate"]) == pytest.approx(shared["policy_successes"] / len(shared_log))
        assert (int(corrections[(r["mode"], "1")]["deployments"]), int(corrections[(r["mode"], "1")]["labels"])) == (
            len(shared_log), shared["corrector_frames"])
        trained_on = json.loads((runs / f"{r['mode']}_s0" / "round_1" / "train_config.json").read_text())
        assert "shared_s0_r1" in trained_on["episodes"] or "shared_s0_r1" not in trained_on["repo_ids"]
    for mode in modes:  # round 2: the mode's own deployments of its round-1 final_model
        info = json.loads((data / f"{mode}_s0_r2" / "meta" / "sir_info.json").read_text())
        assert info["checkpoint"] == str((runs / f"{mode}_s0" / "round_1" / "final_model").resolve())
    # The BC arm gets the fewest whole demos reaching the most labels a mode was given.
    pool_frames = LeRobotDatasetMetadata("lift_pool_s0", root=data / "lift_pool_s0").total_frames
    for k in "12":
        most = max(int(r["expert_frames"]) for r in rows if r["arm"] == "dagger" and r["round"] == k)
        bc = next(r for r in rows if r["arm"] == "bc" and r["round"] == k)
        assert int(bc["expert_frames"]) >= most or int(bc["expert_frames"]) == pool_frames
    # Every arm the same steps at the same schedule, on the test episodes: the last round's models evaluated at
    # their last 2 checkpoints, the earlier rounds' at their final one (--earlier-last-k 1, the experiment's default).
    names = ["bc_s0_r0", "bc_s0_r1", "bc_s0_r2", *[f"{m}_s0/round_{k}" for m in modes for k in "12"]]
    for name in names:
        last = name.endswith("2")
        saved = json.loads((runs / name / "train_config.json").read_text())
        assert (saved["training_steps"], saved["lr_schedule"], saved["eval_start"], saved["select_top_k"]) == (
            6, "cosine", 3 if last else 6, 0)
        assert saved["max_steps"] == 90 and saved["eval_seed"] == 1_000_000
        with (runs / name / "eval_history.csv").open() as f:
            history = list(csv.DictReader(f))
        assert [(h["step"], h["first_seed"]) for h in history] == [("3", "1000000"), ("6", "1000000")][
            0 if last else 1:]
    for r in rows:
        steps = "3 6" if r["round"] == "2" else "6"
        assert (r["training_steps"], r["last_k_steps"], r["eval_seed"]) == ("6", steps, "1000000")
        counts = [int(c) for c in r["episode_successes"].split()]
        assert len(counts) == 2 and all(0 <= c <= len(steps.split()) for c in counts)
        assert float(r["success_rate"]) == pytest.approx(sum(counts) / (2 * len(steps.split())))
    assert (out / "bc_vs_dagger.png").stat().st_size > 0
    with (out / "bc_vs_dagger_summary.csv").open() as f:
        summary = list(csv.DictReader(f))
    assert [(r["arm"], r["mode"], r["round"], r["seeds"]) for r in summary] == [(*a, "1") for a in arms]
    for r in summary[1:5]:  # DAgger rows: the paired difference to BC at the same round
        bc = next(b for b in summary if b["arm"] == "bc" and b["round"] == r["round"])
        assert float(r["minus_bc"]) == pytest.approx(float(r["success_mean"]) - float(bc["success_mean"]))
        assert "minus_bc_sd_episodes" in r and r["minus_bc_sd_episodes"] == ""  # one seed: no spread to split
    # --max-steps reaches the demos' EnvSpec.
    spec = json.loads((data / "lift_pool_s0" / "meta" / "sir_env.json").read_text())
    assert spec["horizon"] == 90
    # Run again with the same settings: the finished seed is kept, nothing is trained again.
    model = runs / "bc_s0_r0" / "final_model" / "model.safetensors"
    before = model.stat().st_mtime_ns
    capsys.readouterr()
    experiment(argv)
    assert "Seed 0: kept" in capsys.readouterr().out
    assert model.stat().st_mtime_ns == before
    with (out / "bc_vs_dagger.csv").open() as f:
        assert [(r["arm"], r["mode"], r["round"]) for r in csv.DictReader(f)] == arms
    # A seed stopped after some arms goes on from them: only the missing arms run, from the
    # shared round 1 as it was recorded.
    with (out / "bc_vs_dagger.csv").open() as f:
        kept = list(csv.DictReader(f))[:3]
    with (out / "bc_vs_dagger.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(kept[0]))
        writer.writeheader()
        writer.writerows(kept)
    first_mode = runs / f"{modes[0]}_s0" / "round_2" / "final_model" / "model.safetensors"
    first_before = first_mode.stat().st_mtime_ns
    recording = (data / "shared_s0_r1" / "meta" / "sir_info.json").stat().st_mtime_ns
    experiment(argv)
    text = capsys.readouterr().out
    assert "Seed 0: 3 of its 7 rows kept" in text and f"kept from {data / 'shared_s0_r1'}" in text
    assert model.stat().st_mtime_ns == before and first_mode.stat().st_mtime_ns == first_before
    assert (data / "shared_s0_r1" / "meta" / "sir_info.json").stat().st_mtime_ns == recording
    with (out / "bc_vs_dagger.csv").open() as f:
        assert [(r["arm"], r["mode"], r["round"]) for r in csv.DictReader(f)] == arms


def test_the_corrections_table_counts_each_rounds_log_and_keeps_rows_whose_datasets_are_elsewhere(tmp_path):
    import csv

    from sir.dagger.corrections_table import CORRECTIONS_CSV, write_corrections

    def correction(step, steps, phase, reason, hand_back):
        return {"step": step, "steps": steps, "phase": phase, "reason": reason, "hand_back": hand_back}

    log = tmp_path / "data" / "shared_s0_r1" / "meta" / "sir_corrections.jsonl"  # round 1: one recording per seed
    log.parent.mkdir(parents=True)
    episodes = [
        {"success": True, "corrections": []},
        {"success": True, "corrections": [correction(9, 12, "hover", "no progress", "subgoal"),
                                          correction(40, 50, "lift", "object dropped", "cap")]},
        {"success": False, "corrections": [correction(3, 7, "hover", "no progress", None)]},
    ]
    log.write_text("".join(json.dumps(e) + "\n" for e in episodes))
    rows = [{"seed": 0, "arm": "bc", "mode": "", "round": 0}, {"seed": 0, "arm": "dagger", "mode": "iwr", "round": 1},
            {"seed": 1, "arm": "dagger", "mode": "iwr", "round": 1}]
    out = tmp_path / "results"
    out.mkdir()
    # Seed 1's round was recorded on another machine: its saved row stays as it was.
    other = {"seed": "1", "mode": "iwr", "round": "1", "deployments": "4"}
    with (out / CORRECTIONS_CSV).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(other))
        writer.writeheader()
        writer.writerow(other)
    write_corrections(out, tmp_path / "data", rows)
    with (out / CORRECTIONS_CSV).open() as f:
        table = list(csv.DictReader(f))
    assert [(r["seed"], r["deployments"]) for r in table] == [("0", "3"), ("1", "4")]
    row = table[0]
    assert (row["successes"], row["autonomous_successes"], row["takeovers"], row["labels"]) == ("2", "1", "3", "69")
    assert (float(row["correction_median"]), row["corrections_at_cap"]) == (12.0, "1")
    assert row["phases"] == "hover: 2; lift: 1"
    assert row["hand_backs"] == "subgoal: 1; cap: 1; episode end: 1"


def test_the_experiment_summary_averages_each_arm_and_pairs_it_with_bc_per_seed():
    from sir.dagger.experiment import summarize

    rows = [{"seed": s, "arm": arm, "mode": mode, "round": k, "expert_frames": frames + 2 * s, "success_rate": rate,
             "intervention_ratio": ratio}
            for s, rates in ((0, (0.2, 0.5, 0.4)), (1, (0.4, 0.7, 0.4)), (2, (0.3, 0.6, 0.2)))
            for (arm, mode, k, frames, ratio), rate in zip(
                (("bc", "", 0, 100, None), ("dagger", "iwr", 1, 300, 0.25), ("bc", "", 1, 310, None)), rates,
                strict=True)]
    summary = {(r["arm"], r["round"]): r for r in summarize(rows)}
    assert list(summary) == [("bc", 0), ("dagger", 1), ("bc", 1)]
    dagger = summary[("dagger", 1)]
    assert dagger["seeds"] == 3 and dagger["expert_frames"] == 302  # mean of 300, 302, 304
    assert dagger["success_mean"] == pytest.approx(0.6) and dagger["success_std"] == pytest.approx(0.1)
    assert dagger["intervention_ratio"] == pytest.approx(0.25)
    # Paired with BC at round 1, seed by seed: +10, +30, +40 points; t interval with 2 degrees of freedom.
    assert dagger["minus_bc_per_seed"] == "+10 +30 +40"
    assert dagger["minus_bc"] == pytest.approx(0.8 / 3)
    half = 4.302653 * np.std([0.1, 0.3, 0.4], ddof=1) / np.sqrt(3)
    assert (dagger["minus_bc_low"], dagger["minus_bc_high"]) == pytest.approx((0.8 / 3 - half, 0.8 / 3 + half))
    assert summary[("bc", 1)]["minus_bc"] is None


def test_the_summary_splits_the_paired_differences_variance_between_episodes_and_models():
    """Rows as the experiment writes them: each model's last 3 checkpoints on the same 4 test
    episodes. Two modes at round 1: Holm across them, Bonferroni's intervals at 1 - 0.05/2,
    and the variance of each mode's per-seed difference to BC split by sir.eval.paired."""
    from scipy import stats

    from sir.dagger.summary import summarize
    from sir.eval.paired import holm, variance_split

    def row(seed, arm, mode, counts, rates="0.5 0.5 0.5"):
        return {"seed": seed, "arm": arm, "mode": mode, "round": 1, "expert_frames": 300, "training_steps": 1000,
                "success_rate": sum(counts) / 12, "last_k_steps": "800 900 1000", "last_k_rates": rates,
                "episode_successes": " ".join(map(str, counts)), "intervention_ratio": None}

    bc = {0: [0, 1, 3, 0], 1: [1, 1, 0, 0], 2: [3, 3, 0, 0]}
    iwr = {0: [3, 3, 3, 0], 1: [1, 2, 0, 1], 2: [3, 3, 3, 3]}
    sirius = {0: [0, 3, 3, 0], 1: [3, 3, 3, 0], 2: [3, 3, 0, 0]}
    rows = [row(s, "bc", "", bc[s], "0.25 0.25 0.5") for s in bc]
    rows += [row(s, "dagger", "iwr", iwr[s]) for s in iwr] + [row(s, "dagger", "sirius", sirius[s]) for s in sirius]
    summary = {r["mode"]: r for r in summarize(rows)}
    for mode, counts in (("iwr", iwr), ("sirius", sirius)):
        entry = summary[mode]
        diffs = [(sum(counts[s]) - sum(bc[s])) / 12 for s in bc]
        assert entry["minus_bc"] == pytest.approx(np.mean(diffs))
        split = variance_split([[c / 3 for c in bc[s]] for s in bc], [[c / 3 for c in counts[s]] for s in bc])
        assert entry["minus_bc_sd"] == pytest.approx(np.std(diffs, ddof=1))
        assert entry["minus_bc_sd_episodes"] == pytest.approx(np.sqrt(split["episodes"]))
        assert entry["minus_bc_sd_models"] == pytest.approx(np.sqrt(split["models"]))
        assert entry["minus_bc_episode_share"] == pytest.approx(split["episode_share"])
        half = stats.t.ppf(1 - 0.05 / 4, 2) * np.std(diffs, ddof=1) / np.sqrt(3)
        assert (entry["minus_bc_low_simultaneous"], entry["minus_bc_high_simultaneous"]) == pytest.approx(
            (np.mean(diffs) - half, np.mean(diffs) + half))
        assert entry["minus_bc_low_simultaneous"] < entry["minus_bc_low"]
    p = [summary["iwr"]["minus_bc_p"], summary["sirius"]["minus_bc_p"]]
    assert [summary["iwr"]["minus_bc_p_holm"], summary["sirius"]["minus_bc_p_holm"]] == pytest.approx(holm(p))
    assert min(p) < max(summary["iwr"]["minus_bc_p_holm"], summary["sirius"]["minus_bc_p_holm"])
    # The last checkpoints' spread beside a rate's binomial noise on its 4 episodes.
    assert summary[""]["checkpoint_sd"] == pytest.approx(np.std([0.25, 0.25, 0.5], ddof=1))
    assert summary[""]["checkpoint_binomial_sd"] == pytest.approx(np.sqrt(1 / 3 * 2 / 3 / 4))
    assert summary["iwr"]["checkpoint_sd"] == 0


# -- the scripted corrector, with policies that answer as lerobot's do ---------------------


class StubPolicy:
    """``select_action``/``reset`` as a lerobot policy has them: zero actions (the arm still,
    the fingers as they are) for ``still_steps`` calls, then, where ``env`` is given, the
    task's expert reading the state from the env. Counts its calls, and notes at each call
    whether robosuite finds the cube grasped."""

    def __init__(self, env=None, still_steps: int = 10**9):
        self.env, self.still_steps = env, still_steps
        self.calls = self.resets = 0
        self.grasped: list[bool] = []
        if env is not None:
            from sir.experts import make_expert

            self.expert = make_expert("Lift", seed=1)

    def start(self) -> None:
        self.calls = self.resets = 0
        self.grasped = []
        if self.env is not None:
            self.expert.reset(self.env)

    def reset(self) -> None:
        self.resets += 1

    def select_action(self, batch):
        import torch

        self.calls += 1
        action = np.zeros(7, dtype=np.float32)
        if self.env is not None:
            env = self.env
            self.grasped.append(env._check_grasp(gripper=env.robots[0].gripper, object_geoms=env.cube))
            if self.calls > self.still_steps:
                action = self.expert.act(env._get_observations())
        return torch.as_tensor(action)[None]


@pytest.fixture(scope="module")
def lift_env():
    from sir.envs.factory import make_env
    from sir.envs.spec import default_spec

    spec = default_spec("Lift", horizon=150)
    env = make_env(spec)
    yield env, spec
    env.close()


def corrected_episode(lift_env, policy, rule=None, seed=0, max_steps=150):
    from sir.dagger.corrector import ScriptedCorrector
    from sir.dagger.record import CorrectedPolicy
    from sir.data.record.runner import run_episode
    from sir.experts import make_expert

    env, spec = lift_env
    policy.start()
    actor = CorrectedPolicy(policy, lambda b: b, lambda a: a, ScriptedCorrector(make_expert("Lift", seed=0), rule),
                            spec.task)
    return run_episode(env, spec, actor, seed, max_steps)


def runs(source) -> list[int]:
    return [int(s) for i, s in enumerate(source) if i == 0 or s != source[i - 1]]


def test_a_scripted_dagger_episode_takes_over_hands_back_and_takes_over_again_keeping_the_grasp(lift_env):
    from sir.experts.grasping import GRIPPER_CLOSED

    env, _ = lift_env
    policy = StubPolicy(env)  # never moves: every correction must hand back to it and take over again
    episode = corrected_episode(lift_env, policy)
    source = [int(f["source"][0]) for f in episode.frames]
    assert runs(source)[:4] == [0, 1, 0, 1], episode.corrections
    assert source == corrector_steps(episode.corrections, len(source))
    assert episode.success
    # It hands back once the grasp is secured; the policy, still, lifts nothing, and the
    # corrector takes over again from the cube held in the closed gripper, which stays closed.
    assert any(c["hand_back"] == "subgoal" and c["subgoal"] == "grasp secured" for c in episode.corrections)
    [held] = [c for c in episode.corrections if policy.grasped[c["step"]]]
    assert held["reason"] == "no progress" and held["phase"] in ("close", "lift")
    steps = range(held["step"], held["step"] + held["steps"])
    assert all(policy.grasped[t] for t in steps)
    assert all(episode.frames[t]["action"][-1] == GRIPPER_CLOSED for t in steps)
    # The policy was asked every step, while corrected too: from a fresh plan (a reset) at
    # every step after a takeover's first, up to and including the step it is handed back at.
    assert policy.calls == len(episode.frames)
    fresh = sum(c["steps"] - 1 + (c["hand_back"] is not None) for c in episode.corrections)
    assert policy.resets == 1 + fresh  # and once as the episode began


class StillAfter(StubPolicy):
    """The task's expert for ``moving_steps`` calls, then still: a policy that stalls where it got to."""

    def __init__(self, env, moving_steps: int):
        super().__init__(env, still_steps=0)
        self.moving_steps = moving_steps

    def select_action(self, batch):
        action = super().select_action(batch)
        return action if self.calls <= self.moving_steps else action * 0


class Straying(StubPolicy):
    """The task's expert with a sideways zigzag of 1.2 action units on top: its commands stray
    far from the expert's while the arm still makes its way, as a policy's other curve does."""

    def __init__(self, env):
        super().__init__(env, still_steps=0)

    def select_action(self, batch):
        action = super().select_action(batch)
        action[0, 1] += 1.2 * (-1) ** self.calls
        return action


def test_the_default_rule_never_takes_over_for_straying_from_the_experts_command(lift_env):
    import dataclasses

    from sir.dagger.corrector import ORACLE_DEVIATION, TakeoverRule

    env, _ = lift_env
    rule = TakeoverRule()
    default = corrected_episode(lift_env, Straying(env), rule)
    assert ORACLE_DEVIATION not in {c["reason"] for c in default.corrections}, default.corrections
    # The same policy strays enough for the oracle: with it on, it takes over for straying, early.
    oracle = corrected_episode(lift_env, Straying(env), dataclasses.replace(rule, oracle_deviation=1.0))
    first = oracle.corrections[0]
    assert first["reason"] == ORACLE_DEVIATION
    # Straying from the first step: its steps in a row, then the reaction.
    assert first["step"] == rule.oracle_deviation_steps - 1 + rule.reaction_delay


def test_a_policy_that_stalls_near_the_object_is_taken_over_after_patience_and_reaction_delay(lift_env):
    import dataclasses

    from sir.dagger.corrector import NO_PROGRESS, TakeoverRule

    env, _ = lift_env
    rule = TakeoverRule()

    moving = 15

    def first_takeover(rule):
        return corrected_episode(lift_env, StillAfter(env, moving), rule).corrections[0]

    taken = first_takeover(rule)
    assert taken["reason"] == NO_PROGRESS and taken["phase"] in ("hover", "descend"), taken
    # Its last move at step 14 (the arm settling for a step or two more): patience, then the reaction.
    earliest = moving - 1 + rule.patience + rule.reaction_delay
    assert earliest <= taken["step"] <= earliest + 3
    # The same episode, but for the rule: the takeover moves by exactly the delay and the patience.
    assert taken["step"] - first_takeover(dataclasses.replace(rule, reaction_delay=0))["step"] == rule.reaction_delay
    assert first_takeover(dataclasses.replace(rule, patience=rule.patience + 10))["step"] - taken["step"] == 10


def test_the_corrector_hands_back_on_agreement_only_past_the_critical_part(lift_env):
    import dataclasses

    from sir.dagger.corrector import NO_PROGRESS, TakeoverRule

    env, _ = lift_env
    rule = TakeoverRule()
    # Still at first (taken over for its stall), then as good as the expert: its proposals agree
    # with the expert's from the takeover on, mid-recovery.
    still = rule.grace + rule.patience + rule.reaction_delay + 2
    episode = corrected_episode(lift_env, StubPolicy(env, still_steps=still), rule)
    first = episode.corrections[0]
    assert (first["reason"], first["phase"]) == (NO_PROGRESS, "hover")
    # The default waits for the sub-goal: the grasp, the critical part, is the corrector's.
    assert (first["hand_back"], first["subgoal"]) == ("subgoal", "grasp secured")
    assert episode.success
    # The old rule hands back on agreement mid-recovery, at the agree_steps-th step in a row whose
    # proposal matched the expert's, counted from the first step the policy was good (it acts that step).
    old = corrected_episode(lift_env, StubPolicy(env, still_steps=still),
                            dataclasses.replace(rule, agree_mid_recovery=True))
    first = old.corrections[0]
    assert first["hand_back"] == "agreement" and first["step"] + first["steps"] == still + rule.agree_steps - 1
    assert old.success and len(old.corrections) == 1
    assert runs([int(f["source"][0]) for f in old.frames]) == [0, 1, 0]


class PhasesBySetting:
    """A ``ResumableExpert`` whose state a test sets through the observation: the phase the
    state shows (``phase``), the measure of progress (``progress``) and the command."""

    subgoals = {1: "grasp secured", 2: "object lifted", 3: "object over the target"}

    def reset(self, env):
        self.phase, self.resumed_phase, self.resuming = "hover", None, False

    def resume(self):
        self.resuming = True

    def next_subgoal(self, level):
        return next((goal for goal in sorted(self.subgoals) if goal > level), None)

    def reached(self, subgoal):
        from sir.experts.grasping import PROGRESS

        return PROGRESS[self.phase] >= subgoal

    def act(self, obs):
        self.phase = obs["phase"]
        if self.resuming:
            self.resumed_phase, self.resuming = self.phase, False
        self.progress = obs["progress"]
        self.intended = np.array([0.5, 0, 0, 0, 0, 0, -1.0], dtype=np.float32)
        return self.intended


def test_a_drop_or_a_retreat_is_taken_over_after_the_reaction_delay_and_agreement_hands_back_past_the_grasp():
    from sir.dagger.corrector import DROPPED, MOVING_AWAY, ScriptedCorrector, TakeoverRule

    rule = TakeoverRule()
    delay, corrector = rule.reaction_delay, ScriptedCorrector(PhasesBySetting(), rule)
    corrector.reset(None)
    agreeing, straying = np.array([0.5, 0, 0, 0, 0, 0, -1.0]), np.array([-0.5, 0, 0, 0, 0, 0, -1.0])

    def watch(phase, progress):
        return corrector.should_take_over({"phase": phase, "progress": progress}, straying, 0.0)

    def take_over(phase, progress):
        corrector.take_over(None)
        corrector.act({"phase": phase, "progress": progress}, {}, 0.0)

    def correct(phase, progress, action=agreeing):
        obs = {"phase": phase, "progress": progress}
        if corrector.should_hand_back(obs, action, 0.0):
            return corrector.handed_back
        corrector.act(obs, {}, 0.0)

    # The policy lifts the object, steadily (progress every step), then lets it fall.
    assert not any(watch("lift", (1, 0.8 + 0.01 * t)) for t in range(10))
    # Seen at once, taken over reaction_delay steps later, the object still down.
    assert [watch("hover", (0, -0.1)) for _ in range(delay + 1)] == [False] * delay + [True]
    assert corrector.reason == DROPPED
    take_over("hover", (0, -0.1))
    assert (corrector.phase, corrector.subgoal) == ("hover", "grasp secured")
    # Proposals that agree mid-recovery do not hand back: the grasp is the corrector's to make.
    assert not any(correct("hover", (0, -0.1)) for _ in range(2 * rule.agree_steps))
    assert correct("lift", (1, 0.8), straying) == "subgoal"
    # Dropped and held again within the reaction delay: no takeover.
    watch("lift", (1, 0.9))
    assert not any(watch("hover", (0, -0.1)) for _ in range(delay))
    assert not any(watch("lift", (1, 0.91 + 0.01 * t)) for t in range(5))
    # Lowered again, steadily, for a second: moving away from the sub-goal.
    lowering = [watch("lift", (1, 0.95 - 0.01 * t)) for t in range(1, rule.away_steps + delay + 1)]
    assert lowering == [False] * (rule.away_steps + delay - 1) + [True]
    assert corrector.reason == MOVING_AWAY
    take_over("lift", (1, 0.7))
    assert corrector.subgoal == "object lifted"
    assert correct("carry", (2, -0.3), straying) == "subgoal"
    # Dropped again: this correction is for the sub-goal after the last one handed back at, and
    # agreement hands back once it is past the phase it took over in (the grasp made again).
    watch("carry", (2, -0.29))
    assert [watch("hover", (0, -0.1)) for _ in range(delay + 1)][-1]
    take_over("hover", (0, -0.1))
    assert corrector.subgoal == "object over the target"
    assert not any(correct("hover", (0, -0.1)) for _ in range(2 * rule.agree_steps))
    assert not corrector.past_critical_part()
    assert correct("lift", (1, 0.8)) == "agreement"


def test_a_correction_is_reset_once_stuck_on_one_part_of_the_task_not_for_its_length():
    from sir.dagger.corrector import ScriptedCorrector, TakeoverRule
    from sir.data.record.runner import RESET
    from sir.experts.grasping import PROGRESS

    corrector = ScriptedCorrector(PhasesBySetting(), TakeoverRule(reset_after=10))
    corrector.reset(None)
    straying = np.array([-0.5, 0, 0, 0, 0, 0, -1.0])

    def obs(phase):
        return {"phase": phase, "progress": (PROGRESS[phase], 0.0)}

    corrector.take_over(None)
    acted = [corrector.act(obs("lower"), {}, 0.0)]  # past the last sub-goal: it goes on to the end
    for phase in ["lower"] * 8 + ["release"] * 9 + ["retreat"] * 11:
        assert not corrector.should_hand_back(obs(phase), straying, 0.0)
        acted.append(corrector.act(obs(phase), {}, 0.0))
    # Further every 9 steps, 27 steps in all, on; then 10 steps in "retreat", and the 11th resets.
    assert [a is RESET for a in acted] == [False] * 28 + [True] and corrector.handed_back == "reset"


def test_a_correction_out_of_its_budget_resets_the_episode_as_a_failure(lift_env, tmp_path):
    import pandas as pd

    from sir.dagger.corrector import ScriptedCorrector, TakeoverRule
    from sir.dagger.record import CorrectedPolicy, keeps
    from sir.data.record.runner import open_writer, record_episodes
    from sir.envs.factory import make_env
    from sir.experts import make_expert

    episode = corrected_episode(lift_env, StubPolicy(), TakeoverRule(reset_after=6))
    [only] = episode.corrections
    # Six steps of the corrector, short of the grasp, and the episode ends there as a failure.
    assert (only["hand_back"], only["steps"]) == ("reset", 6) and len(episode.frames) == only["step"] + 6
    assert not episode.success and not episode.discarded
    assert [int(f["source"][0]) for f in episode.frames] == corrector_steps(episode.corrections, len(episode.frames))
    # Kept or dropped by the recorder's rules for failures.
    assert keeps(RecordConfig(), episode) and not keeps(RecordConfig(drop_failures=True), episode)
    _, spec = lift_env
    env = make_env(spec)  # record_episodes closes it
    writer = open_writer(env, spec, tmp_path, "reset", 0, info={}, resumable=True)
    actor = CorrectedPolicy(StubPolicy(), lambda b: b, lambda a: a,
                            ScriptedCorrector(make_expert("Lift", seed=0), TakeoverRule(reset_after=6)), spec.task)
    result = record_episodes(writer, env, spec, actor, 0, 1, 150, until_written=False,
                             keep=lambda ep: keeps(RecordConfig(), ep), desc="reset", status=lambda r: {})
    [line] = [json.loads(t) for t in (result.path / "meta" / "sir_corrections.jsonl").read_text().splitlines()]
    assert (line["success"], line["corrections"][-1]["hand_back"]) == (False, "reset")
    frames = pd.read_parquet(next((result.path / "data").glob("*/*.parquet")))
    assert len(frames) == line["frames"] and not np.stack(frames["success"].to_numpy()).any()


def test_the_correctors_actions_carry_the_recording_noise(lift_env):
    from sir.dagger.corrector import ScriptedCorrector
    from sir.envs.factory import observation_to_features, reset_env
    from sir.experts import RECORDING_NOISE, ExpertNoise, make_expert

    env, spec = lift_env
    obs = reset_env(env, 0)
    features = observation_to_features(obs, spec)

    def first_action(noise, seed):
        corrector = ScriptedCorrector(make_expert("Lift", noise, seed=seed))
        corrector.reset(env)
        corrector.take_over(env)
        return corrector.act(obs, features, 0.0)

    one, other = first_action(RECORDING_NOISE, 1), first_action(RECORDING_NOISE, 2)
    assert not np.allclose(one[:3], other[:3]) and one[-1] == other[-1]  # the arm's noise, not the gripper's
    expert = make_expert("Lift")
    expert.reset(env)
    clean = expert.act(obs)
    np.testing.assert_array_equal(first_action(ExpertNoise(), 1), clean)
    assert 0 < np.abs(one[:3] - clean[:3]).max() < 5 * RECORDING_NOISE.action_std


def test_a_correction_lasts_no_longer_than_its_cap_and_without_hand_back_to_the_end(lift_env):
    from sir.dagger.corrector import TakeoverRule

    capped = corrected_episode(lift_env, StubPolicy(), TakeoverRule(max_correction=6),
                               max_steps=100)
    assert len(capped.corrections) >= 2
    assert all(c["steps"] <= 6 for c in capped.corrections)
    assert {c["hand_back"] for c in capped.corrections[:-1]} <= {"cap", "subgoal"}
    whole = corrected_episode(lift_env, StubPolicy(), TakeoverRule(hand_back=False), max_steps=150)
    [only] = whole.corrections
    assert only["hand_back"] is None and only["step"] + only["steps"] == len(whole.frames)
    assert whole.success


def test_a_recording_logs_each_episodes_corrections_beside_its_frames(lift_env, tmp_path):
    import pandas as pd

    from sir.dagger.corrector import ScriptedCorrector
    from sir.dagger.record import CorrectedPolicy
    from sir.data.record.runner import open_writer, record_episodes
    from sir.envs.factory import make_env
    from sir.experts import make_expert

    _, spec = lift_env
    env = make_env(spec)  # record_episodes closes it
    policy = StubPolicy()
    writer = open_writer(env, spec, tmp_path, "log", 0, info={}, resumable=True)
    actor = CorrectedPolicy(policy, lambda b: b, lambda a: a, ScriptedCorrector(make_expert("Lift", seed=0)), spec.task)
    result = record_episodes(writer, env, spec, actor, 0, 2, 120, until_written=False, keep=lambda ep: ep.seed == 1,
                             desc="log", status=lambda r: {})
    log = [json.loads(line) for line in (result.path / "meta" / "sir_corrections.jsonl").read_text().splitlines()]
    assert [(e["seed"], e["episode_index"]) for e in log] == [(0, None), (1, 0)]  # every episode run; kept ones indexed
    assert [e["corrections"] for e in log] == [e["corrections"] for e in result.per_episode]
    assert result.takeovers == sum(e["takeovers"] for e in log) >= 4
    frames = pd.read_parquet(next((result.path / "data").glob("*/*.parquet")))
    assert list(np.stack(frames["source"].to_numpy()).ravel()) == \
        corrector_steps(log[1]["corrections"], log[1]["frames"])


def test_a_kill_before_an_episodes_commit_rolls_its_log_line_back(tmp_path):
    from sir.data.record import journal

    folder = tmp_path / "rec"
    (folder / "meta").mkdir(parents=True)
    log = folder / journal.CORRECTIONS
    log.write_text('{"episode": 0}\n')
    record = journal.commit(folder, {"episodes": 1, "frames": 10})
    log.write_text('{"episode": 0}\n{"episode": 1}\n')  # the next episode's line, then a kill
    journal.roll_back(folder, journal.read(folder))
    assert log.read_text() == '{"episode": 0}\n' and record["texts"][journal.CORRECTIONS] == log.read_text()


def test_the_scripted_and_the_human_corrector_answer_one_protocol():
    import inspect

    from sir.dagger.corrector import Corrector, HumanCorrector, ScriptedCorrector
    from sir.data.record.runner import Actor
    from sir.data.record.teleop import HumanActor

    methods = ("reset", "should_take_over", "take_over", "act", "should_hand_back")
    for cls in (ScriptedCorrector, HumanCorrector):
        for name in methods:
            want = [p.name for p in inspect.signature(getattr(Corrector, name)).parameters.values()]
            assert [p.name for p in inspect.signature(getattr(cls, name)).parameters.values()] == want, (cls, name)
    # A corrector acts as an actor acts, with the same arguments.
    assert inspect.signature(Corrector.act).parameters.keys() == inspect.signature(Actor.act).parameters.keys()
    assert inspect.signature(HumanCorrector.act) == inspect.signature(HumanActor.act)
