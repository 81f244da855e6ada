"""The DAgger loop's and the experiment's configs nest the configs of what they call
(``LoopConfig.train`` is a ``TrainConfig``, ``.record`` a ``RecordConfig``;
``ExperimentConfig.loop`` a ``LoopConfig``): the flag strings ``--train-args`` and
``--record-args`` are read into them once, when the command line is parsed, and the
experiment's saved settings are still the command line's (issue 31, part 2)."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from sir.dagger import experiment, loop
from sir.dagger.loop import LoopConfig, loop_training
from sir.dagger.record import RecordConfig
from sir.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
COMMITTED = REPO / "docs" / "dagger_experiment"
LOOP = ["--env", "Lift", "--demos", "data/lift_demos"]


def test_the_loop_reads_its_flag_strings_into_the_nested_configs():
    cfg = loop.parse_config([*LOOP, "--batch-size", "8", "--train-args", "--lr 1e-3 --batch-size 4 --ema-decay 0.99",
                             "--record-args", "--oracle-deviation 0.5 --oracle-deviation-steps 3 --episodes 7"])
    # The string's flags go over the loop's own (--batch-size 4 over 8), into the loop's defaults.
    assert cfg.train == loop_training(lr=1e-3, batch_size=4, ema_decay=0.99)
    assert cfg.record == RecordConfig(oracle_deviation=0.5, oracle_deviation_steps=3)
    # A recording flag the loop has its own flag for lands there: recording is all it sets.
    assert cfg.episodes_per_round == 7


def test_empty_flag_strings_keep_every_nested_default():
    cfg = loop.parse_config([*LOOP, "--train-args", "", "--record-args", ""])
    assert cfg == LoopConfig(env="Lift", demos="data/lift_demos")
    assert cfg.record == RecordConfig()
    train = cfg.train
    # The loop's training defaults, not train_policy's.
    assert (train.policy, train.preset, train.training_steps, train.batch_size, train.eval_freq,
            train.eval_episodes, train.lr) == ("act", "cpu", 600, 32, 200, 20, None)
    assert train == TrainConfig(policy="act", preset="cpu", training_steps=600, batch_size=32, eval_freq=200,
                         eval_episodes=20)
    exp = experiment.parse_config(["--env", "Lift"]).loop.train
    # The experiment's: 1,000 steps at a cosine schedule, the last 3 checkpoints on 40 test episodes.
    assert (exp.preset, exp.training_steps, exp.batch_size, exp.eval_freq, exp.eval_episodes) == (
        "cpu", 2000, 32, 100, 40)
    assert (exp.lr_schedule, exp.last_k, exp.eval_seed) == ("cosine", 3, 1_000_000)


def test_the_loops_own_flags_fill_the_training_config():
    cfg = loop.parse_config([*LOOP, "--policy", "diffusion", "--preset", "tiny", "--training-steps", "5", "--seed", "3",
                             "--max-steps", "80", "--checkpoint-dir", "ck", "--run-name", "r", "--overwrite",
                             "--eval-freq", "0", "--eval-episodes", "2"])
    assert cfg.train == loop_training(policy="diffusion", preset="tiny", training_steps=5, seed=3, max_steps=80,
                                      checkpoint_dir="ck", run_name="r", overwrite=True, eval_freq=0, eval_episodes=2)


@pytest.mark.parametrize("argv", [["--train-args", "--dagger-mode sirius"], ["--dagger-mode", "sirius"],
                                  ["--dagger-mode", "sirius", "--train-args", "--dagger-mode sirius"]])
def test_the_loops_mode_comes_from_its_flag_or_from_train_args(argv):
    cfg = loop.parse_config([*LOOP, *argv])
    assert cfg.dagger_mode == "sirius"
    assert cfg.train.dagger_mode == "successful-corrections"  # the loop's field decides; each round gets it


@pytest.mark.parametrize("main, argv, words", [
    (loop.main, [*LOOP, "--train-args", "--no-such-flag 3"], "--train-args has '--no-such-flag 3', which"),
    (loop.main, [*LOOP, "--train-args", "--lr fast"], "--train-args: argument --lr: invalid float value: 'fast'"),
    (loop.main, [*LOOP, "--train-args", "--batch-size 0"], "--batch-size must be at least 1, not 0"),
    (loop.main, [*LOOP, "--record-args", "--patience soon"], "--record-args: argument --patience: invalid int value"),
    (loop.main, [*LOOP, "--record-args", "--seed 3"], "--record-args may not set --seed"),
    (loop.main, [*LOOP, "--record-args", "--deviation 0.5"], "--record-args: --deviation is now --oracle-deviation"),
    (experiment.main, ["--env", "Lift", "--record-args", "--deviation-steps 3"],
     "--deviation-steps is now --oracle-deviation-steps"),
    (loop.main, [*LOOP, "--train-args", "--root elsewhere"], "--train-args may not set --root"),
    (loop.main, [*LOOP, "--dagger-mode", "iwr", "--train-args", "--dagger-mode sirius"], "give it once"),
    (experiment.main, ["--env", "Lift", "--train-args", "--no-such-flag 3"], "--train-args has '--no-such-flag 3'"),
    (experiment.main, ["--env", "Lift", "--train-args", "--dagger-mode iwr"],
     "Give the DAgger modes with --modes, not --dagger-mode in --train-args."),
    (experiment.main, ["--env", "Lift", "--train-args", "--seed 4"], "--train-args may not set --seed"),
    (experiment.main, ["--env", "Lift", "--record-args", "--label-budget 5", "--label-budget", "6"], "give it once"),
    # Issue 33: every arm trains the same steps and scores its last checkpoints; nothing chooses on the test episodes.
    (experiment.main, ["--env", "Lift", "--epochs", "4"], "--epochs is gone: every arm trains the same"),
    (experiment.main, ["--env", "Lift", "--epochs=4"], "--epochs is gone"),
    (experiment.main, ["--env", "Lift", "--train-args", "--eval-start 10"], "--train-args may not set --eval-start"),
    (experiment.main, ["--env", "Lift", "--train-args", "--select-top-k 3"], "--train-args may not set --select-top-k"),
    (experiment.main, ["--env", "Lift", "--train-args=--no-eval"], "--train-args may not set --no-eval"),
    (experiment.main, ["--env", "Lift", "--last-k", "3", "--eval-freq", "0"], "--last-k 3 checkpoints --eval-freq 0"),
    (experiment.main, ["--env", "Lift", "--training-steps", "100", "--eval-freq", "50"], "do not fit in"),
])
def test_a_wrong_flag_in_a_flag_string_ends_in_one_sentence_and_exit_2(main, argv, words, capsys, tmp_path,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert words in err
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def makefile_experiment_argv() -> list[str]:
    """The flags ``make bc-vs-dagger`` gives sir.dagger.experiment, as make expands them."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # Run as `make test` runs the suite too: without the outer make's flags (its VENV=...,
    # which would print "Entering directory" lines into the command).
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    text = subprocess.run(["make", "--no-print-directory", "-n", "-o", "install", "bc-vs-dagger"], cwd=REPO,
                          capture_output=True, text=True, check=True, env=env).stdout
    # The experiment's command: the target's first; the report's line after it.
    line = next(line for line in text.replace("\\\n", " ").splitlines() if "sir.dagger.experiment" in line)
    words = shlex.split(line)
    return words[words.index("sir.dagger.experiment") + 1:]


def test_the_committed_experiment_keeps_its_rows_for_the_makefiles_settings(tmp_path, capsys):
    cfg = experiment.parse_config(makefile_experiment_argv())
    saved = json.loads((COMMITTED / experiment.ARGS_JSON).read_text())
    assert cfg.results == str(COMMITTED.relative_to(REPO))
    # Written as before: the same keys, in the same order, with the same values (where things go aside).
    written = experiment.settings(cfg)
    assert list(written) == list(saved)
    assert {k: v for k, v in written.items() if k not in experiment.WHERE} == {
        k: v for k, v in saved.items() if k not in experiment.WHERE}
    assert experiment.COMMAND_LINE.same_settings(saved, cfg, experiment.ARGS_JSON, experiment.WHERE)
    # And so the committed rows, once there are any, are kept, not run again.
    out = tmp_path / "results"
    shutil.copytree(COMMITTED, out, ignore=shutil.ignore_patterns("earlier"))
    rows = experiment._kept_rows(cfg, out)
    assert "another setting" not in capsys.readouterr().out
    committed = COMMITTED / experiment.RESULTS_CSV
    assert len(rows) == (len(committed.read_text().splitlines()) - 1 if committed.is_file() else 0)


def test_the_rows_of_the_protocol_before_issue_33_never_mix_with_the_new_ones(tmp_path, capsys):
    """docs/dagger_experiment/earlier/ holds the rows made with --epochs and one evaluation of the
    final checkpoint: put where the Makefile's run writes, they are not kept but run again."""
    cfg = experiment.parse_config(makefile_experiment_argv())
    out = tmp_path / "results"
    shutil.copytree(COMMITTED / "earlier", out)
    assert experiment._kept_rows(cfg, out) == []
    assert "holds another setting's results" in capsys.readouterr().out
    # The same settings file beside them does not make old rows this protocol's either.
    shutil.copy(COMMITTED / experiment.ARGS_JSON, out / experiment.ARGS_JSON)
    assert experiment._kept_rows(cfg, out) == []


def test_saved_settings_match_by_what_the_flag_strings_set():
    argv = ["--env", "Lift", "--seeds", "0", "--train-args", "--lr 1e-3 --async-eval", "--record-args", "--agree 0.3"]
    cfg = experiment.parse_config(argv)
    saved = experiment.settings(cfg)
    assert (saved["train_args"], saved["record_args"]) == ("--lr 0.001 --async-eval", "--agree 0.3")
    # Another spelling of the same flags is the same settings; other seeds or folders change no result.
    def same(changed: dict) -> bool:
        return experiment.COMMAND_LINE.same_settings(changed, cfg, "saved", ignore=experiment.WHERE)

    assert same({**saved, "train_args": "--async-eval  --lr 1e-3", "seeds": [5], "out": "elsewhere"})
    assert not same({**saved, "train_args": "--lr 2e-3 --async-eval"})
    assert not same({**saved, "train_args": "--no-such-flag"})
    assert not same({**saved, "batch_size": 16})
    assert not same({k: v for k, v in saved.items() if k != "modes"})
    assert experiment.COMMAND_LINE.from_flat(saved, "saved") == cfg


def test_the_experiment_hands_each_arm_its_config(tmp_path, monkeypatch):
    """One seed with fakes for recording, training and the loop: what each is called with.
    Round 1 is recorded once, from round 0's final_model, keeping every deployment, and every
    mode starts from it; every arm trains the same steps on the cosine schedule and is
    evaluated only at its last 3 checkpoints, on the test episodes."""
    from sir import training
    from sir.dagger import loop as loop_module
    from sir.dagger import record as record_module
    from sir.data import collect as collect_module
    from sir.data.record.runner import RecordingResult

    trained, looped, recorded = [], [], []
    last_k = {"success_mean": 0.5, "steps": [800, 900, 1000], "rates": [0.5, 0.5, 0.5], "first_seed": 1_000_000,
              "episode_successes": [3, 0]}

    def train(cfg):
        trained.append(cfg)
        folder = Path(cfg.checkpoint_dir) / cfg.run_name
        return SimpleNamespace(best_model=folder / "best_model", final_model=folder / "final_model",
                               frames_per_dataset={"pool": 100}, best_metrics={"success_rate": 0.9}, last_k=last_k)

    def run_rounds(cfg):
        looped.append(cfg)
        return SimpleNamespace(rows=[{}, {"round": 1, "labels_given": 150, "training_steps": 2000,
                                          "last_k_success": 0.6, "last_k_steps": "1800 1900 2000",
                                          "episode_successes": "3 1", "autonomous_success_rate": 0.25}])

    def record_corrections(cfg):
        recorded.append(cfg)
        return RecordingResult(path=Path(cfg.root) / cfg.repo_id, episodes=2)

    monkeypatch.setattr(training, "train", train)
    monkeypatch.setattr(loop_module, "run_rounds", run_rounds)
    monkeypatch.setattr(record_module, "record_corrections", record_corrections)
    monkeypatch.setattr(collect_module, "collect", lambda cfg: SimpleNamespace(episode_lengths=[50] * 8))
    data, out = tmp_path / "data", tmp_path / "out"
    cfg = experiment.parse_config(["--env", "Lift", "--small-demos", "2", "--rounds", "1", "--seeds", "3",
                                   "--modes", "iwr,sirius", "--batch-size", "8", "--root", str(data),
                                   "--out", str(out), "--train-args", "--lr 1e-3",
                                   "--record-args", "--oracle-deviation 0.5"])
    saved = []
    experiment._run_seed(cfg, 3, [], saved.append)
    runs = dataclasses.replace(cfg.loop.train, checkpoint_dir=str(out), seed=3, overwrite=True, select_top_k=0,
                               eval_start=1800, async_eval=False)  # every one of the last 3 checkpoints evaluated
    assert runs.lr == 1e-3 and runs.batch_size == 8 and runs.lr_schedule == "cosine"
    assert (runs.training_steps, runs.eval_freq, runs.last_k) == (2000, 100, 3)
    assert (runs.eval_seed, runs.eval_episodes) == (1_000_000, 40)
    start = out / "bc_s3_r0" / "final_model"
    assert recorded == [RecordConfig(oracle_deviation=0.5, checkpoint=str(start), repo_id="shared_s3_r1",
                                     root=str(data), episodes=20, seed=51_003, auto_save_on_success=True,
                                     drop_failures=False)]
    assert [c.dagger_mode for c in looped] == ["iwr", "sirius"]
    for c in looped:
        assert c == dataclasses.replace(
            cfg.loop, demos=str(data / "lift_pool_s3"), demo_episodes="0:2", dagger_mode=c.dagger_mode,
            start_model=str(start), first_round=str(data / "shared_s3_r1"), deploy="final_model",
            train=dataclasses.replace(runs, run_name=f"{c.dagger_mode}_s3"))
        assert c.record == RecordConfig(oracle_deviation=0.5)
    # BC: round 0 on the small demos, round 1 on as many demos as reach the most labels given (150: 3 of 50).
    assert [(c.run_name, c.episodes) for c in trained] == [("bc_s3_r0", "lift_pool_s3=0:2"),
                                                           ("bc_s3_r1", "lift_pool_s3=0:3")]
    # Round 0 is before the last round: scored by its final checkpoint alone (--earlier-last-k 1).
    assert trained[0] == dataclasses.replace(runs, repo_ids=["lift_pool_s3"], root=str(data), last_k=1,
                                             eval_start=2000, episodes="lift_pool_s3=0:2", run_name="bc_s3_r0")
    # Every arm, BC and DAgger, the same steps and schedule; the last round's scored by its last 3 checkpoints
    # (the loop scores its own earlier rounds: loop.scored, tested with the loop).
    assert {(c.training_steps, c.lr_schedule) for c in [*trained, *(c.train for c in looped)]} == {(2000, "cosine")}
    assert trained[1].eval_start == 1800 and trained[1].last_k == 3 and {c.earlier_last_k for c in looped} == {1}
    rows = saved[-1]
    assert [(r["arm"], r["mode"], r["round"]) for r in rows] == [
        ("bc", "", 0), ("dagger", "iwr", 1), ("dagger", "sirius", 1), ("bc", "", 1)]
    # A model's score is the mean of its last checkpoints (not its best evaluation), with their per-episode outcomes.
    assert [r["success_rate"] for r in rows] == [0.5, 0.6, 0.6, 0.5]
    assert rows[0]["episode_successes"] == "3 0" and rows[1]["episode_successes"] == "3 1"
    assert {r["training_steps"] for r in rows} == {2000}
    # Run again with round 0 kept and its model on disk: the finished shared recording is kept.
    (data / "shared_s3_r1" / "meta").mkdir(parents=True)
    (data / "shared_s3_r1" / "meta" / "sir_info.json").write_text("{}")
    start.mkdir(parents=True)
    (start / "sir_checkpoint.json").write_text("{}")
    recorded.clear()
    experiment._run_seed(cfg, 3, rows[:1], saved.append)
    assert recorded == [] and [c.run_name for c in trained[2:]] == ["bc_s3_r1"]


def test_each_round_trains_and_records_from_the_loops_configs(tmp_path, monkeypatch):
    """Two rounds with fakes for training and recording: what each is called with."""
    from sir.envs.spec import default_spec

    demos = tmp_path / "data" / "demos"
    default_spec("Lift", horizon=90).save(demos / "meta")
    trained, recorded = fake_rounds(monkeypatch)
    cfg = loop.parse_config(["--env", "Lift", "--demos", str(demos), "--rounds", "1", "--seed", "2",
                             "--checkpoint-dir", str(tmp_path / "ck"), "--demo-episodes", "0:4",
                             "--train-args", "--lr 1e-3 --dagger-mode sirius", "--record-args", "--agree 0.3"])
    result = loop.run_rounds(cfg)
    base = tmp_path / "ck" / "dagger_demos"
    assert result.base_dir == base
    assert trained[0] == loop_training(lr=1e-3, seed=2, repo_ids=["demos"], root=str(tmp_path / "data"),
                                       training_steps=600, max_steps=90, checkpoint_dir=str(base), run_name="round_0",
                                       overwrite=True, dagger_mode="sirius", episodes="demos=0:4")
    assert trained[1] == dataclasses.replace(trained[0], repo_ids=["demos", "dagger_demos_r1"], run_name="round_1")
    assert recorded == [RecordConfig(agree=0.3, checkpoint=str(base / "round_0" / "best_model"),
                                     repo_id="dagger_demos_r1", root=str(tmp_path / "data"), episodes=20,
                                     seed=51_002, auto_save_on_success=True, drop_failures=True)]
    # --earlier-last-k 1: the rounds before the last are scored by their final checkpoint alone, the last as before.
    before = list(trained)
    trained.clear()
    loop.run_rounds(dataclasses.replace(cfg, earlier_last_k=1, train=dataclasses.replace(cfg.train, overwrite=True)))
    assert trained[0] == dataclasses.replace(before[0], last_k=1, eval_start=600, overwrite=True)
    assert trained[1] == dataclasses.replace(before[1], overwrite=True)


def test_round_1_shared_by_the_modes_trains_on_the_episodes_each_modes_own_recording_would_keep(tmp_path, monkeypatch):
    """--first-round: one recording of the start model's deployments, every one kept; each mode
    trains round 1 on the episodes its own recording would have saved, at the same labels given,
    then records round 2 with its own final_model (--deploy final_model)."""
    from sir.envs.spec import default_spec
    from sir.errors import UserError

    data = tmp_path / "data"
    default_spec("Lift", horizon=90).save(data / "demos" / "meta")
    start = tmp_path / "bc_r0" / "final_model"
    start.mkdir(parents=True)
    (start / "sir_checkpoint.json").write_text(json.dumps({
        "metrics": {"success_rate": 0.3}, "datasets": [{"repo_id": "demos", "frames": 400}],
        "last_k": {"success_mean": 0.25, "steps": [8, 9, 10], "rates": [0.5, 0.0, 0.25], "first_seed": 1_000_000,
                   "episode_successes": [2, 0, 1, 0]}}))
    runs = [  # corrected success, the policy's own success, corrected failure, failure never taken over
        {"success": True, "takeover_step": 5, "saved": True, "frames": 40, "corrections": [{"steps": 10}]},
        {"success": True, "takeover_step": None, "saved": True, "frames": 30, "corrections": []},
        {"success": False, "takeover_step": 3, "saved": True, "frames": 50, "corrections": [{"steps": 20}]},
        {"success": False, "takeover_step": None, "saved": False, "frames": 50, "corrections": []}]
    shared = data / "shared_s2_r1"
    (shared / "meta").mkdir(parents=True)
    (shared / "meta" / "sir_info.json").write_text(json.dumps({
        "checkpoint": str(start.resolve()), "drop_failures": False, "auto_save_on_success": True, "episodes": runs,
        "interventions": 2, "policy_successes": 1, "corrected_successes": 1, "takeovers": 2,
        "deployment_frames": 170, "corrector_frames": 30}))
    trained, recorded = fake_rounds(monkeypatch, last_k={"success_mean": 0.5, "steps": [9, 10], "rates": [0.5, 0.5],
                                                         "first_seed": 1_000_000, "episode_successes": [2, 0]})
    kept = {"successful-corrections": "0,1", "hg-dagger": "0,1,2", "iwr": "0,1", "sirius": "0,1"}
    for mode, episodes in kept.items():
        trained.clear()
        recorded.clear()
        cfg = LoopConfig(env="Lift", demos=str(data / "demos"), demo_episodes="0:4", rounds=2, dagger_mode=mode,
                         start_model=str(start), first_round=str(shared), deploy="final_model",
                         train=loop_training(seed=2, checkpoint_dir=str(tmp_path / "ck"), run_name=f"{mode}_s2"))
        result = loop.run_rounds(cfg)
        assert shared.is_dir(), "the shared recording was removed"
        assert [c.run_name for c in trained] == ["round_1", "round_2"]
        assert trained[0].repo_ids == ["demos", "shared_s2_r1"]
        assert trained[0].episodes == f"demos=0:4,shared_s2_r1={episodes}"
        # Round 2: the mode's own recording, of its round-1 final_model, on round 2's seeds.
        assert [(r.checkpoint, r.repo_id, r.seed) for r in recorded] == [
            (str(tmp_path / "ck" / f"{mode}_s2" / "round_1" / "final_model"), f"{mode}_s2_r2", 52_002)]
        assert trained[1].episodes == trained[0].episodes and trained[1].repo_ids[-1] == f"{mode}_s2_r2"
        one = result.rows[1]
        # Every mode was given the same labels in round 1: the demos' and every corrector frame.
        assert one["labels_given"] == 100 + 30 and result.rows[2]["labels_given"] == 100 + 30 + 10
        assert (one["deployments"], one["intervention_ratio"], one["autonomous_success_rate"]) == (4, 30 / 170, 0.25)
        assert one["saved_episodes"] == len(episodes.split(","))
        assert (one["last_k_success"], one["last_k_steps"], one["episode_successes"]) == (0.5, "9 10", "2 0")
        assert result.rows[0]["episode_successes"] == "2 0 1 0"
    # A recording of another model's deployments is refused in one sentence.
    other = dataclasses.replace(cfg, start_model=str(tmp_path / "elsewhere"))
    with pytest.raises(UserError, match="holds the deployments of"):
        loop.run_rounds(other)


def fake_rounds(monkeypatch, last_k=None):
    """Fakes for the loop's training and recording: the configs they are called with, in order."""
    from sir import training
    from sir.dagger import record as record_module
    from sir.data.record.runner import RecordingResult

    trained, recorded = [], []

    def train(cfg):
        trained.append(cfg)
        return SimpleNamespace(best_model=Path(cfg.checkpoint_dir) / cfg.run_name / "best_model",
                               final_model=Path(cfg.checkpoint_dir) / cfg.run_name / "final_model", last_k=last_k,
                               frames_per_dataset={r: 100 for r in cfg.repo_ids}, best_metrics={"success_rate": 0.5})

    def record_corrections(cfg):
        recorded.append(cfg)
        return RecordingResult(path=Path(cfg.root) / cfg.repo_id, episodes=2, frames=80, tried=2, successes=2,
                               corrected_successes=1, human_frames=10, deployment_frames=80, corrector_frames=10)

    monkeypatch.setattr(training, "train", train)
    monkeypatch.setattr(record_module, "record_corrections", record_corrections)
    return trained, recorded
