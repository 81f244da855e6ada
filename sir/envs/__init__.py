"""Robosuite envs described by an EnvSpec, and their observations as LeRobot features."""

from sir.envs.spec import (
    ENV_STATE_FEATURE,
    IMAGE_FEATURE_PREFIX,
    STATE_FEATURE,
    EnvSpec,
    default_spec,
    spec_for_dataset,
)

__all__ = [
    "ENV_STATE_FEATURE",
    "IMAGE_FEATURE_PREFIX",
    "STATE_FEATURE",
    "EnvSpec",
    "default_spec",
    "spec_for_dataset",
]
