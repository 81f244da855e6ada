"""The policy registry: each policy name with its lerobot config values, needs and presets.

Only data lives here: what differs between policies is a field of ``PolicyEntry``, which
the shared code in ``sir.policies.build`` and ``sir.policies.checks`` reads, so no code
outside this table branches on a policy's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sir.errors import UserError

PRESETS = ("tiny", "cpu", "default")

ImageNeed = Literal["any", "required", "exactly_one", "at_most_one"]


@dataclass(frozen=True)
class HubAsset:
    """A file set lerobot loads from the Hugging Face hub while building a policy."""

    repo_id: str
    role: str
    # The config field that names it: a local folder there (e.g. from a checkpoint given
    # with --pretrained-path) stands in for the hub id. None: lerobot hardcodes the id.
    config_field: str | None = None


@dataclass(frozen=True)
class Unsupported:
    """Why sir cannot train a policy at all."""

    note: str  # the --list-policies cell
    message: str  # the sentence training stops with


@dataclass(frozen=True)
class PolicyEntry:
    name: str
    # The config fields the generic flags set; None: the policy has no such setting.
    chunk_field: str | None = "chunk_size"
    n_action_steps_field: str | None = "n_action_steps"
    lr_fields: tuple[str, ...] = ("optimizer_lr",)
    # lerobot's implementation looks at one observation step only.
    single_obs_step: bool = True
    # The chunk also covers the past observation steps; only the rest can be executed.
    chunk_covers_obs_steps: bool = False
    # The config field naming how many end-of-episode frames the sampler skips because
    # their chunk would be mostly padding; set to the chunk steps past the executed ones.
    drop_last_frames_field: str | None = None
    # Config values lerobot needs once more than one action step is executed per plan.
    multi_step_values: Mapping[str, Any] = field(default_factory=dict)
    # What the policy needs from the dataset.
    images: ImageNeed = "any"
    needs_image_or_env_state: bool = False
    needs_state: bool = False
    needs_reward: bool = False
    min_image_size: int = 0
    # False: lerobot's model has no input for observation.environment_state, so it is left out.
    uses_env_state: bool = True
    # Pretrained-backbone policies start from these weights (hub id or --pretrained-path).
    base_model: str | None = None
    hub_assets: tuple[HubAsset, ...] = ()
    packages: tuple[str, ...] = ()
    # Presets whose config starts an image backbone from torchvision's ImageNet weights.
    imagenet_presets: tuple[str, ...] = ()
    unsupported: Unsupported | None = None
    # Why the policy has only some presets, for the message that refuses the others.
    preset_note: str = ""
    presets: dict[str, dict[str, Any]] = field(default_factory=lambda: {"default": {}})

    def needs(self) -> list[str]:
        """What the policy needs, in short phrases for the --list-policies table."""
        out = []
        if self.needs_state:
            out.append("observation.state")
        out.append({
            "any": "",
            "required": "1+ camera",
            "exactly_one": "exactly 1 camera",
            "at_most_one": "at most 1 camera",
        }[self.images])
        if self.needs_image_or_env_state:
            out.append("camera or environment_state")
        if self.min_image_size:
            out.append(f"images >= {self.min_image_size}px")
        if self.needs_reward:
            out.append("next.reward")
        if self.base_model:
            out.append(f"weights {self.base_model}")
        out.extend(f"{a.role} {a.repo_id}" for a in self.hub_assets)
        out.extend(f"package {p}" for p in self.packages)
        return [o for o in out if o]


_PALIGEMMA_SIZE = (
    "lerobot builds PaliGemma at fixed sizes, gemma_300m at the smallest with a 257k-token vocabulary plus SigLIP, "
    "over a billion parameters"
)
_FULL_SIZE = "lerobot builds its pretrained backbone at the size of the pretrained weights"
_PALIGEMMA_TOKENIZER = HubAsset("google/paligemma-3b-pt-224", "tokenizer")


def _pretrained_vla(name: str, size_note: str, **fields: Any) -> PolicyEntry:
    """A vision-language-action policy: lerobot builds it only at the size of its pretrained
    weights, so it has the default preset alone, and it reads at least one camera."""
    return PolicyEntry(name=name, images="required", preset_note=size_note, **fields)


# Presets keep models small enough for 2 CPU cores. ImageNet backbone weights would be
# downloaded at build time, so the small presets train their vision backbone from scratch.
_ENTRIES = (
    PolicyEntry(
        name="act",
        lr_fields=("optimizer_lr", "optimizer_lr_backbone"),
        needs_image_or_env_state=True,
        imagenet_presets=("default",),
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
    PolicyEntry(
        name="diffusion",
        chunk_field="horizon",
        single_obs_step=False,
        chunk_covers_obs_steps=True,
        drop_last_frames_field="drop_n_last_frames",
        needs_image_or_env_state=True,
        presets={
            "tiny": dict(
                down_dims=(16, 32), kernel_size=3, n_groups=4, diffusion_step_embed_dim=16,
                horizon=8, n_action_steps=4, n_obs_steps=2, num_train_timesteps=20,
                num_inference_steps=4, spatial_softmax_num_keypoints=8, optimizer_lr=1e-3,
                crop_shape=None, scheduler_warmup_steps=0,
            ),
            "cpu": dict(
                down_dims=(64, 128, 256), diffusion_step_embed_dim=64, horizon=16,
                n_action_steps=8, n_obs_steps=2, num_inference_steps=10, crop_shape=None,
            ),
            "default": {},
        },
    ),
    # Its first n_vqvae_training_steps train the VQ-VAE, the rest the GPT over its codes.
    PolicyEntry(
        name="vqbet",
        chunk_field="action_chunk_size",
        # It executes its whole predicted chunk: there is no separate n_action_steps.
        n_action_steps_field=None,
        single_obs_step=False,
        images="exactly_one",
        needs_state=True,
        # Its GPT gets one token per input feature but only encodes the state and the image.
        uses_env_state=False,
        presets={
            "tiny": dict(
                n_obs_steps=2, n_action_pred_token=2, action_chunk_size=2, crop_shape=None,
                spatial_softmax_num_keypoints=8, n_vqvae_training_steps=30, vqvae_n_embed=8,
                vqvae_embedding_dim=16, vqvae_enc_hidden_dim=16, gpt_block_size=32, gpt_input_dim=32,
                gpt_output_dim=32, gpt_n_layer=1, gpt_n_head=2, gpt_hidden_dim=32, dropout=0.0,
                scheduler_warmup_steps=2, optimizer_lr=1e-3,
            ),
            "cpu": dict(
                n_obs_steps=3, n_action_pred_token=3, action_chunk_size=5, crop_shape=None,
                spatial_softmax_num_keypoints=16, n_vqvae_training_steps=2000, vqvae_embedding_dim=64,
                vqvae_enc_hidden_dim=64, gpt_block_size=100, gpt_input_dim=128, gpt_output_dim=128,
                gpt_n_layer=4, gpt_n_head=4, gpt_hidden_dim=128, scheduler_warmup_steps=200,
            ),
            "default": {},
        },
    ),
    PolicyEntry(
        name="tdmpc",
        chunk_field="horizon",
        multi_step_values={"n_action_repeats": 1},
        images="at_most_one",
        # Its forward pass reads the horizon length from the image or the environment state.
        needs_image_or_env_state=True,
        needs_state=True,
        needs_reward=True,
        # Four stride-2 convolutions (kernels 7, 5, 3, 3) must leave at least one pixel.
        min_image_size=39,
        presets={
            "tiny": dict(
                horizon=3, state_encoder_hidden_dim=32, image_encoder_hidden_dim=8, latent_dim=16,
                mlp_dim=32, q_ensemble_size=2, cem_iterations=2, n_gaussian_samples=32, n_pi_samples=4,
                n_elites=8, optimizer_lr=1e-3,
            ),
            "cpu": dict(
                horizon=5, state_encoder_hidden_dim=128, image_encoder_hidden_dim=16, latent_dim=32,
                mlp_dim=128, q_ensemble_size=3, cem_iterations=4, n_gaussian_samples=128, n_pi_samples=16,
                n_elites=16,
            ),
            "default": {},
        },
    ),
    PolicyEntry(
        name="sac",
        chunk_field=None,
        n_action_steps_field=None,
        lr_fields=("actor_lr", "critic_lr", "temperature_lr"),
        needs_reward=True,
        unsupported=Unsupported(
            note="not trainable from datasets (online RL only in lerobot)",
            message=(
                "Policy 'sac' cannot be trained by sir from recorded datasets: lerobot's SAC learns online, "
                "its actor, critic and temperature losses take replay-buffer transitions and its only training "
                "loop (lerobot.rl.learner, HIL-SERL) waits for a live actor's environment steps, using a dataset "
                "only as extra demonstrations; use --policy tdmpc to learn from the recorded rewards offline."
            ),
        ),
    ),
    _pretrained_vla("pi0", _PALIGEMMA_SIZE, base_model="lerobot/pi0_base", hub_assets=(_PALIGEMMA_TOKENIZER,)),
    _pretrained_vla("pi05", _PALIGEMMA_SIZE, base_model="lerobot/pi05_base", hub_assets=(_PALIGEMMA_TOKENIZER,)),
    _pretrained_vla(
        "pi0_fast", _PALIGEMMA_SIZE,
        base_model="lerobot/pi0fast-base",
        hub_assets=(
            HubAsset(_PALIGEMMA_TOKENIZER.repo_id, "tokenizer", "text_tokenizer_name"),
            HubAsset("physical-intelligence/fast", "action tokenizer", "action_tokenizer_name"),
        ),
    ),
    _pretrained_vla(
        "smolvla", _FULL_SIZE,
        base_model="lerobot/smolvla_base",
        hub_assets=(
            HubAsset("HuggingFaceTB/SmolVLM2-500M-Video-Instruct", "VLM config and processor", "vlm_model_name"),
        ),
    ),
    _pretrained_vla(
        "groot", _FULL_SIZE,
        # GrootPolicy itself loads the base weights named by base_model_path.
        hub_assets=(
            HubAsset("nvidia/GR00T-N1.5-3B", "weights", "base_model_path"),
            HubAsset("lerobot/eagle2hg-processor-groot-n1p5", "processor", "tokenizer_assets_repo"),
        ),
    ),
    _pretrained_vla(
        "xvla", _FULL_SIZE,
        base_model="lerobot/xvla-base",
        needs_state=True,
        hub_assets=(HubAsset("facebook/bart-large", "tokenizer", "tokenizer_name"),),
    ),
    _pretrained_vla(
        "wall_x", _FULL_SIZE,
        hub_assets=(HubAsset("x-square-robot/wall-oss-flow", "weights", "pretrained_name_or_path"),),
        packages=("qwen_vl_utils", "torchdiffeq"),
    ),
)

POLICIES: dict[str, PolicyEntry] = {entry.name: entry for entry in _ENTRIES}


def get_entry(name: str) -> PolicyEntry:
    if name not in POLICIES:
        raise UserError(f"Unknown policy '{name}'; choose one of: {', '.join(POLICIES)}.")
    return POLICIES[name]
