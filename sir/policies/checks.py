"""The checks a policy build passes: each refuses, in one sentence naming the flag or data
that fixes it, what lerobot would otherwise fail on with a traceback or a download.

``sir.policies.build.build_config`` runs each of them once, in the order the user should
hear about problems: the data before this machine's files, the files before the settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sir.errors import UserError
from sir.policies import availability
from sir.policies.registry import PRESETS, PolicyEntry


def check_preset_name(preset: str) -> None:
    if preset not in PRESETS:
        raise UserError(f"Unknown --preset '{preset}'; choose one of {', '.join(PRESETS)}.")


def check_trainable(entry: PolicyEntry) -> None:
    """Refuse policies sir cannot train at all, or whose packages are missing."""
    if entry.unsupported:
        raise UserError(entry.unsupported.message)
    missing = availability.missing_packages(entry.packages)
    if missing:
        raise UserError(
            f"Policy '{entry.name}' needs the Python package(s) {', '.join(missing)}, which are not installed; "
            f"install them into this environment (lerobot's extra for {entry.name})."
        )


def check_preset(entry: PolicyEntry, preset: str) -> None:
    if preset not in entry.presets:
        why = f" ({entry.preset_note})" if entry.preset_note else ""
        raise UserError(
            f"Policy '{entry.name}' has no '{preset}' preset{why}; pass --preset {' or '.join(entry.presets)}."
        )


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
        raise UserError(f"Policy '{name}' needs observation.state among its inputs; "
                        "record the robot state with the dataset.")
    if entry.needs_image_or_env_state and not (images or has_env):
        raise UserError(
            f"Policy '{name}' needs a camera image or observation.environment_state among its inputs; "
            "record with --cameras or keep the object state in the dataset."
        )
    if entry.images == "required" and not images:
        raise UserError(f"Policy '{name}' needs at least one camera image; "
                        "record the dataset with --cameras agentview.")
    if entry.images == "exactly_one" and len(images) != 1:
        if not images:
            raise UserError(f"Policy '{name}' needs exactly one camera image; "
                            "record the dataset with --cameras agentview.")
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


def weights_source(entry: PolicyEntry, preset: str, pretrained_path: str | Path | None) -> Path | str | None:
    """Where the policy's starting weights come from: a local folder, a cached hub id, or
    nowhere (None: lerobot initialises them); refuses a source this machine does not hold."""
    if pretrained_path is None:
        if entry.base_model is None:
            return None
        if not availability.hub_repo_available(entry.base_model):
            raise UserError(
                f"Policy '{entry.name}' starts from the pretrained weights {entry.base_model}, which are not in the "
                f"local Hugging Face cache ({availability.hf_cache_dir()}) and cannot be downloaded here; pass "
                f"--pretrained-path with a local copy, or pre-populate the cache (huggingface-cli download "
                f"{entry.base_model} on a machine with network, then copy the cache over)."
            )
        source: Path | str = entry.base_model
    else:
        source = str(pretrained_path)
    if preset != "default":
        raise UserError(
            f"--pretrained-path takes the model size of policy '{entry.name}' from its checkpoint; "
            f"drop --preset {preset}."
        )
    if availability.is_local_dir(source):
        folder = Path(source).expanduser()
        if not (folder / "config.json").is_file():
            raise UserError(f"--pretrained-path {source} holds no config.json; point it at a saved policy folder.")
        return folder
    if pretrained_path is not None and not availability.hub_repo_available(source):
        raise UserError(
            f"--pretrained-path {source} is neither a local folder nor in the local Hugging Face cache "
            f"({availability.hf_cache_dir()}), and nothing can be downloaded here; give a local copy."
        )
    return source


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


def check_config(entry: PolicyEntry, cfg: Any) -> None:
    """What the built config adds to the data needs: its crop size, lerobot's own feature checks."""
    from lerobot.configs.types import FeatureType

    name = entry.name
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


def validate_config(entry: PolicyEntry, cfg: Any, dataset_features: dict[str, dict] | None = None) -> None:
    """Every check a built config must pass: the data needs, then what the config adds."""
    check_data_needs(entry, cfg.input_features, dataset_features)
    check_config(entry, cfg)


def check_downloads(entry: PolicyEntry, cfg: Any, preset: str) -> None:
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
