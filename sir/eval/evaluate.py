"""Evaluate a saved policy in the Robosuite env recorded with it.

    python -m sir.eval.evaluate --checkpoint checkpoints/act_lift_demos/best_model --episodes 50 [--workers N]

A model folder holds the model only: results and videos go to ``<run>/eval/<model>/``
(beside the model folder, under ``eval/``). Models trained elsewhere (lerobot's own
``pretrained_model`` folders) carry no EnvSpec: ``--env``/``--robot``/``--cameras`` give it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sir import atomic
from sir.config import option, parse, validate
from sir.errors import UserError, cli_errors
from sir.eval.cluster import EVAL_BACKENDS
from sir.eval.rollout import DEFAULT_EVAL_SEED, evaluate_policy, format_metrics


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


@dataclass
class EvalConfig(ModelEnvConfig):
    checkpoint: str = option(None, "a best_model, final_model or checkpoint_<step> folder", required=True)
    episodes: int = option(50, "episodes to run", minimum=1)
    max_steps: int | None = option(None, "step limit per episode (default: the EnvSpec's horizon)", minimum=1)
    eval_seed: int = option(DEFAULT_EVAL_SEED, "seed of episode 0; episode i uses seed+i")
    save_video: bool = option(False, "record the first --video-episodes episodes")
    video_episodes: int = option(4, "episodes in the video", minimum=1)
    video_path: str | None = option(None, "default: <output-dir>/eval.mp4")
    output_dir: str | None = option(None, "where eval_results.json (and the video) go (default: eval/<model> beside "
                                    "the model folder, e.g. <run>/eval/best_model)")
    render_camera: str = option("agentview", "camera the video is rendered from")
    render_size: int = option(256, "side of each video tile, in pixels", minimum=16)
    workers: int | None = option(
        None, "env worker processes (default: one per core, capped by --episodes; 1: no worker processes)", minimum=1)
    device: str | None = option(None, "cuda, mps or cpu (default: the best available)")
    eval_backend: str = option("local", "where the envs run: local worker processes, or Ray actors on a running Ray "
                               "cluster (see --ray-address; --workers then defaults to the cluster's CPUs)",
                               choices=EVAL_BACKENDS)
    ray_address: str = option("auto", "the Ray cluster of --eval-backend ray: auto (RAY_ADDRESS, else the cluster "
                              "`ray start` began on this machine) or the head's HOST:PORT")


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Roll the checkpoint out, print its metrics and write them to <output-dir>/eval_results.json."""
    from sir.policies.checkpoint import load_checkpoint
    from sir.runtime import pick_device, quiet_libraries

    validate(cfg)
    quiet_libraries()
    if cfg.eval_backend == "ray":
        from sir.eval.cluster import resolve_address

        resolve_address(cfg.ray_address)  # before loading anything: no cluster, one sentence
    checkpoint = Path(cfg.checkpoint)
    policy, preprocessor, postprocessor, spec, info = load_checkpoint(
        checkpoint, device=pick_device(cfg.device), spec=spec_from_flags(cfg))
    check_env_flags(cfg, spec)
    check_model_fits_env(policy.config, spec)
    if cfg.save_video:
        from sir.envs.factory import check_render_camera

        check_render_camera(spec, cfg.render_camera)
    out_dir = Path(cfg.output_dir) if cfg.output_dir else checkpoint.parent / "eval" / checkpoint.name
    out_dir.mkdir(parents=True, exist_ok=True)
    video = (Path(cfg.video_path) if cfg.video_path else out_dir / "eval.mp4") if cfg.save_video else None
    print(f"Evaluating {checkpoint} (step {info.get('step', '?')}) on {spec.env_name} "
          f"({', '.join(spec.robots)}): {cfg.episodes} episodes")
    metrics = evaluate_policy(policy, preprocessor, postprocessor, spec, cfg.episodes,
                              cfg.max_steps or spec.horizon, seed=cfg.eval_seed, video_path=video,
                              video_episodes=cfg.video_episodes, render_camera=cfg.render_camera,
                              render_size=cfg.render_size, progress=True, workers=cfg.workers,
                              backend=cfg.eval_backend, ray_address=cfg.ray_address)
    print(format_metrics(metrics))
    if video is not None:
        print(f"  Video: {video}")
    out = out_dir / "eval_results.json"
    atomic.write_json(out, {**metrics, "checkpoint": str(checkpoint), "model_step": info.get("step"),
                            "eval_seed": cfg.eval_seed})
    print(f"  Results: {out}")
    return metrics


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


def parse_config(argv: list[str] | None = None) -> EvalConfig:
    return parse(EvalConfig, argv, "python -m sir.eval.evaluate",
                 "Roll a sir checkpoint out in the Robosuite env described by its EnvSpec and print "
                 "success rate (with a 95% Wilson interval), average reward and length. Writes eval_results.json "
                 "to eval/<model> beside the model folder.")


@cli_errors
def main(argv: list[str] | None = None) -> dict[str, Any]:
    return evaluate(parse_config(argv))


if __name__ == "__main__":
    main()
