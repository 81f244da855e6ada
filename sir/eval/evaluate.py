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

from sir import atomic, seeds
from sir.config import option, parse, validate
from sir.errors import cli_errors
from sir.eval.cluster import EVAL_BACKENDS
from sir.eval.model_env import (
    ModelEnvConfig,
    check_env_flags,
    check_model_fits_env,
    spec_from_flags,
)
from sir.eval.rollout import evaluate_policy, format_metrics

EVAL_RESULTS = "eval_results.json"


@dataclass
class EvalConfig(ModelEnvConfig):
    checkpoint: str = option(None, "a best_model, final_model or checkpoint_<step> folder", required=True)
    episodes: int = option(50, "episodes to run", minimum=1)
    max_steps: int | None = option(None, "step limit per episode (default: the EnvSpec's horizon)", minimum=1)
    eval_seed: int = option(seeds.TEST.start, "seed of episode 0; episode i uses seed+i (default: the test range, "
                            "on which nothing is chosen; see sir.seeds)")
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


def parse_config(argv: list[str] | None = None) -> EvalConfig:
    return parse(EvalConfig, argv, "python -m sir.eval.evaluate",
                 "Roll a sir checkpoint out in the Robosuite env described by its EnvSpec and print "
                 "success rate (with a 95% Wilson interval), average reward and length. Writes eval_results.json "
                 "to eval/<model> beside the model folder.")


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Roll the checkpoint out, print its metrics and write them to <output-dir>/eval_results.json;
    returns what it wrote: the metrics, the checkpoint, its step, the seed of episode 0 and
    the step limit."""
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
          f"({', '.join(spec.robots)}): {cfg.episodes} episodes, seeds {cfg.eval_seed}-"
          f"{cfg.eval_seed + cfg.episodes - 1} ({seeds.role_of(cfg.eval_seed)})")
    reused = chosen_on(info, cfg.eval_seed, cfg.episodes)
    if reused:
        print(f"note: this model was {reused}; its score on them is optimistic (evaluate on the test range, the "
              "default, for a figure nothing chose).")
    max_steps = cfg.max_steps or spec.horizon
    metrics = evaluate_policy(policy, preprocessor, postprocessor, spec, cfg.episodes,
                              max_steps, seed=cfg.eval_seed, video_path=video,
                              video_episodes=cfg.video_episodes, render_camera=cfg.render_camera,
                              render_size=cfg.render_size, progress=True, workers=cfg.workers,
                              backend=cfg.eval_backend, ray_address=cfg.ray_address)
    print(format_metrics(metrics))
    if video is not None:
        print(f"  Video: {video}")
    out = out_dir / EVAL_RESULTS
    # The seed and step limit make a result comparable with another's, episode by episode
    # (sir.eval.compare pairs them only when both agree).
    record = {**metrics, "checkpoint": str(checkpoint), "model_step": info.get("step"), "eval_seed": cfg.eval_seed,
              "max_steps": max_steps}
    atomic.write_json(out, record)
    print(f"  Results: {out}")
    return record


def chosen_on(info: dict[str, Any], first: int, episodes: int) -> str | None:
    """What a model record says chose or confirmed it on seeds that overlap ``first`` ..
    ``first + episodes - 1`` (a phrase), or None."""
    selection = info.get("selection") or {}
    found = []
    for what, used in (("chosen", selection.get("choosing")), ("confirmed", selection.get("confirmation"))):
        if used and seeds.overlap((first, episodes), (used["seed"], used["episodes"])):
            found.append(f"{what} on seeds {used['seed']}-{used['seed'] + used['episodes'] - 1}")
    return " and ".join(found) or None


@cli_errors
def main(argv: list[str] | None = None) -> dict[str, Any]:
    return evaluate(parse_config(argv))


if __name__ == "__main__":
    main()
