"""Every registered policy either trains for real here or stops with one clear sentence.

Trainable policies: a tiny model trains through sir.training.train_policy on recorded Lift
demos (state only, or one small camera where the policy needs one), its loss goes down, it
is saved, reloaded from best_model, and drives the Robosuite env its EnvSpec describes.
Policies this machine cannot build (hub weights not cached, online-only RL, missing
packages) are checked for their message, with an empty Hugging Face cache so the result
does not depend on what happens to be cached.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sir.envs.factory import action_dim, make_env, observation_to_features, reset_env
from sir.errors import UserError
from sir.eval.rollout import to_policy_batch
from sir.policies import POLICIES, build_config, policy_table
from sir.policies.checkpoint import load_checkpoint
from sir.training.train_policy import main as train

# policy -> (dataset fixture, training steps, extra flags, first step whose loss is the
# policy's own objective). VQ-BeT first fits its VQ-VAE (tiny preset: 30 steps) and only
# then trains the GPT on a loss of another scale, so its loss is compared after the switch.
TRAINABLE = {
    "act": ("lift_demos", 20, [], 1),
    # Its noise-prediction loss falls slowly and noisily at the tiny size: a larger batch and
    # more steps, compared over the first and last 10 (at batch 8 and 20 steps, the sample
    # order alone decided whether the last 3 came out below the first 3).
    "diffusion": ("lift_demos", 60, ["--batch-size", "32"], 1),
    "tdmpc": ("lift_demos", 20, [], 1),
    "vqbet": ("policies_camera_demos", 50, ["--batch-size", "4"], 31),
}
NOT_BUILDABLE_HERE = ("sac", "pi0", "pi05", "pi0_fast", "smolvla", "groot", "xvla", "wall_x")


def test_every_registered_policy_is_covered_by_the_matrix():
    assert set(TRAINABLE) | set(NOT_BUILDABLE_HERE) == set(POLICIES)


@pytest.fixture(scope="module", params=sorted(TRAINABLE))
def tiny_run(request, tmp_path_factory):
    name = request.param
    fixture, steps, extra, objective_from = TRAINABLE[name]
    root, repo_id = request.getfixturevalue(fixture)
    run_dir = train([
        "--repo-ids", repo_id, "--root", str(root), "--policy", name, "--preset", "tiny",
        "--training-steps", str(steps), "--eval-freq", "0", "--eval-episodes", "1", "--max-steps", "5",
        "--batch-size", "8", "--log-freq", "1", "--checkpoint-dir", str(tmp_path_factory.mktemp(f"ckpt_{name}")),
        *extra,
    ])
    return name, run_dir, objective_from


def _losses(run_dir, from_step: int) -> list[float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in records if "train/loss" in r and r["step"] >= from_step]


@pytest.mark.slow
def test_tiny_policy_trains_with_its_loss_going_down(tiny_run):
    name, run_dir, objective_from = tiny_run
    losses = _losses(run_dir, objective_from)
    assert len(losses) >= 10, name
    assert np.isfinite(losses).all(), name
    k = max(3, len(losses) // 6)
    assert np.mean(losses[-k:]) < np.mean(losses[:k]), f"{name}: {losses}"


@pytest.mark.slow
def test_tiny_policy_reloads_from_best_model_and_drives_the_env(tiny_run):
    name, run_dir, _ = tiny_run
    policy, pre, post, spec, info = load_checkpoint(run_dir / "best_model", device="cpu")
    assert policy.config.type == name
    assert info["policy"] == name
    env = make_env(spec)
    try:
        obs = reset_env(env, 123)
        policy.eval()
        policy.reset()
        with torch.no_grad():
            for _ in range(3):
                features = observation_to_features(obs, spec)
                action = post(policy.select_action(pre(to_policy_batch(features, spec.task))))
                action = action.squeeze(0).numpy()
                assert action.shape == (action_dim(env),), name
                assert np.isfinite(action).all(), name
                obs, *_ = env.step(action)
    finally:
        env.close()


@pytest.mark.slow
def test_camera_policy_sees_the_recorded_camera_at_its_size(tiny_run):
    name, run_dir, _ = tiny_run
    if name != "vqbet":
        pytest.skip("state-only run")
    policy, *_rest, spec, _info = load_checkpoint(run_dir / "best_model", device="cpu")
    assert spec.cameras == ["agentview"]
    assert tuple(policy.config.input_features["observation.images.agentview"].shape) == (3, 16, 16)
    # VQ-BeT's model has no input for the environment state: the registry leaves it out.
    assert "observation.environment_state" not in policy.config.input_features


@pytest.mark.slow
def test_pretrained_path_starts_from_the_saved_weights(tiny_run):
    name, run_dir, _ = tiny_run
    if name != "act":
        pytest.skip("one policy shows the mechanism")
    from lerobot.policies.factory import get_policy_class

    saved, *_ = load_checkpoint(run_dir / "best_model", device="cpu")
    cfg = build_config("act", "default", saved.config.input_features, saved.config.output_features, "cpu",
                       pretrained_path=run_dir / "best_model", lr=1e-4)
    assert cfg.dim_model == saved.config.dim_model  # the checkpoint's size, not the default preset's
    assert cfg.optimizer_lr == 1e-4
    loaded = get_policy_class("act").from_pretrained(cfg.pretrained_path, config=cfg)
    for (key, a), b in zip(saved.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), key


# -- policies that cannot be built here: their one sentence ---------------------------------


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def _features(camera: bool = True):
    from lerobot.configs.types import FeatureType, PolicyFeature

    inputs = {"observation.state": PolicyFeature(FeatureType.STATE, (9,)),
              "observation.environment_state": PolicyFeature(FeatureType.ENV, (10,))}
    if camera:
        inputs["observation.images.agentview"] = PolicyFeature(FeatureType.VISUAL, (3, 84, 84))
    return inputs, {"action": PolicyFeature(FeatureType.ACTION, (7,))}


def _one_sentence(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message
    assert message.rstrip().endswith(".")


@pytest.mark.parametrize("name, model_id", [
    ("pi0", "lerobot/pi0_base"),
    ("pi05", "lerobot/pi05_base"),
    ("pi0_fast", "lerobot/pi0fast-base"),
    ("smolvla", "lerobot/smolvla_base"),
    ("xvla", "lerobot/xvla-base"),
])
def test_pretrained_vla_without_cached_weights_names_the_model_and_how_to_provide_it(name, model_id, empty_hf_cache):
    inputs, outputs = _features()
    with pytest.raises(UserError) as err:
        build_config(name, "default", inputs, outputs, "cpu")
    message = str(err.value)
    assert model_id in message and "--pretrained-path" in message and "Hugging Face cache" in message
    _one_sentence(message)


@pytest.mark.parametrize("name", ["pi0", "pi05", "pi0_fast", "smolvla", "xvla"])
def test_pretrained_vla_has_no_small_preset(name):
    inputs, outputs = _features()
    with pytest.raises(UserError, match=f"Policy '{name}' has no 'tiny' preset"):
        build_config(name, "tiny", inputs, outputs, "cpu")


def test_pi0_given_a_local_checkpoint_still_needs_the_paligemma_tokenizer(tmp_path, empty_hf_cache):
    from lerobot.policies.pi0.configuration_pi0 import PI0Config

    PI0Config(device="cpu")._save_pretrained(tmp_path)
    inputs, outputs = _features()
    with pytest.raises(UserError) as err:
        build_config("pi0", "default", inputs, outputs, "cpu", pretrained_path=tmp_path)
    assert "google/paligemma-3b-pt-224" in str(err.value) and "tokenizer" in str(err.value)
    _one_sentence(str(err.value))


def test_groot_without_cached_weights_names_them(empty_hf_cache):
    inputs, outputs = _features()
    with pytest.raises(UserError, match="nvidia/GR00T-N1.5-3B"):
        build_config("groot", "default", inputs, outputs, "cpu")


def test_wall_x_names_its_missing_packages():
    from sir.policies.availability import missing_packages

    if not missing_packages(POLICIES["wall_x"].packages):
        pytest.skip("wall_x's packages are installed here")
    inputs, outputs = _features()
    with pytest.raises(UserError, match="needs the Python package"):
        build_config("wall_x", "default", inputs, outputs, "cpu")


def test_sac_says_why_it_does_not_train_from_datasets():
    inputs, outputs = _features()
    with pytest.raises(UserError) as err:
        build_config("sac", "default", inputs, outputs, "cpu")
    assert "learns online" in str(err.value) and "--policy tdmpc" in str(err.value)
    _one_sentence(str(err.value))


def test_list_policies_table_says_what_each_needs_and_whether_it_builds_here(empty_hf_cache):
    table = policy_table()
    for name in POLICIES:
        assert f"\n{name} " in table
    row = {line.split()[0]: line for line in table.splitlines() if line.split()}
    assert "not in HF cache: lerobot/pi0_base" in row["pi0"]
    assert "tiny/cpu/default" in row["act"] and row["diffusion"].rstrip().endswith("yes")
    assert "next.reward" in row["tdmpc"] and "exactly 1 camera" in row["vqbet"]
    assert "online RL" in row["sac"]


@pytest.mark.slow
@pytest.mark.parametrize("name, dataset, expected", [
    ("pi0", "policies_camera_demos", "weights lerobot/pi0_base"),
    ("pi0", "lift_demos", "needs at least one camera image"),
    ("sac", "lift_demos", "learns online"),
])
def test_trainer_stops_with_the_sentence_and_exit_code_2(name, dataset, expected, request, tmp_path, empty_hf_cache,
                                                         capsys):
    root, repo_id = request.getfixturevalue(dataset)
    with pytest.raises(SystemExit) as exc:
        train(["--repo-ids", repo_id, "--root", str(root), "--policy", name, "--training-steps", "1",
               "--checkpoint-dir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_trainer_lists_the_policies(capsys, empty_hf_cache):
    assert train(["--list-policies"]) is None
    out = capsys.readouterr().out
    assert all(f"\n{name} " in out for name in POLICIES)
