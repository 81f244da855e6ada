import pytest
from lerobot.configs.types import FeatureType, PolicyFeature

from sir.errors import UserError
from sir.policies import build_config

STATE = {"observation.state": PolicyFeature(FeatureType.STATE, (9,)),
         "observation.environment_state": PolicyFeature(FeatureType.ENV, (10,))}
ACTION = {"action": PolicyFeature(FeatureType.ACTION, (7,))}


def test_generic_flags_map_onto_the_policy_config():
    cfg = build_config("act", "default", STATE, ACTION, "cpu", chunk_size=20, n_obs_steps=1, lr=3e-4)
    assert cfg.chunk_size == 20
    assert cfg.n_action_steps == 20  # follows the chunk down from lerobot's 100
    assert cfg.optimizer_lr == 3e-4 and cfg.optimizer_lr_backbone == 3e-4
    assert build_config("act", "tiny", STATE, ACTION, "cpu").dim_model < cfg.dim_model


def test_policy_args_set_lerobot_fields_over_the_preset_and_under_the_flags():
    from sir.policies.build import parse_policy_args

    args = parse_policy_args("dim_model=64 temporal_ensemble_coeff=0.01 n_action_steps=1 chunk_size=30")
    cfg = build_config("act", "cpu", STATE, ACTION, "cpu", chunk_size=12, policy_args=args)
    assert (cfg.dim_model, cfg.temporal_ensemble_coeff, cfg.n_action_steps) == (64, 0.01, 1)
    assert cfg.chunk_size == 12  # the generic flag wins over --policy-args
    assert cfg.n_heads == 4  # the rest of the cpu preset is kept
    diffusion = build_config("diffusion", "cpu", STATE, ACTION, "cpu",
                             policy_args=parse_policy_args("down_dims=[32,64]"))
    assert diffusion.down_dims == (32, 64)
    with pytest.raises(UserError, match="policy 'act' has no setting 'dim_modle'"):
        build_config("act", "cpu", STATE, ACTION, "cpu", policy_args=parse_policy_args("dim_modle=64"))
    with pytest.raises(UserError, match="'dim_model' has no '='"):
        parse_policy_args("dim_model")


def test_policy_args_of_the_wrong_type_are_refused_naming_the_field_value_and_type():
    from sir.policies.build import check_policy_args, parse_policy_args

    with pytest.raises(UserError, match=r"gives dim_model=abc, but dim_model of policy 'act' takes an integer "
                                        r"\(its default: dim_model=512\)"):
        build_config("act", "cpu", STATE, ACTION, "cpu", policy_args=parse_policy_args("dim_model=abc"))
    with pytest.raises(UserError, match=r"crop_shape=\[84\], but crop_shape of policy 'diffusion' takes a list of 2 "
                                        "integers or null"):
        check_policy_args("diffusion", parse_policy_args("crop_shape=[84]"))
    with pytest.raises(UserError, match="use_vae of policy 'act' takes true or false"):
        check_policy_args("act", parse_policy_args("use_vae=1"))
    # YAML reads 1e-4 (no dot) as text: a float field takes it as the number.
    assert check_policy_args("act", parse_policy_args("optimizer_lr=1e-4 temporal_ensemble_coeff=null")) == {
        "optimizer_lr": 1e-4, "temporal_ensemble_coeff": None}


def test_more_action_steps_than_the_chunk_is_refused():
    with pytest.raises(UserError, match="--n-action-steps 30 is larger than the action chunk"):
        build_config("act", "tiny", STATE, ACTION, "cpu", chunk_size=10, n_action_steps=30)


def test_act_without_image_or_environment_state_is_refused():
    with pytest.raises(UserError, match="needs a camera image or observation.environment_state"):
        build_config("act", "tiny", {"observation.state": STATE["observation.state"]}, ACTION, "cpu")


def test_unknown_policy_and_preset_are_refused():
    with pytest.raises(UserError, match="Unknown policy"):
        build_config("nope", "tiny", STATE, ACTION, "cpu")
    with pytest.raises(UserError, match="Unknown --preset"):
        build_config("act", "huge", STATE, ACTION, "cpu")


@pytest.mark.parametrize("name", ["act", "diffusion"])
def test_object_state_is_normalized_like_the_robot_state(name):
    """lerobot's normalizer passes a feature type missing from the mapping through raw; the
    object pose (a few centimetres of spread around 0.83 m) must reach the policy normalized."""
    import torch
    from lerobot.policies.factory import make_pre_post_processors

    cfg = build_config(name, "tiny", STATE, ACTION, "cpu")
    assert cfg.normalization_mapping["ENV"] == cfg.normalization_mapping["STATE"]

    env = torch.tensor([0.02, -0.01, 0.83] + [0.0] * 7)
    spread = torch.full((10,), 0.01)
    stats = {
        "observation.state": {"mean": torch.zeros(9), "std": torch.ones(9), "min": -torch.ones(9),
                              "max": torch.ones(9)},
        "observation.environment_state": {"mean": env, "std": spread, "min": env - spread, "max": env + spread},
        "action": {"mean": torch.zeros(7), "std": torch.ones(7), "min": -torch.ones(7), "max": torch.ones(7)},
    }
    preprocessor, _ = make_pre_post_processors(cfg, dataset_stats=stats)
    batch = {"observation.state": torch.zeros(1, 9), "observation.environment_state": (env + spread).unsqueeze(0),
             "action": torch.zeros(1, 7)}
    out = preprocessor(batch)["observation.environment_state"]
    assert torch.allclose(out, torch.ones_like(out), atol=1e-3)  # (x - mean) / std, or max of min-max to [-1, 1]


def test_a_mode_the_policy_chose_for_object_state_is_kept():
    cfg = build_config("tdmpc", "tiny", STATE, ACTION, "cpu")
    assert cfg.normalization_mapping["ENV"].value == "IDENTITY"


# -- needs the data must meet --------------------------------------------------------------

CAMERA = {"observation.images.agentview": PolicyFeature(FeatureType.VISUAL, (3, 84, 84))}
CAMERA_2 = {"observation.images.robot0_eye_in_hand": PolicyFeature(FeatureType.VISUAL, (3, 84, 84))}
ONLY_STATE = {"observation.state": STATE["observation.state"]}
RECORDED = {"next.reward": {"dtype": "float32", "shape": (1,), "names": None}}


def test_vqbet_needs_exactly_one_camera():
    with pytest.raises(UserError,
                       match="Policy 'vqbet' needs exactly one camera image; record the dataset with --cameras"):
        build_config("vqbet", "tiny", STATE, ACTION, "cpu")
    with pytest.raises(UserError, match="takes exactly one camera image but the data has 2"):
        build_config("vqbet", "tiny", {**STATE, **CAMERA, **CAMERA_2}, ACTION, "cpu")


def test_vqbet_leaves_out_the_environment_state_it_has_no_input_for():
    cfg = build_config("vqbet", "tiny", {**STATE, **CAMERA}, ACTION, "cpu")
    assert set(cfg.input_features) == {"observation.state", "observation.images.agentview"}


def test_tdmpc_needs_rewards_in_the_data():
    with pytest.raises(UserError, match="Policy 'tdmpc' learns from rewards but the data has no next.reward"):
        build_config("tdmpc", "tiny", STATE, ACTION, "cpu", dataset_features={})
    assert build_config("tdmpc", "tiny", STATE, ACTION, "cpu", dataset_features=RECORDED).horizon == 3


def test_tdmpc_refuses_images_its_encoder_would_shrink_to_nothing():
    small = {"observation.images.agentview": PolicyFeature(FeatureType.VISUAL, (3, 32, 32))}
    with pytest.raises(UserError, match="at least 39x39 pixels but observation.images.agentview is 32x32; "
                                        "record with --image-size 84"):
        build_config("tdmpc", "tiny", {**STATE, **small}, ACTION, "cpu")
    with pytest.raises(UserError, match="at most one camera image"):
        build_config("tdmpc", "tiny", {**STATE, **CAMERA, **CAMERA_2}, ACTION, "cpu")


def test_diffusion_trains_on_environment_state_without_a_camera():
    assert build_config("diffusion", "tiny", STATE, ACTION, "cpu").horizon == 8
    with pytest.raises(UserError, match="Policy 'diffusion' needs a camera image or observation.environment_state"):
        build_config("diffusion", "tiny", ONLY_STATE, ACTION, "cpu")


def test_diffusion_counts_past_observation_steps_against_its_horizon():
    with pytest.raises(UserError, match=r"--n-action-steps 8 is larger than the action chunk \(8 minus 1 past"):
        build_config("diffusion", "tiny", STATE, ACTION, "cpu", n_action_steps=8)
    cfg = build_config("diffusion", "tiny", STATE, ACTION, "cpu", n_action_steps=7)
    assert cfg.n_action_steps == 7


def test_diffusion_skips_the_end_frames_its_horizon_would_pad():
    # horizon - n_action_steps - n_obs_steps + 1: the tiny preset's 8 - 4 - 2 + 1.
    assert build_config("diffusion", "tiny", STATE, ACTION, "cpu").drop_n_last_frames == 3
    cfg = build_config("diffusion", "tiny", STATE, ACTION, "cpu", chunk_size=16, n_action_steps=8, n_obs_steps=1)
    assert cfg.drop_n_last_frames == 8


def test_default_vqbet_crop_must_fit_the_images():
    small = {"observation.images.agentview": PolicyFeature(FeatureType.VISUAL, (3, 32, 32))}
    with pytest.raises(UserError, match="crops images to 84x84 but observation.images.agentview is 32x32"):
        build_config("vqbet", "default", {**STATE, **small}, ACTION, "cpu")


def test_single_step_policies_refuse_more_observation_steps():
    with pytest.raises(UserError, match="Policy 'act' looks at one observation step only; drop --n-obs-steps 2"):
        build_config("act", "tiny", STATE, ACTION, "cpu", n_obs_steps=2)
    assert build_config("diffusion", "tiny", STATE, ACTION, "cpu", n_obs_steps=3).n_obs_steps == 3


def test_flags_a_policy_has_no_field_for_are_refused():
    with pytest.raises(UserError, match="Policy 'vqbet' executes its whole predicted chunk; drop --n-action-steps"):
        build_config("vqbet", "tiny", {**STATE, **CAMERA}, ACTION, "cpu", n_action_steps=2)


def test_chunk_flag_maps_onto_each_policys_own_field():
    assert build_config("diffusion", "tiny", STATE, ACTION, "cpu", chunk_size=16).horizon == 16
    assert build_config("vqbet", "tiny", {**STATE, **CAMERA}, ACTION, "cpu", chunk_size=4).action_chunk_size == 4
    tdmpc = build_config("tdmpc", "tiny", STATE, ACTION, "cpu", chunk_size=5, n_action_steps=3)
    # lerobot's TD-MPC runs several planned steps only without action repeats.
    assert (tdmpc.horizon, tdmpc.n_action_steps, tdmpc.n_action_repeats) == (5, 3, 1)


def test_lr_sets_every_learning_rate_of_the_policy():
    cfg = build_config("vqbet", "tiny", {**STATE, **CAMERA}, ACTION, "cpu", lr=2e-4)
    assert cfg.optimizer_lr == 2e-4


# -- presets and downloads -------------------------------------------------------------------


def test_small_presets_train_image_backbones_from_scratch():
    for preset in ("tiny", "cpu"):
        assert build_config("act", preset, {**STATE, **CAMERA}, ACTION, "cpu").pretrained_backbone_weights is None


def test_default_act_with_a_camera_and_no_imagenet_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError) as err:
        build_config("act", "default", {**STATE, **CAMERA}, ACTION, "cpu")
    message = str(err.value)
    assert "ResNet18_Weights.IMAGENET1K_V1" in message and str(tmp_path) in message and "--preset cpu" in message
    # Without a camera ACT builds no backbone, so nothing is downloaded.
    build_config("act", "default", STATE, ACTION, "cpu")


@pytest.mark.slow
def test_every_trainable_policy_builds_its_small_presets():
    from lerobot.policies.factory import get_policy_class

    for name, inputs in [("act", STATE), ("diffusion", STATE), ("tdmpc", STATE), ("vqbet", {**STATE, **CAMERA})]:
        sizes = []
        for preset in ("tiny", "cpu"):
            cfg = build_config(name, preset, inputs, ACTION, "cpu")
            policy = get_policy_class(name)(cfg)
            sizes.append(sum(p.numel() for p in policy.parameters()))
        assert sizes[0] < sizes[1], name


def test_pretrained_path_must_hold_a_policy_of_the_same_type(tmp_path):
    with pytest.raises(UserError, match="holds no config.json"):
        build_config("act", "default", STATE, ACTION, "cpu", pretrained_path=tmp_path)
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig

    DiffusionConfig()._save_pretrained(tmp_path)
    with pytest.raises(UserError, match="holds a 'diffusion' policy, not 'act'; pass --policy diffusion"):
        build_config("act", "default", STATE, ACTION, "cpu", pretrained_path=tmp_path)
    with pytest.raises(UserError, match="drop --preset tiny"):
        build_config("diffusion", "tiny", STATE, ACTION, "cpu", pretrained_path=tmp_path)


def test_data_a_policy_can_never_use_is_named_before_missing_weights():
    # pi0 cannot run without a camera whatever is cached, so that is what the user hears first.
    with pytest.raises(UserError, match="Policy 'pi0' needs at least one camera image"):
        build_config("pi0", "default", STATE, ACTION, "cpu")
