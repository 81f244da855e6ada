"""Model folders saved by lerobot 0.6.1 load in sir (lerobot 0.4.4): evaluated end to end,
fine-tuned with --policy-path and corrected by sir.dagger.record.

The config and processor JSON files are lerobot 0.6.1's own output
(tests/fixtures/lerobot_0.6.1, written by its make_fixtures.py with lerobot 0.6.1); the
weights and the normalizers' state files come from a sir model of the same shapes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "lerobot_0.6.1"
NEW_IN_061 = {"act": {"pretrained_revision"}, "diffusion": {"pretrained_revision", "gradient_checkpointing"}}


@pytest.fixture(scope="module")
def sir_models(lift_demos, tmp_path_factory):
    """{policy: folder} of untrained tiny ACT and Diffusion saved by sir on lift_demos' features."""
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.utils import dataset_to_policy_features
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    from sir.data import make_mixture
    from sir.data.mixture.config import DataConfig
    from sir.policies import build_config
    from sir.policies.checkpoint import save_checkpoint
    from sir.runtime import seed_everything

    root, repo_id = lift_demos
    mixture = make_mixture(DataConfig(repo_ids=repo_id, root=root), verbose=False)
    features = dataset_to_policy_features(mixture.features)
    outputs = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    inputs = {k: f for k, f in features.items() if k not in outputs}
    spec = next(s for s in mixture.env_specs if s is not None)
    base = tmp_path_factory.mktemp("sir_models")
    folders = {}
    for name in ("act", "diffusion"):
        seed_everything(0)
        cfg = build_config(name, "tiny", inputs, outputs, "cpu")
        policy = make_policy(cfg, ds_meta=mixture)
        pre, post = make_pre_post_processors(cfg, dataset_stats=mixture.stats)
        folders[name] = save_checkpoint(base / name, policy, pre, post, spec, {"step": 3})
    return folders


def lerobot_061_folder(sir_folder: Path, name: str, dest: Path, **config: object) -> Path:
    """A model folder as lerobot 0.6.1 saves it (no sir files): 0.6.1's JSON files, with
    ``config`` set in config.json, and the sir model's weights and normalizer states."""
    dest.mkdir(parents=True)
    for file in sir_folder.glob("*.safetensors"):
        shutil.copyfile(file, dest / file.name)
    for file in (FIXTURES / name).glob("*.json"):
        shutil.copyfile(file, dest / file.name)
    if config:
        path = dest / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **config}, indent=4))
    return dest


@pytest.mark.parametrize("name", ["act", "diffusion"])
def test_the_fixtures_are_sirs_models_as_0_6_1_writes_them(sir_models, name):
    """The 0.6.1 files describe the sir model whose weights they are given: the same config
    values plus 0.6.1's new keys, and processor files identical in schema and content."""
    ours = json.loads((sir_models[name] / "config.json").read_text())
    theirs = json.loads((FIXTURES / name / "config.json").read_text())
    assert set(theirs) - set(ours) == NEW_IN_061[name]
    assert {k: v for k, v in theirs.items() if k not in NEW_IN_061[name]} == ours
    for file in ("policy_preprocessor.json", "policy_postprocessor.json"):
        assert json.loads((FIXTURES / name / file).read_text()) == json.loads((sir_models[name] / file).read_text())


def test_lerobot_0_4_4_alone_refuses_a_0_6_1_config(sir_models, tmp_path):
    """Why sir drops keys: lerobot 0.4.4's decoder refuses them (if this starts passing, the
    pinned lerobot reads 0.6 configs itself and sir.policies.newer_lerobot can go)."""
    import lerobot.policies.factory  # noqa: F401
    from lerobot.configs.policies import PreTrainedConfig

    folder = lerobot_061_folder(sir_models["diffusion"], "diffusion", tmp_path / "m")
    with pytest.raises(Exception, match="pretrained_revision"):
        PreTrainedConfig.from_pretrained(folder)


@pytest.mark.parametrize("name", ["act", "diffusion"])
def test_a_0_6_1_folder_loads_as_the_model_it_saved(sir_models, name, tmp_path, capsys):
    import torch

    from sir.envs.spec import EnvSpec
    from sir.policies.checkpoint import load_checkpoint

    spec = EnvSpec.load(sir_models[name])
    # gradient_checkpointing on: only training memory differs, so it loads too.
    changes = {"gradient_checkpointing": True} if name == "diffusion" else {}
    folder = lerobot_061_folder(sir_models[name], name, tmp_path / "pretrained_model", **changes)
    policy, pre, post, _, info = load_checkpoint(folder, device="cpu", spec=spec)
    lines = [line for line in capsys.readouterr().out.splitlines() if "newer lerobot" in line]
    assert len(lines) == 1 and lines[0].startswith(str(folder / "config.json"))
    line = lines[0]
    assert all(key in line for key in NEW_IN_061[name])
    want, want_pre, want_post, _, _ = load_checkpoint(sir_models[name], device="cpu")
    assert policy.config == want.config and info == {}
    assert all(torch.equal(a, b) for a, b in zip(policy.state_dict().values(), want.state_dict().values(), strict=True))
    batch = {"observation.state": torch.randn(9), "observation.environment_state": torch.randn(10)}
    torch.manual_seed(0)
    got = post(policy.select_action(pre(batch)))
    torch.manual_seed(0)
    assert torch.equal(got, want_post(want.select_action(want_pre(batch))))


@pytest.mark.parametrize("name", ["act", "diffusion"])
def test_a_0_6_1_folder_evaluates_end_to_end_as_the_sir_model(sir_models, name, tmp_path, capsys):
    from sir.eval.evaluate import main

    folder = lerobot_061_folder(sir_models[name], name, tmp_path / "pretrained_model")
    args = ["--episodes", "2", "--max-steps", "6", "--workers", "1", "--device", "cpu"]
    theirs = main(["--checkpoint", str(folder), "--env", "Lift", *args])
    out = capsys.readouterr().out
    assert "saved by a newer lerobot; dropped" in out and "pretrained_revision" in out
    assert theirs["episodes"] == 2 and theirs["avg_length"] == 6.0
    ours = main(["--checkpoint", str(sir_models[name]), "--output-dir", str(tmp_path / "ours"), *args])
    if name == "act":  # deterministic at inference: the same model gives the same rollouts
        assert [e["reward"] for e in theirs["per_episode"]] == [e["reward"] for e in ours["per_episode"]]


def test_a_0_6_1_folder_fine_tunes_with_policy_path(sir_models, lift_demos, tmp_path, capsys):
    from sir.training.train_policy import main as train

    root, repo_id = lift_demos
    folder = lerobot_061_folder(sir_models["act"], "act", tmp_path / "pretrained_model")
    train(["--repo-ids", repo_id, "--root", str(root), "--policy-path", str(folder), "--batch-size", "4",
           "--training-steps", "2", "--no-eval", "--log-freq", "1", "--device", "cpu",
           "--checkpoint-dir", str(tmp_path / "runs"), "--run-name", "tuned"])
    assert "dropped" in capsys.readouterr().out
    saved = json.loads((tmp_path / "runs" / "tuned" / "final_model" / "config.json").read_text())
    assert "pretrained_revision" not in saved and saved["dim_model"] == 32  # written by sir's lerobot


def test_a_0_6_1_folder_records_dagger_corrections(sir_models, tmp_path, capsys):
    from sir.dagger.record import main as record

    folder = lerobot_061_folder(sir_models["act"], "act", tmp_path / "pretrained_model")
    # The oracle's trigger at its tightest: a takeover, so an episode to save, within 12 steps.
    args = ["--checkpoint", str(folder), "--episodes", "1", "--max-steps", "12", "--oracle-deviation", "0",
            "--oracle-deviation-steps", "1", "--root", str(tmp_path / "data"), "--repo-id", "dagger061",
            "--device", "cpu"]
    with pytest.raises(SystemExit) as exc:
        record(args)
    assert exc.value.code == 2 and "--env" in capsys.readouterr().err
    path = record([*args, "--env", "Lift"])
    assert "dropped" in capsys.readouterr().out
    info = json.loads((path / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 1 and "source" in info["features"]


def _refused(main, args, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "Traceback" not in err and err.count("\n") == 0
    return err


def test_a_setting_sir_does_not_know_is_refused_by_name(sir_models, tmp_path, capsys):
    from sir.eval.evaluate import main

    folder = lerobot_061_folder(sir_models["act"], "act", tmp_path / "m", action_smoothing=0.5)
    err = _refused(main, ["--checkpoint", str(folder), "--env", "Lift", "--episodes", "1"], capsys)
    assert "'action_smoothing'" in err and "pretrained_revision" not in err


def test_a_setting_that_changes_the_model_is_refused_and_its_off_value_dropped(tmp_path, capsys):
    """0.6.0's PI0 use_relative_actions: on, the model's actions mean something 0.4.4 cannot
    compute; off (0.6.1's default), the config reads as 0.4.4's PI0 config."""
    from lerobot.policies.pi0.configuration_pi0 import PI0Config

    from sir.errors import UserError
    from sir.policies.checkpoint import read_config

    for value in (True, False):
        folder = tmp_path / str(value)
        folder.mkdir()
        raw = json.loads((FIXTURES / "pi0" / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**raw, "use_relative_actions": value}))
        if value:
            with pytest.raises(UserError, match="sets use_relative_actions to true") as exc:
                read_config(folder)
            assert "0.6.0" in str(exc.value)
        else:
            cfg = read_config(folder)
            assert isinstance(cfg, PI0Config) and cfg.chunk_size == raw["chunk_size"]
            line = capsys.readouterr().out
            assert all(k in line for k in ("use_relative_actions", "relative_exclude_joints", "action_feature_names"))


def test_a_processor_step_of_a_newer_lerobot_is_refused_by_name(sir_models, tmp_path, capsys):
    from sir.eval.evaluate import main

    folder = lerobot_061_folder(sir_models["act"], "act", tmp_path / "m")
    path = folder / "policy_preprocessor.json"
    pipeline = json.loads(path.read_text())
    pipeline["steps"].insert(3, {"registry_name": "relative_actions_processor", "config": {"enabled": True}})
    path.write_text(json.dumps(pipeline))
    err = _refused(main, ["--checkpoint", str(folder), "--env", "Lift", "--episodes", "1"], capsys)
    assert "'relative_actions_processor'" in err and "policy_preprocessor.json" in err
