"""Does a dataset fit the env it will be evaluated in? Checked before training starts, so
data recorded elsewhere (other robots, other observation layouts) is refused in one
sentence instead of training for hours and crashing at the first evaluation."""

from __future__ import annotations

from typing import Any

from sir.envs.spec import (
    ENV_STATE_FEATURE,
    IMAGE_FEATURE_PREFIX,
    STATE_FEATURE,
    EnvSpec,
    default_spec,
)
from sir.errors import UserError

WAY_OUT = ("record the data with sir (its EnvSpec travels with it), choose the layout with "
           "--state-keys/--env-state-keys, or train without Robosuite evaluation with --no-eval")


def spec_from_features(features: dict[str, dict], env_name: str | None = None, robot: str | None = None,
                       state_keys: list[str] | None = None, env_state_keys: list[str] | None = None) -> EnvSpec:
    """The EnvSpec for a dataset recorded without one: ``--env``/``--robot`` and the layout
    flags, with the cameras its ``observation.images.*`` features name."""
    cameras = [k[len(IMAGE_FEATURE_PREFIX):] for k in features if k.startswith(IMAGE_FEATURE_PREFIX)]
    overrides: dict[str, Any] = {"cameras": cameras}
    if cameras:
        overrides["image_size"] = int(features[IMAGE_FEATURE_PREFIX + cameras[0]]["shape"][0])
    if state_keys:
        overrides["state_keys"] = list(state_keys)
    if env_state_keys is not None:
        overrides["env_state_keys"] = list(env_state_keys)
    elif ENV_STATE_FEATURE not in features:
        overrides["env_state_keys"] = []
    return default_spec(env_name or "Lift", robot or "Panda", **overrides)


def env_feature_shapes(spec: EnvSpec) -> dict[str, tuple[int, ...]]:
    """Shapes of the features the env gives under ``spec`` (one env built and reset)."""
    from sir.envs.factory import make_env, observation_to_features, reset_env

    try:
        env = make_env(spec)
    except ValueError as err:
        if not spec.cameras:
            raise
        # robosuite refuses an unknown camera name only while it builds the env.
        raise UserError(f"The {spec.env_name} env cannot give the data's cameras {', '.join(spec.cameras)} "
                        f"({err}); {WAY_OUT}.") from err
    try:
        return {k: tuple(v.shape) for k, v in observation_to_features(reset_env(env, 0), spec).items()}
    finally:
        env.close()


def _looks_like(names: list[str], keys: list[str]) -> bool:
    """Whether per-value names (info.json) could belong to robosuite observation ``keys``:
    some name shares a word with some key (``eef``, ``gripper``, ``cube``...)."""
    words = {w for k in keys for w in k.lower().replace("-", "_").split("_") if len(w) > 2 and not w.startswith("robot")}
    return any(w in str(n).lower() for n in names for w in words)


def check_data_fits_env(spec: EnvSpec, features: dict[str, dict], recorded: bool) -> None:
    """Refuse data whose observation features the env under ``spec`` cannot feed back, by
    shape, or by name for data recorded without an EnvSpec (``recorded`` False)."""
    given = env_feature_shapes(spec)
    for key, ft in features.items():
        if not key.startswith("observation."):
            continue
        if key not in given:
            raise UserError(f"The data has '{key}' but the {spec.env_name} env gives no such observation "
                            f"(it gives {', '.join(sorted(given))}); {WAY_OUT}.")
        shape = tuple(int(n) for n in ft["shape"])
        if shape != given[key]:
            raise UserError(f"The data's '{key}' has shape {shape} but the {spec.env_name} env with "
                            f"{', '.join(spec.robots)} gives {given[key]}; {WAY_OUT}.")
        names = ft.get("names")
        if isinstance(names, dict):  # lerobot also writes {"motors": [...]}
            names = [n for v in names.values() for n in (v if isinstance(v, list) else [v])]
        keys = {STATE_FEATURE: spec.state_keys, ENV_STATE_FEATURE: spec.env_state_keys}.get(key)
        if not recorded and keys and isinstance(names, list) and names and not _looks_like(names, keys):
            raise UserError(f"The data's '{key}' holds {', '.join(map(str, names[:3]))}, ... but sir would feed "
                            f"{' + '.join(keys)} from the {spec.env_name} env; {WAY_OUT}.")
