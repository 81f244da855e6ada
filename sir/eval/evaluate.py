"""Evaluate a saved policy in the Robosuite env recorded with it.

    python -m sir.eval.evaluate --checkpoint checkpoints/act_lift_demos/best_model --episodes 50 [--workers N]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sir import atomic
from sir.errors import cli_errors


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from sir.eval.rollout import DEFAULT_EVAL_SEED

    p = argparse.ArgumentParser(
        prog="python -m sir.eval.evaluate",
        description="Roll a sir checkpoint out in the Robosuite env described by its EnvSpec and print "
        "success rate (with a 95%% Wilson interval), average reward and length. Writes eval_results.json "
        "beside the checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="a best_model, final_model or checkpoint_<step> folder")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--max-steps", type=int, default=None, help="step limit per episode (default: the EnvSpec's horizon)")
    p.add_argument("--eval-seed", type=int, default=DEFAULT_EVAL_SEED, help="seed of episode 0; episode i uses seed+i")
    p.add_argument("--save-video", action="store_true", help="record the first --video-episodes episodes")
    p.add_argument("--video-episodes", type=int, default=4)
    p.add_argument("--video-path", default=None, help="default: <checkpoint>/eval.mp4")
    p.add_argument("--render-camera", default="agentview", help="camera the video is rendered from")
    p.add_argument("--render-size", type=int, default=256, help="side of each video tile, in pixels")
    p.add_argument("--workers", type=int, default=None,
                   help="env worker processes (default: one per core, capped by --episodes; 1: no worker processes)")
    p.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error("--episodes must be at least 1")
    if args.workers is not None and args.workers < 1:
        p.error("--workers must be at least 1")
    if args.render_size < 16:
        p.error("--render-size must be at least 16")
    return args


@cli_errors
def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from sir.eval.rollout import evaluate_policy, format_metrics
    from sir.training.checkpoint import load_checkpoint
    from sir.training.train_policy import pick_device, quiet_libraries

    quiet_libraries()
    checkpoint = Path(args.checkpoint)
    policy, preprocessor, postprocessor, spec, info = load_checkpoint(checkpoint, device=pick_device(args.device))
    video = (Path(args.video_path) if args.video_path else checkpoint / "eval.mp4") if args.save_video else None
    print(f"Evaluating {checkpoint} (step {info.get('step', '?')}) on {spec.env_name} "
          f"({', '.join(spec.robots)}): {args.episodes} episodes")
    metrics = evaluate_policy(policy, preprocessor, postprocessor, spec, args.episodes,
                              args.max_steps or spec.horizon, seed=args.eval_seed, video_path=video,
                              video_episodes=args.video_episodes, render_camera=args.render_camera,
                              render_size=args.render_size, progress=True, workers=args.workers)
    print(format_metrics(metrics))
    if video is not None:
        print(f"  Video: {video}")
    out = checkpoint / "eval_results.json"
    atomic.write_json(out, {**metrics, "checkpoint": str(checkpoint), "eval_seed": args.eval_seed})
    return metrics


if __name__ == "__main__":
    main()
