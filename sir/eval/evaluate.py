"""Evaluate a saved policy in the Robosuite env recorded with it.

    python -m sir.eval.evaluate --checkpoint checkpoints/act_lift_demos/best_model --episodes 50 [--workers N]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sir import atomic
from sir.config import option, parse, validate
from sir.errors import cli_errors
from sir.eval.rollout import DEFAULT_EVAL_SEED, evaluate_policy, format_metrics


@dataclass
class EvalConfig:
    checkpoint: str = option(None, "a best_model, final_model or checkpoint_<step> folder", required=True)
    episodes: int = option(50, "episodes to run", minimum=1)
    max_steps: int | None = option(None, "step limit per episode (default: the EnvSpec's horizon)")
    eval_seed: int = option(DEFAULT_EVAL_SEED, "seed of episode 0; episode i uses seed+i")
    save_video: bool = option(False, "record the first --video-episodes episodes")
    video_episodes: int = option(4, "episodes in the video")
    video_path: str | None = option(None, "default: <checkpoint>/eval.mp4")
    render_camera: str = option("agentview", "camera the video is rendered from")
    render_size: int = option(256, "side of each video tile, in pixels", minimum=16)
    workers: int | None = option(
        None, "env worker processes (default: one per core, capped by --episodes; 1: no worker processes)", minimum=1)
    device: str | None = option(None, "cuda, mps or cpu (default: the best available)")


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Roll the checkpoint out, print its metrics and write them to <checkpoint>/eval_results.json."""
    from sir.policies.checkpoint import load_checkpoint
    from sir.runtime import pick_device, quiet_libraries

    validate(cfg)
    quiet_libraries()
    checkpoint = Path(cfg.checkpoint)
    policy, preprocessor, postprocessor, spec, info = load_checkpoint(checkpoint, device=pick_device(cfg.device))
    video = (Path(cfg.video_path) if cfg.video_path else checkpoint / "eval.mp4") if cfg.save_video else None
    print(f"Evaluating {checkpoint} (step {info.get('step', '?')}) on {spec.env_name} "
          f"({', '.join(spec.robots)}): {cfg.episodes} episodes")
    metrics = evaluate_policy(policy, preprocessor, postprocessor, spec, cfg.episodes,
                              cfg.max_steps or spec.horizon, seed=cfg.eval_seed, video_path=video,
                              video_episodes=cfg.video_episodes, render_camera=cfg.render_camera,
                              render_size=cfg.render_size, progress=True, workers=cfg.workers)
    print(format_metrics(metrics))
    if video is not None:
        print(f"  Video: {video}")
    out = checkpoint / "eval_results.json"
    atomic.write_json(out, {**metrics, "checkpoint": str(checkpoint), "eval_seed": cfg.eval_seed})
    return metrics


def parse_config(argv: list[str] | None = None) -> EvalConfig:
    return parse(EvalConfig, argv, "python -m sir.eval.evaluate",
                 "Roll a sir checkpoint out in the Robosuite env described by its EnvSpec and print "
                 "success rate (with a 95% Wilson interval), average reward and length. Writes eval_results.json "
                 "beside the checkpoint.")


@cli_errors
def main(argv: list[str] | None = None) -> dict[str, Any]:
    return evaluate(parse_config(argv))


if __name__ == "__main__":
    main()
