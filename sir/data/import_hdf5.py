"""Import robosuite and robomimic HDF5 demonstrations as a LeRobotDataset v3.

    python -m sir.data.import_hdf5 demo.hdf5 --root data --repo-id lift_hdf5 \\
        [--cameras agentview --image-size 84] [--state-keys ...] [--max-episodes N]

Reads robosuite's human-demonstration files (``collect_human_demonstrations.py``: the env
name and ``env_info`` on ``data``, ``states``, ``actions`` and the ``model_file`` XML on
each ``data/demo_N``) and robomimic datasets (``env_args`` on ``data``). Observations are
not taken from the file: as robomimic's ``dataset_states_to_obs`` does, each recorded
simulator state is restored in robosuite and the env's observations are read there, so
cameras and sir's observation layout are chosen at import. Frame t holds the observation at
state t, the recorded action t, and the reward and success of the env at state t+1; the
file never holds the state after the last action, so that frame plays the action from the
last state (robomimic's way). Every demo is also replayed open loop from its first state
with its recorded actions, and how many succeed is printed and kept in ``sir_info.json``.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sir.config import add_arguments, from_namespace, option, validate
from sir.data.labels import label_demo
from sir.data.record import runner
from sir.data.record.runner import DatasetTarget, Frame, RecordingResult
from sir.envs.factory import action_dim, check_success, make_env, observation_to_features
from sir.envs.spec import EnvSpec, default_spec
from sir.errors import UserError, cli_errors

SIR_CONTROLLER = "BASIC"
ARM_CONTROLLER = "OSC_POSE"
# robomimic's env type for robosuite envs (robomimic.envs.env_base.EnvType.ROBOSUITE_TYPE).
ROBOMIMIC_ROBOSUITE_TYPE = 1
# Env settings sir chooses itself (rendering, cameras, observations, episode length, reward
# shaping) or reads separately (robots, controller); any other setting the file records is
# kept in the EnvSpec's env_kwargs, so evaluation builds the task as it was recorded.
SIR_ENV_SETTINGS = {
    "env_name", "robots", "controller_configs", "control_freq", "has_renderer", "has_offscreen_renderer",
    "use_camera_obs", "use_object_obs", "camera_names", "camera_heights", "camera_widths", "camera_depths",
    "camera_segmentations", "render_camera", "render_gpu_device_id", "renderer", "renderer_config",
    "horizon", "ignore_done", "hard_reset", "reward_shaping",
}


@dataclass
class ImportConfig(DatasetTarget):
    path: str = option(None, "the HDF5 file (the first argument on the command line)", cli=False)
    max_episodes: int | None = option(None, "import only the first N demos (default: all)", positive=True)


@dataclass
class Source:
    """What an HDF5 file says about how its demos were recorded."""

    path: Path
    kind: str  # "robosuite" or "robomimic"
    env_name: str
    env_kwargs: dict[str, Any]
    demos: list[str] = field(default_factory=list)  # data/demo_N names, in N order


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _json_attr(path: Path, attrs: Any, name: str) -> dict[str, Any]:
    try:
        value = json.loads(_text(attrs[name]))
    except ValueError as err:
        raise UserError(f"{path}: the '{name}' attribute of 'data' is not JSON ({err}).") from err
    if not isinstance(value, dict):
        raise UserError(f"{path}: the '{name}' attribute of 'data' is not a JSON object.")
    return value


def open_file(path: Path) -> Any:
    import h5py

    if not path.is_file():
        raise UserError(f"There is no file {path}.")
    if not h5py.is_hdf5(path):
        raise UserError(f"{path} is not an HDF5 file; sir imports robosuite's demo.hdf5 and robomimic datasets.")
    return h5py.File(path, "r")


def read_source(path: Path, file: Any) -> Source:
    """The file's env and demos, or a UserError saying what it lacks."""
    import robosuite

    data = file.get("data")
    if data is None or not hasattr(data, "attrs"):
        raise UserError(f"{path} has no 'data' group; robosuite and robomimic files keep their demos in data/demo_N.")
    if "env_args" in data.attrs:
        env_args = _json_attr(path, data.attrs, "env_args")
        if env_args.get("type", ROBOMIMIC_ROBOSUITE_TYPE) != ROBOMIMIC_ROBOSUITE_TYPE:
            raise UserError(f"{path} was recorded in a robomimic env of type {env_args['type']}, not a robosuite env.")
        kind, env_name, env_kwargs = "robomimic", env_args.get("env_name"), dict(env_args.get("env_kwargs") or {})
    elif "env" in data.attrs:
        env_kwargs = _json_attr(path, data.attrs, "env_info") if "env_info" in data.attrs else {}
        kind, env_name = "robosuite", _text(data.attrs["env"])
    else:
        raise UserError(f"{path} names no env: 'data' has neither robosuite's 'env' nor robomimic's "
                        "'env_args' attribute.")
    if env_name not in robosuite.ALL_ENVIRONMENTS:
        raise UserError(f"{path} was recorded in the env {env_name!r}, which robosuite {robosuite.__version__} "
                        "does not have.")
    demos = sorted((k for k in data if re.fullmatch(r"demo_\d+", k)), key=lambda k: int(k.split("_")[1]))
    if not demos:
        raise UserError(f"{path} has no demos (data/demo_N groups).")
    for name in demos:
        for key in ("states", "actions"):
            if key not in data[name] or len(data[name][key]) == 0:
                raise UserError(f"{path}: data/{name} has no '{key}'; sir regenerates observations from recorded "
                                "simulator states and actions.")
    return Source(path, kind, env_name, env_kwargs, demos)


def _controller_name(config: dict[str, Any]) -> str:
    parts = config.get("body_parts", {})
    arms = sorted({str(parts[n].get("type")) for n in ("right", "left") if isinstance(parts.get(n), dict)})
    return f"{config.get('type')} controller with {'/'.join(arms) or 'no'} arms"


def _same_as_sir(arm: dict[str, Any], reference: dict[str, Any]) -> bool:
    """Whether every parameter ``arm`` sets equals sir's (robosuite fills in the rest)."""
    arm = dict(arm)
    if "control_delta" in arm:  # robosuite <= 1.4's name for input_type
        arm["input_type"] = "delta" if arm.pop("control_delta") else "absolute"
    return json.loads(json.dumps({**reference, **arm})) == json.loads(json.dumps(reference))


def controller_env_kwargs(path: Path, recorded: Any, robots: list[str]) -> dict[str, Any]:
    """The env_kwargs that make sir's env use the file's controller: none when it is sir's
    BASIC composite with OSC_POSE arms and sir's gains; the file's own config when only the
    gains differ. Any other controller is refused."""
    from robosuite.controllers import load_composite_controller_config
    from robosuite.controllers.composite.composite_controller_factory import (
        refactor_composite_controller_config,
    )

    configs = recorded if isinstance(recorded, list) else [recorded] * len(robots)
    normalized, same = [], True
    for robot, config in zip(robots, configs, strict=False):
        if config is None:  # robosuite.make uses the robot's default
            config = load_composite_controller_config(robot=robot)
        # robomimic's files hold robosuite <= 1.4 arm configs; robosuite converts them thus.
        config = refactor_composite_controller_config(config, robot, ["right", "left"])
        reference = load_composite_controller_config(controller=SIR_CONTROLLER, robot=robot)
        arms = {name: part for name, part in config.get("body_parts", {}).items() if name in ("right", "left")}
        if (config.get("type") != SIR_CONTROLLER or not arms
                or any(a.get("type") != ARM_CONTROLLER for a in arms.values())):
            raise UserError(f"{path} was recorded with the {_controller_name(config)}; sir replays only robosuite's "
                            f"{SIR_CONTROLLER} controller with {ARM_CONTROLLER} arms.")
        same = same and all(_same_as_sir(a, reference["body_parts"].get(n, {})) for n, a in arms.items())
        normalized.append(config)
    if same:
        return {}
    return {"controller_configs": normalized if len(normalized) > 1 else normalized[0]}


def spec_for_source(source: Source, cfg: ImportConfig) -> EnvSpec:
    kwargs = source.env_kwargs
    robots = kwargs.get("robots")
    if not robots:
        raise UserError(f"{source.path} does not say which robot recorded it (no 'robots' in its env settings).")
    robots = [robots] if isinstance(robots, str) else list(robots)
    env_kwargs = {k: v for k, v in kwargs.items() if k not in SIR_ENV_SETTINGS}
    env_kwargs.update(controller_env_kwargs(source.path, kwargs.get("controller_configs"), robots))
    layout = {}
    if cfg.state_keys:
        layout["state_keys"] = cfg.state_keys
    if cfg.env_state_keys:
        layout["env_state_keys"] = cfg.env_state_keys
    spec = default_spec(source.env_name, robots[0], control_freq=int(kwargs.get("control_freq", 20)),
                        cameras=cfg.cameras, image_size=cfg.image_size, env_kwargs=env_kwargs, **layout)
    spec.robots = robots
    return spec


def build_env(spec: EnvSpec, path: Path) -> Any:
    import robosuite

    try:
        return make_env(spec)
    except TypeError as err:  # a setting this robosuite does not take
        raise UserError(f"robosuite {robosuite.__version__} cannot build {spec.env_name} with the settings "
                        f"recorded in {path} ({err}).") from err


def restore(env: Any, state: np.ndarray) -> None:
    env.sim.set_state_from_flattened(state)
    env.sim.forward()


def start_demo(env: Any, demo: Any, states: np.ndarray, label: str) -> None:
    """Put ``env`` at the demo's first state, in the demo's own MuJoCo model when the file has
    it (as robomimic's ``reset_to``: the XML's asset paths are rewritten to this robosuite)."""
    env.reset()
    if "model_file" in demo.attrs:
        try:
            env.reset_from_xml_string(env.edit_model_xml(_text(demo.attrs["model_file"])))
        except Exception as err:  # MuJoCo's XML errors come as assorted types
            raise UserError(f"{label}: this robosuite cannot load the demo's model_file "
                            f"({type(err).__name__}: {err}).") from err
        env.sim.reset()
    size = env.sim.get_state().flatten().size
    if states.shape[1] != size:
        raise UserError(f"{label} has simulator states of {states.shape[1]} values, but the {type(env).__name__} env "
                        f"here has {size}; was the file recorded with another robosuite or robot?")
    restore(env, states[0])


def regenerate(env: Any, spec: EnvSpec, demo: Any, states: np.ndarray, actions: np.ndarray, label: str) -> list[Frame]:
    """The demo's frames, each observation read at its restored state."""
    start_demo(env, demo, states, label)
    observations, rewards, successes = [], [], []
    for t in range(len(actions)):
        if t:
            restore(env, states[t])
            # The reward and success that followed action t-1 are the env's at state t.
            rewards.append(env.reward(actions[t - 1]))
            successes.append(check_success(env))
        observations.append(observation_to_features(env._get_observations(force_update=True), spec))
    _, reward, _, _ = env.step(actions[-1])
    rewards.append(reward)
    successes.append(check_success(env))
    return [
        {**obs, "action": action, "next.reward": np.array([reward], dtype=np.float32),
         "next.success": np.array([success], dtype=bool)}
        for obs, action, reward, success in zip(observations, actions, rewards, successes, strict=True)
    ]


def replay_succeeds(env: Any, demo: Any, states: np.ndarray, actions: np.ndarray, label: str) -> bool:
    """Whether the recorded actions, played open loop from the first state, reach success."""
    start_demo(env, demo, states, label)
    for action in actions:
        env.step(action)
        if check_success(env):
            return True
    return False


def import_hdf5(cfg: ImportConfig) -> RecordingResult:
    """Convert the demos of ``cfg.path`` into a LeRobotDataset at ``cfg.root/cfg.repo_id``."""
    from sir.progress import Progress

    validate(cfg)
    path = Path(cfg.path)
    with open_file(path) as file:
        source = read_source(path, file)
        demos = source.demos[: cfg.max_episodes]
        spec = spec_for_source(source, cfg)
        env = build_env(spec, path)
        writer = None
        result = RecordingResult()
        bar = Progress(len(demos), f"Importing {path.name}", "ep")
        try:
            writer = runner.open_writer(
                env, spec, cfg.root, cfg.repo_id, seed=0,
                info={"recorded_by": "sir.data.import_hdf5", "source_file": str(path.resolve()),
                      "source_format": source.kind},
            )
            for name in demos:
                demo, label = file["data"][name], f"{path}: data/{name}"
                states = np.asarray(demo["states"], dtype=np.float64)
                actions = np.asarray(demo["actions"], dtype=np.float32)
                if actions.ndim != 2 or actions.shape[1] != action_dim(env):
                    raise UserError(f"{label} has actions of shape {actions.shape}, but the {spec.env_name} env "
                                    f"with the {spec.controller} controller takes {action_dim(env)} values per step.")
                if len(states) < len(actions):
                    raise UserError(f"{label} has {len(states)} states for {len(actions)} actions; "
                                    "each action needs the state it was taken in.")
                frames = regenerate(env, spec, demo, states, actions, label)
                success = any(bool(f["next.success"][0]) for f in frames)
                label_demo(frames, success)
                replayed = replay_succeeds(env, demo, states, actions, label)
                writer.add_episode(frames)
                result.tried += 1
                result.successes += success
                result.episodes += 1
                result.frames += len(frames)
                result.episode_lengths.append(len(frames))
                result.per_episode.append({"demo": name, "frames": len(frames), "success": success,
                                           "replay_success": replayed, "saved": True})
                bar.update(1, replayed=f"{sum(e['replay_success'] for e in result.per_episode)}/{result.tried}")
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        finally:
            bar.close()
            env.close()
    replayed = sum(e["replay_success"] for e in result.per_episode)
    writer.info.update({
        "demos": [e["demo"] for e in result.per_episode],
        "restored_states_succeed": result.successes,
        "replay_open_loop": {"succeeded": replayed, "episodes": result.episodes,
                             "failed_demos": [e["demo"] for e in result.per_episode if not e["replay_success"]]},
    })
    result.path = writer.finalize()
    print(f"Wrote {result.episodes} episodes ({result.frames} frames) to {result.path} "
          f"[the recorded states reach success in {result.successes}/{result.episodes}]")
    print(f"replayed with recorded actions: {replayed}/{result.episodes} succeed")
    return result


def parse_config(argv: list[str] | None = None) -> ImportConfig:
    parser = argparse.ArgumentParser(
        prog="python -m sir.data.import_hdf5",
        description="Convert a robosuite demo.hdf5 or a robomimic dataset into a LeRobotDataset v3 "
                    "(with the EnvSpec in meta/sir_env.json), regenerating observations in robosuite.")
    parser.add_argument("path", help="the HDF5 file")
    add_arguments(parser, ImportConfig)
    cfg = from_namespace(ImportConfig, parser.parse_args(argv))
    validate(cfg)
    return cfg


@cli_errors
def main(argv: list[str] | None = None) -> Path | None:
    return import_hdf5(parse_config(argv)).path


if __name__ == "__main__":
    main()
