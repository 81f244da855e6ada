"""Policy registry: a policy name → lerobot config, what it needs from the data, presets.

Policies are built by lerobot's own factories (``make_policy_config``, ``make_policy``,
``make_pre_post_processors``); this module decides the config values and refuses, in one
sentence, whatever lerobot would otherwise fail on with a traceback.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sir.errors import UserError
from sir.policies import availability

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
class PolicyEntry:
    name: str
    summary: str
    config_class: str
    # The config fields the generic flags set; None: the policy has no such setting.
    chunk_field: str | None = "chunk_size"
    n_action_steps_field: str | None = "n_action_steps"
    lr_fields: tuple[str, ...] = ("optimizer_lr",)
    # lerobot's implementation looks at one observation step only.
    single_obs_step: bool = True
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
    # Why sir cannot train this policy at all, as the sentence the user sees.
    unsupported: str | None = None
    # Why the policy has only some presets, for the message that refuses the others.
    preset_note: str = ""
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)

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


_VLA_NOTE = "no tiny/cpu preset: lerobot builds it at full size only"
_PALIGEMMA_SIZE = (
    "lerobot builds PaliGemma at fixed sizes, gemma_300m at the smallest with a 257k-token vocabulary plus SigLIP, "
    "over a billion parameters"
)
_FULL_SIZE = "lerobot builds its pretrained backbone at the size of the pretrained weights"

# Presets keep models small enough for 2 CPU cores. ImageNet backbone weights would be
# downloaded at build time, so the small presets train their vision backbone from scratch.
POLICIES: dict[str, PolicyEntry] = {
    "act": PolicyEntry(
        name="act",
        summary="Action Chunking Transformer (L1 + KL)",
        config_class="lerobot.policies.act.configuration_act.ACTConfig",
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
    "diffusion": PolicyEntry(
        name="diffusion",
        summary="Diffusion Policy (DDPM/DDIM over action horizons)",
        config_class="lerobot.policies.diffusion.configuration_diffusion.DiffusionConfig",
        chunk_field="horizon",
        single_obs_step=False,
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
    "vqbet": PolicyEntry(
        name="vqbet",
        summary="VQ-BeT (residual-VQ action codes + GPT); its first n_vqvae_training_steps train the VQ-VAE",
        config_class="lerobot.policies.vqbet.configuration_vqbet.VQBeTConfig",
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
    "tdmpc": PolicyEntry(
        name="tdmpc",
        summary="TD-MPC (FOWM offline variant): latent dynamics, reward, TD value and advantage-weighted policy losses",
        config_class="lerobot.policies.tdmpc.configuration_tdmpc.TDMPCConfig",
        chunk_field="horizon",
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
    "sac": PolicyEntry(
        name="sac",
        summary="Soft Actor-Critic (online RL, lerobot's HIL-SERL)",
        config_class="lerobot.policies.sac.configuration_sac.SACConfig",
        chunk_field=None,
        n_action_steps_field=None,
        lr_fields=("actor_lr", "critic_lr", "temperature_lr"),
        needs_reward=True,
        unsupported=(
            "Policy 'sac' cannot be trained by sir from recorded datasets: lerobot's SAC learns online, "
            "its actor, critic and temperature losses take replay-buffer transitions and its only training "
            "loop (lerobot.rl.learner, HIL-SERL) waits for a live actor's environment steps, using a dataset "
            "only as extra demonstrations; use --policy tdmpc to learn from the recorded rewards offline."
        ),
        presets={"default": {}},
    ),
    "pi0": PolicyEntry(
        name="pi0",
        summary=f"π0 VLA (PaliGemma + flow-matching action expert); {_VLA_NOTE}",
        config_class="lerobot.policies.pi0.configuration_pi0.PI0Config",
        base_model="lerobot/pi0_base",
        hub_assets=(HubAsset("google/paligemma-3b-pt-224", "tokenizer"),),
        images="required",
        preset_note=_PALIGEMMA_SIZE,
        presets={"default": {}},
    ),
    "pi05": PolicyEntry(
        name="pi05",
        summary=f"π0.5 VLA (PaliGemma + flow-matching action expert); {_VLA_NOTE}",
        config_class="lerobot.policies.pi05.configuration_pi05.PI05Config",
        base_model="lerobot/pi05_base",
        hub_assets=(HubAsset("google/paligemma-3b-pt-224", "tokenizer"),),
        images="required",
        preset_note=_PALIGEMMA_SIZE,
        presets={"default": {}},
    ),
    "pi0_fast": PolicyEntry(
        name="pi0_fast",
        summary=f"π0-FAST VLA (PaliGemma, autoregressive FAST action tokens); {_VLA_NOTE}",
        config_class="lerobot.policies.pi0_fast.configuration_pi0_fast.PI0FastConfig",
        base_model="lerobot/pi0fast-base",
        hub_assets=(
            HubAsset("google/paligemma-3b-pt-224", "tokenizer", "text_tokenizer_name"),
            HubAsset("physical-intelligence/fast", "action tokenizer", "action_tokenizer_name"),
        ),
        images="required",
        preset_note=_PALIGEMMA_SIZE,
        presets={"default": {}},
    ),
    "smolvla": PolicyEntry(
        name="smolvla",
        summary=f"SmolVLA (SmolVLM2 + flow-matching action expert); {_VLA_NOTE}",
        config_class="lerobot.policies.smolvla.configuration_smolvla.SmolVLAConfig",
        base_model="lerobot/smolvla_base",
        hub_assets=(
            HubAsset("HuggingFaceTB/SmolVLM2-500M-Video-Instruct", "VLM config and processor", "vlm_model_name"),
        ),
        images="required",
        preset_note=_FULL_SIZE,
        presets={"default": {}},
    ),
    "groot": PolicyEntry(
        name="groot",
        summary=f"NVIDIA GR00T N1.5 (Eagle VLM + diffusion action head); {_VLA_NOTE}",
        config_class="lerobot.policies.groot.configuration_groot.GrootConfig",
        # GrootPolicy itself loads the base weights named by base_model_path.
        hub_assets=(
            HubAsset("nvidia/GR00T-N1.5-3B", "weights", "base_model_path"),
            HubAsset("lerobot/eagle2hg-processor-groot-n1p5", "processor", "tokenizer_assets_repo"),
        ),
        images="required",
        preset_note=_FULL_SIZE,
        presets={"default": {}},
    ),
    "xvla": PolicyEntry(
        name="xvla",
        summary=f"X-VLA (Florence-2 + soft-prompted flow-matching transformer); {_VLA_NOTE}",
        config_class="lerobot.policies.xvla.configuration_xvla.XVLAConfig",
        base_model="lerobot/xvla-base",
        images="required",
        needs_state=True,
        hub_assets=(HubAsset("facebook/bart-large", "tokenizer", "tokenizer_name"),),
        preset_note=_FULL_SIZE,
        presets={"default": {}},
    ),
    "wall_x": PolicyEntry(
        name="wall_x",
        summary=f"WALL-OSS (Qwen2.5-VL mixture of experts); {_VLA_NOTE}",
        config_class="lerobot.policies.wall_x.configuration_wall_x.WallXConfig",
        hub_assets=(HubAsset("x-square-robot/wall-oss-flow", "weights", "pretrained_name_or_path"),),
        packages=("qwen_vl_utils", "torchdiffeq"),
        images="required",
        preset_note=_FULL_SIZE,
        presets={"default": {}},
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
    *,
    pretrained_path: str | Path | None = None,
    dataset_features: dict[str, dict] | None = None,
) -> Any:
    """The lerobot config for ``name`` with the preset and the generic flags applied.

    ``pretrained_path`` (a local folder or a cached hub id) starts the policy from saved
    weights: lerobot's ``make_policy`` loads them because ``cfg.pretrained_path`` is set.
    ``dataset_features`` (the datasets' raw features) lets needs that the policy features
    do not show, such as ``next.reward``, be checked before anything is built.
    Every need the data or this machine does not meet ends in a ``UserError`` sentence.
    """
    entry = get_entry(name)
    if preset not in PRESETS:
        raise UserError(f"Unknown --preset '{preset}'; choose one of {', '.join(PRESETS)}.")
    if entry.unsupported:
        raise UserError(entry.unsupported)
    missing = availability.missing_packages(entry.packages)
    if missing:
        raise UserError(
            f"Policy '{name}' needs the Python package(s) {', '.join(missing)}, which are not installed; "
            f"install them into this environment (lerobot's extra for {name})."
        )
    check_data_needs(entry, input_features, dataset_features)
    if preset not in entry.presets:
        why = f" ({entry.preset_note})" if entry.preset_note else ""
        raise UserError(
            f"Policy '{name}' has no '{preset}' preset{why}; pass --preset {' or '.join(entry.presets)}."
        )
    if pretrained_path is None and entry.base_model is not None:
        if not availability.hub_repo_available(entry.base_model):
            raise UserError(
                f"Policy '{name}' starts from the pretrained weights {entry.base_model}, which are not in the local "
                f"Hugging Face cache ({availability.hf_cache_dir()}) and cannot be downloaded here; pass "
                f"--pretrained-path with a local copy, or pre-populate the cache (huggingface-cli download "
                f"{entry.base_model} on a machine with network, then copy the cache over)."
            )
        pretrained_path = entry.base_model
    if pretrained_path is not None and preset != "default":
        raise UserError(
            f"--pretrained-path takes the model size of policy '{name}' from its checkpoint; drop --preset {preset}."
        )
    values = _flag_values(entry, preset, chunk_size, n_obs_steps, n_action_steps, lr)
    if pretrained_path is not None:
        cfg = _pretrained_config(entry, pretrained_path, device, values)
    else:
        from lerobot.policies.factory import make_policy_config

        try:
            cfg = make_policy_config(name, device=device, **values)
        except (ValueError, NotImplementedError) as err:
            # lerobot's configs validate themselves in __post_init__; their message names the field.
            raise UserError(f"Policy '{name}' rejects these settings: {err}") from err
    cfg.input_features = {
        k: ft for k, ft in input_features.items() if entry.uses_env_state or k != "observation.environment_state"
    }
    cfg.output_features = dict(output_features)
    normalize_env_state(cfg)
    validate_config(entry, cfg, dataset_features)
    _check_downloads(entry, cfg, preset)
    return cfg


def _flag_values(
    entry: PolicyEntry, preset: str, chunk_size: int | None, n_obs_steps: int | None,
    n_action_steps: int | None, lr: float | None,
) -> dict[str, Any]:
    """Preset values with the generic flags mapped onto the policy's own fields."""
    name = entry.name
    values: dict[str, Any] = dict(entry.presets.get(preset, {}))
    defaults = _defaults(name)
    if chunk_size is not None:
        if entry.chunk_field is None:
            raise UserError(f"Policy '{name}' predicts no action chunk; drop --action-chunk-size.")
        values[entry.chunk_field] = chunk_size
        # Without --n-action-steps, the executed steps follow a smaller chunk down (ACT's
        # default executes its whole 100-step chunk); an explicit flag is checked below.
        if entry.n_action_steps_field and n_action_steps is None:
            default_n_action = values.get("n_action_steps", defaults.get("n_action_steps"))
            if default_n_action is not None:
                values["n_action_steps"] = min(default_n_action, chunk_size)
    if n_obs_steps is not None:
        if entry.single_obs_step and n_obs_steps != 1:
            raise UserError(f"Policy '{name}' looks at one observation step only; drop --n-obs-steps {n_obs_steps}.")
        if n_obs_steps < 1:
            raise UserError("--n-obs-steps must be at least 1.")
        values["n_obs_steps"] = n_obs_steps
    if n_action_steps is not None:
        if entry.n_action_steps_field is None:
            raise UserError(
                f"Policy '{name}' executes its whole predicted chunk; drop --n-action-steps"
                + (" and set the chunk with --action-chunk-size." if entry.chunk_field else ".")
            )
        if n_action_steps < 1:
            raise UserError("--n-action-steps must be at least 1.")
        values["n_action_steps"] = n_action_steps
    if lr is not None:
        for f in entry.lr_fields:
            values[f] = lr
    if name == "tdmpc" and values.get("n_action_steps", 1) > 1:
        # lerobot's TD-MPC executes several planned steps only without action repeats.
        values["n_action_repeats"] = 1

    merged = {**defaults, **values}
    chunk = merged.get(entry.chunk_field) if entry.chunk_field else None
    n_action = merged.get("n_action_steps") if entry.n_action_steps_field else None
    n_obs = merged.get("n_obs_steps", 1)
    if name == "diffusion" and None not in (chunk, n_action):
        # lerobot's sampler skips the last frames whose horizon would be mostly padding
        # (its default 7 is this formula at its default sizes).
        values["drop_n_last_frames"] = max(0, chunk - n_action - n_obs + 1)
    if chunk is not None and n_action is not None:
        # Diffusion's horizon also covers the past observation steps; the rest is executable.
        usable = chunk - n_obs + 1 if name == "diffusion" else chunk
        if n_action > usable:
            extra = f" minus {n_obs - 1} past observation steps" if usable != chunk else ""
            raise UserError(
                f"--n-action-steps {n_action} is larger than the action chunk ({chunk}{extra}) of policy '{name}'; "
                "lower it or raise --action-chunk-size."
            )
    return values


def _pretrained_config(entry: PolicyEntry, path: str | Path, device: str, values: dict[str, Any]) -> Any:
    """The config saved with pretrained weights, with the flag values applied on top."""
    from lerobot.configs.policies import PreTrainedConfig

    path = str(path)
    local = availability.is_local_dir(path)
    if local and not (Path(path).expanduser() / "config.json").is_file():
        raise UserError(f"--pretrained-path {path} holds no config.json; point it at a saved policy folder.")
    if not local and not availability.hub_repo_available(path):
        raise UserError(
            f"--pretrained-path {path} is neither a local folder nor in the local Hugging Face cache "
            f"({availability.hf_cache_dir()}), and nothing can be downloaded here; give a local copy."
        )
    try:
        cfg = PreTrainedConfig.from_pretrained(path)
    except Exception as err:  # draccus parse errors, unknown policy types
        raise UserError(f"Could not read the policy config at {path}: {err}") from err
    if cfg.type != entry.name:
        raise UserError(f"--pretrained-path {path} holds a '{cfg.type}' policy, not '{entry.name}'; "
                        f"pass --policy {cfg.type} or another checkpoint.")
    try:
        cfg = dataclasses.replace(cfg, device=device, **values)
    except (ValueError, NotImplementedError) as err:
        raise UserError(f"Policy '{entry.name}' rejects these settings: {err}") from err
    cfg.pretrained_path = Path(path).expanduser() if local else path
    return cfg


def normalize_env_state(cfg: Any) -> None:
    """Normalize ``observation.environment_state`` the way the config normalizes the robot state.

    lerobot's ACT, Diffusion and VQ-BeT configs list no ``ENV`` entry in
    ``normalization_mapping``, and its normalizer passes a feature type that has no entry
    through unchanged. Robosuite object poses vary by a few centimetres around a large
    offset (the Lift cube: x, y within +-0.03 m, z at 0.83 m), so raw they reach the network
    as a near-constant input and the policy learns to ignore where the object is. Configs
    that choose a mode for ``ENV`` themselves (TD-MPC, SAC) keep their choice.
    """
    from lerobot.configs.types import FeatureType

    mapping = getattr(cfg, "normalization_mapping", None)
    if mapping is None or FeatureType.ENV.value in mapping:
        return
    if not any(ft.type is FeatureType.ENV for ft in cfg.input_features.values()):
        return
    if FeatureType.STATE.value in mapping:
        cfg.normalization_mapping = {**mapping, FeatureType.ENV.value: mapping[FeatureType.STATE.value]}


@functools.cache
def _fields(name: str) -> tuple[dataclasses.Field, ...]:
    from lerobot.policies.factory import make_policy_config

    return dataclasses.fields(type(make_policy_config(name, device="cpu")))


def _defaults(name: str) -> dict[str, Any]:
    return {f.name: f.default for f in _fields(name) if f.default is not dataclasses.MISSING}


def check_data_needs(
    entry: PolicyEntry, input_features: dict[str, Any], dataset_features: dict[str, dict] | None = None
) -> None:
    """Refuse data the policy cannot train on, naming the flag or data that fixes it.

    Runs before any config is built, so a dataset that can never suit the policy is named
    before weights this machine lacks are.
    """
    from lerobot.configs.types import FeatureType

    name = entry.name
    images = {k: ft for k, ft in input_features.items() if ft.type is FeatureType.VISUAL}
    has_env = any(ft.type is FeatureType.ENV for ft in input_features.values())
    if entry.needs_state and "observation.state" not in input_features:
        raise UserError(f"Policy '{name}' needs observation.state among its inputs; record the robot state with the dataset.")
    if entry.needs_image_or_env_state and not (images or has_env):
        raise UserError(
            f"Policy '{name}' needs a camera image or observation.environment_state among its inputs; "
            "record with --cameras or keep the object state in the dataset."
        )
    if entry.images == "required" and not images:
        raise UserError(f"Policy '{name}' needs at least one camera image; record the dataset with --cameras agentview.")
    if entry.images == "exactly_one" and len(images) != 1:
        if not images:
            raise UserError(f"Policy '{name}' needs exactly one camera image; record the dataset with --cameras agentview.")
        raise UserError(
            f"Policy '{name}' takes exactly one camera image but the data has {len(images)} "
            f"({', '.join(images)}); record the dataset with a single --cameras entry."
        )
    if entry.images == "at_most_one" and len(images) > 1:
        raise UserError(
            f"Policy '{name}' takes at most one camera image but the data has {len(images)} "
            f"({', '.join(images)}); record the dataset with a single --cameras entry."
        )
    for key, ft in images.items():
        if min(ft.shape[-2:]) < entry.min_image_size:
            raise UserError(
                f"Policy '{name}' needs camera images of at least {entry.min_image_size}x{entry.min_image_size} pixels "
                f"but {key} is {ft.shape[-2]}x{ft.shape[-1]}; record with --image-size 84."
            )
    if entry.needs_reward and dataset_features is not None and "next.reward" not in dataset_features:
        raise UserError(
            f"Policy '{name}' learns from rewards but the data has no next.reward; record it with sir.data.collect, "
            "which writes the env's reward."
        )


def validate_config(entry: PolicyEntry, cfg: Any, dataset_features: dict[str, dict] | None = None) -> None:
    """The data needs, then what the built config adds (crop size, lerobot's own feature checks)."""
    from lerobot.configs.types import FeatureType

    name = entry.name
    check_data_needs(entry, cfg.input_features, dataset_features)
    crop = getattr(cfg, "crop_shape", None)
    for key, ft in cfg.input_features.items():
        if ft.type is FeatureType.VISUAL and crop is not None and (crop[0] > ft.shape[-2] or crop[1] > ft.shape[-1]):
            raise UserError(
                f"Policy '{name}' crops images to {crop[0]}x{crop[1]} but {key} is {ft.shape[-2]}x{ft.shape[-1]}; "
                f"record with --image-size {max(crop)} or larger, or use --preset cpu, which does not crop."
            )
    try:
        cfg.validate_features()
    except (ValueError, NotImplementedError) as err:
        raise UserError(f"Policy '{name}' cannot use these inputs: {err}") from err


def _check_downloads(entry: PolicyEntry, cfg: Any, preset: str) -> None:
    """Refuse configs that would download at build time, naming the file and how to provide it."""
    from lerobot.configs.types import FeatureType

    for asset in entry.hub_assets:
        source = getattr(cfg, asset.config_field, None) if asset.config_field else None
        source = str(source) if source else asset.repo_id
        if not availability.hub_repo_available(source):
            raise UserError(
                f"Policy '{entry.name}' loads its {asset.role} from {source}, which is not in the local Hugging Face "
                f"cache ({availability.hf_cache_dir()}) and cannot be downloaded here; pre-populate the cache "
                f"(huggingface-cli download {source} on a machine with network, then copy the cache over)"
                + (f" or give a local folder in the checkpoint's {asset.config_field}." if asset.config_field else ".")
            )
    has_images = any(ft.type is FeatureType.VISUAL for ft in cfg.input_features.values())
    weights = getattr(cfg, "pretrained_backbone_weights", None)
    if has_images and weights and cfg.pretrained_path is None and not availability.torchvision_weights_available():
        raise UserError(
            f"Policy '{entry.name}' (preset {preset}) starts its image backbone from torchvision's {weights}, which is "
            f"not at {availability.torchvision_weights_path()} and cannot be downloaded here; copy "
            f"{availability.RESNET18_IMAGENET_FILE} there, or use --preset cpu, which trains the backbone from scratch."
        )
