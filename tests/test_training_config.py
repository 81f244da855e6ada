"""TrainConfig: the command line, config files and the saved train_config.json map to one
dataclass; the library function under the CLI returns what the run produced."""

import dataclasses
import json

import pytest

from sir.config import flags_given, to_flags
from sir.errors import UserError
from sir.training import RunResult, TrainConfig, train
from sir.training.config import build_parser, check, config_to_save, load_config_file, parse_config


def test_every_flag_is_a_field_and_every_field_a_flag():
    dests = set(vars(build_parser().parse_args([]))) - {"config", "list_policies"}
    # cli=False marks what check() derives (the parsed --policy-args), never given as a flag.
    assert dests == {f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("cli", True)}
    assert [f.name for f in dataclasses.fields(TrainConfig) if not f.metadata.get("cli", True)] == ["policy_overrides"]


def test_the_command_line_parses_into_the_dataclass():
    cfg, listing = parse_config(["--repo-ids", "a, b", "--batch-size", "8", "--lr", "1e-3", "--save-video"])
    assert not listing
    assert cfg == TrainConfig(repo_ids=["a", "b"], batch_size=8, lr=1e-3, save_video=True)


def test_help_names_each_default_once():
    text = build_parser().format_help()
    assert "(default: 0) (default: 0)" not in text
    assert "(default: 16)" in text  # --batch-size


def test_a_config_file_may_not_set_an_unknown_setting(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("repo_ids: [a]\nbatch_sise: 8\n")
    with pytest.raises(UserError, match="batch_sise"):
        load_config_file(path)


def test_a_config_file_value_of_the_wrong_type_is_refused_by_name(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"repo_ids": "a", "training_steps": "many"}))
    with pytest.raises(UserError, match="training_steps"):
        load_config_file(path)


def test_saved_settings_load_back_into_an_equal_config(tmp_path):
    cfg = TrainConfig(repo_ids=["a", "b"], policy="act", preset="cpu", lr=2e-4, eval_freq=0, overwrite=True)
    saved = config_to_save(cfg, device="cpu")
    path = tmp_path / "train_config.json"
    path.write_text(json.dumps(saved))
    # Launch-only settings (--overwrite, --resume) are not carried over to a new run.
    assert TrainConfig(**load_config_file(path)) == dataclasses.replace(cfg, overwrite=False)


@pytest.mark.parametrize("bad, flag", [
    ({"lr": 0.0}, "--lr"), ({"lr": float("nan")}, "--lr"), ({"batch_size": 0}, "--batch-size"),
    ({"num_workers": -1}, "--num-workers"), ({"eval_freq": -5}, "--eval-freq"),
])
def test_impossible_values_are_refused_in_one_sentence_naming_the_flag(bad, flag):
    with pytest.raises(UserError, match=flag):
        train(TrainConfig(repo_ids=["a"], **bad))


def test_a_string_of_flags_gives_only_the_settings_it_names():
    assert flags_given(TrainConfig, "--lr 1e-3 --episodes a=0:2 --no-async-eval --save-video", "--train-args") == {
        "lr": 1e-3, "episodes": "a=0:2", "async_eval": False, "save_video": True}
    assert flags_given(TrainConfig, "", "--train-args") == {}
    with pytest.raises(UserError, match="--no-such-flag"):
        flags_given(TrainConfig, "--no-such-flag 3", "--train-args")
    with pytest.raises(UserError, match="--train-args: argument --lr: invalid float value: 'fast'"):
        flags_given(TrainConfig, "--lr fast", "--train-args")
    with pytest.raises(UserError, match="quotes"):
        flags_given(TrainConfig, "--run-name 'a b", "--train-args")


def test_flags_written_for_a_config_read_back_into_it():
    base = TrainConfig(preset="cpu")
    cfg = dataclasses.replace(base, lr=1e-3, state_keys=["a", "b"], async_eval=False, save_video=True,
                              run_name="a b", eval_freq=0, ema_decay=0.9999)
    text = to_flags(cfg, base)
    assert "--preset" not in text  # only what differs from the base
    assert dataclasses.replace(base, **flags_given(TrainConfig, text, "--train-args")) == cfg
    assert to_flags(base, base) == ""


@pytest.mark.slow
def test_train_from_python_returns_the_run(lift_demos, tmp_path):
    root, repo_id = lift_demos
    result = train(TrainConfig(repo_ids=[repo_id], root=str(root), policy="act", preset="tiny", batch_size=8,
                               training_steps=4, eval_freq=2, eval_episodes=1, max_steps=5,
                               checkpoint_dir=str(tmp_path)))
    assert isinstance(result, RunResult)
    assert result.run_dir == tmp_path / f"act_{repo_id}"
    assert result.final_model == result.run_dir / "final_model" and result.final_model.is_dir()
    saved = json.loads((result.best_model / "sir_checkpoint.json").read_text())
    assert (result.best_step, result.best_metrics["success_rate"]) == (saved["step"], saved["metrics"]["success_rate"])
    assert result.best_step in (2, 4)
    assert result.frames_per_dataset == {repo_id: saved["datasets"][0]["frames"]}
    assert result.env_spec.env_name == "Lift"


def test_train_refuses_sequential_rather_than_training_one_mixed_run():
    with pytest.raises(UserError, match="run_sequential"):
        train(TrainConfig(repo_ids=["a", "b"], sequential=True))


def test_check_parses_repo_ids_and_policy_args_once_into_the_config():
    cfg = check(TrainConfig(repo_ids="a, b", policy="diffusion", policy_args="kernel_size=3 down_dims=[8,16]"))
    assert cfg.repo_ids == ["a", "b"]
    assert cfg.policy_overrides == {"kernel_size": 3, "down_dims": (8, 16)}
    with pytest.raises(UserError, match="down_dims"):  # a setting of another policy, refused before any data
        check(TrainConfig(repo_ids="a", policy_args="down_dims=[8,16]"))
    assert "policy_overrides" not in config_to_save(cfg)


def test_async_eval_is_decided_at_run_time_unless_a_flag_or_file_says_it(tmp_path):
    assert parse_config(["--repo-ids", "a"])[0].async_eval is None
    assert parse_config(["--repo-ids", "a", "--async-eval"])[0].async_eval is True
    assert parse_config(["--repo-ids", "a", "--no-async-eval"])[0].async_eval is False
    path = tmp_path / "run.yaml"
    path.write_text("repo_ids: a\nasync_eval: false\n")
    assert parse_config(["--config", str(path)])[0].async_eval is False
    assert parse_config(["--config", str(path), "--async-eval"])[0].async_eval is True


def test_evaluation_runs_beside_training_by_default_only_with_cores_to_spare(monkeypatch):
    import torch

    from sir.eval import pool
    from sir.training.evaluation import in_background

    cfg = parse_config(["--repo-ids", "a"])[0]
    monkeypatch.setattr(pool, "default_workers", lambda: 4)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert in_background(cfg, "cpu") == (False, None)  # torch keeps every core busy
    assert in_background(cfg, "cuda") == (True, 3)  # beside a GPU the loop needs one core
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert in_background(cfg, "cpu") == (True, 3)
    cfg.num_workers = 3
    assert in_background(cfg, "cpu") == (False, None)  # the DataLoader's workers take the rest
    cfg.async_eval, cfg.eval_workers = True, 2
    assert in_background(cfg, "cpu") == (True, 2)


def test_evaluations_come_every_eval_freq_steps_from_eval_start_and_at_the_last_step():
    from sir.training.config import evaluation_due

    cfg = TrainConfig(repo_ids=["a"], training_steps=1000, eval_freq=100, eval_start=800)
    assert [s for s in range(1, 1001) if evaluation_due(cfg, s)] == [800, 900, 1000]
    every = dataclasses.replace(cfg, eval_start=0)
    assert [s for s in range(1, 1001) if evaluation_due(every, s)] == list(range(100, 1001, 100))
    assert [s for s in range(1, 1001) if evaluation_due(dataclasses.replace(cfg, eval_freq=0), s)] == [1000]
