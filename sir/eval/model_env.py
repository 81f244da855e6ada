"""A saved model and the env it is rolled out in, for every command that rolls a saved
model out (``sir.eval.evaluate``, ``sir.dagger.record``): the env flags of a model folder
saved without sir's EnvSpec (a lerobot-trained one), the EnvSpec they describe, and the
refusals of flags or envs that do not fit the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sir.config import option
from sir.errors import UserError


@dataclass
class ModelEnvConfig:
    """The env for a model folder saved without sir's EnvSpec (a lerobot-trained one): the
    flags every command that rolls a saved model out shares."""

    env: str | None = option(None, "Robosuite env, only for a model saved without sir's EnvSpec (e.g. trained by "
                             "lerobot)")
    robot: str | None = option(None, "robot for --env (default: Panda)")
    cameras: list[str] | None = option(None, "cameras the model sees, for --env (default: those its image inputs name)")
    image_size: int | None = option(None, "camera image size, for --env (default: the model's image input size)",
                                    minimum=8)


def _text(value: Any) -> str:
    return (",".join(value) or "none") if isinstance(value, list) else str(value)


def check_env_flags(cfg: Any, spec: Any) -> None:
    """Refuse --env, --robot, --cameras or --image-size that contradict the model folder's own EnvSpec."""
    given = {"--env": (cfg.env, spec.env_name), "--robot": (cfg.robot, spec.robots[0]),
             "--cameras": (cfg.cameras, list(spec.cameras)), "--image-size": (cfg.image_size, spec.image_size)}
    for flag, (asked, has) in given.items():
        if asked is not None and asked != has and not (flag == "--image-size" and not spec.cameras):
            raise UserError(f"{cfg.checkpoint} was trained with {flag} {_text(has)} (its sir_env.json) but {flag} "
                            f"{_text(asked)} was given; drop {flag}, which only describes the env of models saved "
                            "without one.")


def spec_from_flags(cfg: Any) -> Any:
    """The EnvSpec for a model folder without sir's, from a command's --env, --robot,
    --cameras and --image-size (None without --env: the folder's own is then required)."""
    return spec_for_model(cfg.checkpoint, cfg.env, cfg.robot, cfg.cameras, cfg.image_size)


def spec_for_model(folder: str | Path, env: str | None, robot: str | None = None,
                   cameras: list[str] | None = None, image_size: int | None = None) -> Any:
    """The EnvSpec of ``env`` for the model in ``folder`` (None without ``env``); cameras and
    image size default to the model's image inputs."""
    import json

    from sir.envs.spec import IMAGE_FEATURE_PREFIX, default_spec

    if env is None:
        return None
    config_path = Path(folder) / "config.json"
    inputs = json.loads(config_path.read_text()).get("input_features", {}) if config_path.is_file() else {}
    images = {k[len(IMAGE_FEATURE_PREFIX):]: v for k, v in inputs.items() if k.startswith(IMAGE_FEATURE_PREFIX)}
    cameras = cameras if cameras is not None else list(images)
    size = image_size or (int(next(iter(images.values()))["shape"][-1]) if images else 84)
    overrides: dict[str, Any] = {"cameras": cameras, "image_size": size}
    if "observation.environment_state" not in inputs:
        overrides["env_state_keys"] = []
    return default_spec(env, robot or "Panda", **overrides)


def check_model_fits_env(policy_cfg: Any, spec: Any) -> None:
    """Refuse, before any rollout, a model whose inputs the env under ``spec`` does not give."""
    from sir.envs.layout import env_feature_shapes

    given = env_feature_shapes(spec)
    for key, ft in policy_cfg.input_features.items():
        want = tuple(int(n) for n in ft.shape)
        if key not in given:
            raise UserError(f"The model takes '{key}' but the {spec.env_name} env under its EnvSpec gives only "
                            f"{', '.join(sorted(given))}; pass the cameras it was trained with (--cameras).")
        have = given[key]
        # Images: the model's shape is (C, H, W), the env's features (H, W, C).
        if len(have) == 3 and len(want) == 3:
            have = (have[2], have[0], have[1])
        if have != want:
            raise UserError(f"The model takes '{key}' of shape {want} but the {spec.env_name} env with "
                            f"{', '.join(spec.robots)} gives {have}; it was trained on another robot or layout.")
