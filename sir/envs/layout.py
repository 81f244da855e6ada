"""Does a dataset fit the env it will be evaluated in? Checked before training starts, so
data recorded elsewhere (other robots, other observation layouts) is refused in one
sentence instead of training for hours and crashing at the first evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sir.envs.spec import (
    ENV_STATE_FEATURE,
    IMAGE_FEATURE_PREFIX,
    SPEC_FILENAME,
    STATE_FEATURE,
    TASK_DESCRIPTIONS,
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


def lost_spec_hint(repo_id: str) -> str:
    """The sentence's start for a sir dataset whose EnvSpec an editing tool dropped."""
    return (f"Dataset '{repo_id}' has no meta/{SPEC_FILENAME} (lerobot's editing tools, such as delete_episodes, "
            f"split_dataset and aggregate_datasets, drop it)")


def rebuild_spec(root: str | Path, features: dict[str, dict] | None = None) -> EnvSpec | None:
    """The EnvSpec of a dataset that lost its ``meta/sir_env.json``, from what lerobot's
    tools keep: the task (sir writes the env's ``TASK_DESCRIPTIONS`` entry, or its name),
    ``robot_type`` (the robots' names, lowercased, joined by ``_``), fps (the control
    frequency) and the image features (cameras, size), with the default observation layout
    and horizon. ``features`` default to those of its ``info.json``. None when the task or
    robot type names no Robosuite env or robot."""
    import pandas as pd
    from robosuite.environments.base import REGISTERED_ENVS
    from robosuite.robots import ROBOT_CLASS_MAPPING

    meta = Path(root) / "meta"
    try:
        info = json.loads((meta / "info.json").read_text())
        tasks = [str(t) for t in pd.read_parquet(meta / "tasks.parquet").index]
        features = info["features"] if features is None else features
    except (OSError, ValueError, KeyError, TypeError):
        return None
    by_task = {text: env for env, text in TASK_DESCRIPTIONS.items()} | {env: env for env in REGISTERED_ENVS}
    envs = {by_task.get(t) for t in tasks}
    robot_names = {name.lower(): name for name in ROBOT_CLASS_MAPPING}
    robots = [robot_names.get(r) for r in str(info.get("robot_type") or "").split("_")]
    if len(envs) != 1 or None in envs or not robots or None in robots:
        return None
    spec = spec_from_features(features, envs.pop(), robots[0])
    spec.robots = robots
    spec.control_freq = int(info.get("fps", spec.control_freq))
    return spec


def spec_without_record(repo_id: str, root: str | Path, features: dict[str, dict], env: str | None = None,
                        robot: str | None = None, state_keys: list[str] | None = None,
                        env_state_keys: list[str] | None = None) -> tuple[EnvSpec, str, bool]:
    """(spec, the line announcing it, whether it was rebuilt) for data without an EnvSpec:
    rebuilt from the metadata (``rebuild_spec``) when no env or layout flag is given and it
    can be, otherwise ``spec_from_features`` with the flags."""
    flags = env is not None or robot is not None or bool(state_keys) or env_state_keys is not None
    spec = None if flags else rebuild_spec(root, features)
    if spec is not None:
        return spec, (f"{lost_spec_hint(repo_id)}: rebuilt its EnvSpec from the data's task, robot type, fps and "
                      f"features ({spec.env_name}, {', '.join(spec.robots)}, {spec.control_freq} Hz, the default "
                      f"layout and horizon); copy the file from the source dataset to use the recorded one."), True
    spec = spec_from_features(features, env, robot, state_keys, env_state_keys)
    return spec, (f"No EnvSpec recorded with the data: using the default {spec.env_name} layout for {spec.robots[0]}"
                  + (f" with cameras {', '.join(spec.cameras)}." if spec.cameras else ".")), False


def spec_for_data(recorded: EnvSpec | None, repo_id: str, root: str | Path, features: dict[str, dict],
                  env: str | None = None, robot: str | None = None, state_keys: list[str] | None = None,
                  env_state_keys: list[str] | None = None, check_fits: bool = False) -> tuple[EnvSpec, str | None]:
    """(the EnvSpec a run on this data uses, a line to print or None). The spec recorded with
    the data wins, and a flag that contradicts it is refused; without one it is rebuilt or
    made from the flags (``spec_without_record``). ``check_fits``: before any training, that
    an evaluation can feed the model what the data holds (``check_data_fits_env``)."""
    line, rebuilt = None, False
    if recorded is not None:
        spec = recorded
        for flag, asked, has in (("--env", env, spec.env_name), ("--robot", robot, spec.robots[0]),
                                 ("--state-keys", state_keys, list(spec.state_keys)),
                                 ("--env-state-keys", env_state_keys, list(spec.env_state_keys))):
            if asked is not None and asked != has:
                has, asked = (",".join(v) if isinstance(v, list) else v for v in (has, asked))
                raise UserError(f"The data records {has} in its EnvSpec but {flag} {asked} was given; drop {flag} "
                                "(it only fills in for datasets recorded without an EnvSpec).")
    else:
        spec, line, rebuilt = spec_without_record(repo_id, root, features, env, robot, state_keys, env_state_keys)
    if check_fits:
        check_data_fits_env(spec, features, recorded is not None, repo_id if rebuilt else None)
    return spec, line


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
    words = {w for k in keys for w in k.lower().replace("-", "_").split("_")
             if len(w) > 2 and not w.startswith("robot")}
    return any(w in str(n).lower() for n in names for w in words)


def check_data_fits_env(spec: EnvSpec, features: dict[str, dict], recorded: bool,
                        rebuilt_for: str | None = None) -> None:
    """Refuse data whose observation features the env under ``spec`` cannot feed back, by
    shape, or by name for data recorded without an EnvSpec (``recorded`` False).
    ``rebuilt_for``: the dataset whose lost EnvSpec ``spec`` was rebuilt for, named in the refusal."""
    if rebuilt_for is None:
        return _check_fits(spec, features, recorded)
    try:
        _check_fits(spec, features, recorded)
    except UserError as err:
        reason = str(err).split(";")[0].rstrip(".")
        raise UserError(f"{lost_spec_hint(rebuilt_for)}, and the {spec.env_name} layout rebuilt from its metadata "
                        f"does not fit it ({reason}); copy meta/{SPEC_FILENAME} from the source dataset or pass "
                        f"--env/--robot with --state-keys/--env-state-keys.") from err


def _check_fits(spec: EnvSpec, features: dict[str, dict], recorded: bool) -> None:
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
