"""Policy registry: a policy name → lerobot config, what it needs from the data, presets.

Policies are built by lerobot's own factories (``make_policy_config``, ``make_policy``,
``make_pre_post_processors``); this module only decides the config values.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

from sir.errors import UserError

PRESETS = ("tiny", "cpu", "default")


@dataclass(frozen=True)
class PolicyEntry:
    name: str
    summary: str
    # The config field that the generic --action-chunk-size sets.
    chunk_field: str | None = "chunk_size"
    # What the policy needs from the dataset's features.
    needs_image_or_env_state: bool = False
    needs_image: bool = False
    # Values for each preset; "default" is lerobot's own config.
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)


# Presets keep models small enough for 2 CPU cores. ImageNet backbone weights would be
# downloaded at build time, so the small presets train their vision backbone from scratch.
POLICIES: dict[str, PolicyEntry] = {
    "act": PolicyEntry(
        name="act",
        summary="Action Chunking Transformer (L1 + KL)",
        needs_image_or_env_state=True,
        presets={
            "tiny": dict(
                dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1, n_decoder_layers=1,
                n_vae_encoder_layers=1, latent_dim=8, chunk_size=10, n_action_steps=10,
                pretrained_backbone_weights=None, optimizer_lr=1e-3, optimizer_lr_backbone=1e-3,
            ),
            "cpu": dict(
                dim_model=128, n_heads=4, dim_feedforward=512, n_encoder_layers=2, n_decoder_layers=1,
                n_vae_encoder_layers=2, latent_dim=16, chunk_size=20, n_action_steps=10,
                pretrained_backbone_weights=None, optimizer_lr=5e-4, optimizer_lr_backbone=5e-4,
            ),
            "default": {},
        },
    ),
    "diffusion": PolicyEntry(
        name="diffusion",
        summary="Diffusion Policy (DDPM/DDIM over action horizons)",
        chunk_field="horizon",
        needs_image=True,
        presets={
            "tiny": dict(
                down_dims=(32, 64), kernel_size=3, n_groups=4, diffusion_step_embed_dim=32,
                horizon=8, n_action_steps=4, n_obs_steps=2, num_train_timesteps=20,
                num_inference_steps=5, spatial_softmax_num_keypoints=8, optimizer_lr=1e-3,
                crop_shape=None,
            ),
            "cpu": dict(
                down_dims=(64, 128, 256), diffusion_step_embed_dim=64, horizon=16,
                n_action_steps=8, n_obs_steps=2, num_inference_steps=10, crop_shape=None,
            ),
            "default": {},
        },
    ),
}


def get_entry(name: str) -> PolicyEntry:
    if name not in POLICIES:
        raise UserError(f"Unknown policy '{name}'; choose one of: {', '.join(POLICIES)}.")
    return POLICIES[name]


def build_config(
    name: str,
    preset: str,
    input_features: dict[str, Any],
    output_features: dict[str, Any],
    device: str,
    chunk_size: int | None = None,
    n_obs_steps: int | None = None,
    n_action_steps: int | None = None,
    lr: float | None = None,
) -> Any:
    """The lerobot config for ``name`` with the preset and the generic flags applied."""
    from lerobot.policies.factory import make_policy_config

    entry = get_entry(name)
    if preset not in PRESETS:
        raise UserError(f"Unknown --preset '{preset}'; choose one of {', '.join(PRESETS)}.")
    values: dict[str, Any] = dict(entry.presets.get(preset, {}))
    if chunk_size is not None:
        if entry.chunk_field is None:
            raise UserError(f"Policy '{name}' predicts no action chunk; drop --action-chunk-size.")
        values[entry.chunk_field] = chunk_size
        # Without --n-action-steps, the executed steps follow a smaller chunk down (ACT's
        # default executes its whole 100-step chunk); an explicit flag is checked below.
        default_n_action = values.get("n_action_steps", _defaults(name).get("n_action_steps"))
        if n_action_steps is None and default_n_action is not None:
            values["n_action_steps"] = min(default_n_action, chunk_size)
    if n_obs_steps is not None:
        values["n_obs_steps"] = n_obs_steps
    if n_action_steps is not None:
        values["n_action_steps"] = n_action_steps
    if lr is not None:
        values["optimizer_lr"] = lr
        if "optimizer_lr_backbone" in {f.name for f in _fields(name)}:
            values["optimizer_lr_backbone"] = lr
    defaults = _defaults(name)
    chunk = {**defaults, **values}.get(entry.chunk_field) if entry.chunk_field else None
    n_action = {**defaults, **values}.get("n_action_steps")
    if chunk is not None and n_action is not None and n_action > chunk:
        raise UserError(
            f"--n-action-steps {n_action} is larger than the action chunk ({chunk}) of policy '{name}'; "
            "lower it or raise --action-chunk-size."
        )
    try:
        cfg = make_policy_config(name, device=device, **values)
    except (ValueError, NotImplementedError) as err:
        # lerobot's configs validate themselves in __post_init__; their message names the field.
        raise UserError(f"Policy '{name}' rejects these settings: {err}") from err
    cfg.input_features = dict(input_features)
    cfg.output_features = dict(output_features)
    validate_config(entry, cfg)
    return cfg


@functools.cache
def _fields(name: str) -> tuple[dataclasses.Field, ...]:
    from lerobot.policies.factory import make_policy_config

    return dataclasses.fields(type(make_policy_config(name, device="cpu")))


def _defaults(name: str) -> dict[str, Any]:
    return {f.name: f.default for f in _fields(name) if f.default is not dataclasses.MISSING}


def validate_config(entry: PolicyEntry, cfg: Any) -> None:
    """Refuse configs the policy cannot train with, naming the flag or data that fixes it."""
    from lerobot.configs.types import FeatureType

    types = [ft.type for ft in cfg.input_features.values()]
    has_image = FeatureType.VISUAL in types
    has_env = FeatureType.ENV in types
    if entry.needs_image_or_env_state and not (has_image or has_env):
        raise UserError(
            f"Policy '{entry.name}' needs a camera image or observation.environment_state among its inputs; "
            "record with --cameras or keep the object state in the dataset."
        )
    if entry.needs_image and not has_image:
        raise UserError(
            f"Policy '{entry.name}' needs at least one camera image; record the dataset with --cameras agentview."
        )
