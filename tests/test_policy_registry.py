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
