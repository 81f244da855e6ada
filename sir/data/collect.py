"""Record scripted-expert demonstrations as a LeRobotDataset v3.

    python -m sir.data.collect --env Lift --episodes 50 --root data --repo-id lift_demos
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sir.envs.factory import action_dim, check_success, make_env, observation_to_features, reset_env
from sir.envs.spec import EnvSpec, default_spec
from sir.errors import UserError, cli_errors
from sir.experts import Expert, ExpertNoise, make_expert


def run_expert_episode(
    env: Any, spec: EnvSpec, expert: Expert, seed: int, max_steps: int
) -> tuple[list[dict[str, np.ndarray]], bool]:
    """One episode driven by ``expert`` from the initial state of ``seed``.

    Each frame holds the observation features at step t, the action taken, and the reward
    and success that followed. The episode ends at the first success.
    """
    obs = reset_env(env, seed)
    expert.reset(env)
    frames: list[dict[str, np.ndarray]] = []
    success = False
    for _ in range(max_steps):
        action = np.asarray(expert.act(obs), dtype=np.float32)
        features = observation_to_features(obs, spec)
        obs, reward, done, _ = env.step(action)
        success = check_success(env)
        frames.append(
            {
                **features,
                "action": action,
                "next.reward": np.array([reward], dtype=np.float32),
                "next.success": np.array([success], dtype=bool),
            }
        )
        if success or done:
            break
    return frames, success


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m sir.data.collect",
        description="Record scripted-expert demonstrations in a Robosuite env as a LeRobotDataset v3 "
        "(with the EnvSpec in meta/sir_env.json).",
    )
    p.add_argument("--env", default="Lift", help="Robosuite env with a scripted expert (default: Lift)")
    p.add_argument("--robot", default="Panda", help="robot (default: Panda)")
    p.add_argument("--episodes", type=int, default=50, help="successful episodes to record (default: 50)")
    p.add_argument("--root", default="data", help="folder that holds datasets (default: data)")
    p.add_argument("--repo-id", required=True, help="dataset name; written to <root>/<repo-id>")
    p.add_argument("--cameras", default="", help="comma-separated cameras to record, e.g. agentview,robot0_eye_in_hand")
    p.add_argument("--image-size", type=int, default=84, help="camera image height and width (default: 84)")
    p.add_argument("--state-keys", default=None,
                   help="robosuite observation keys, comma-separated, concatenated into observation.state "
                   "(default: the env's layout, see sir.envs.spec)")
    p.add_argument("--env-state-keys", default=None,
                   help="observation keys concatenated into observation.environment_state (default: the env's layout)")
    p.add_argument("--max-steps", type=int, default=200, help="step limit per episode (default: 200)")
    p.add_argument("--seed", type=int, default=0, help="first episode's seed; episode i uses seed+i (default: 0)")
    p.add_argument("--noise", type=float, default=0.1, help="std of Gaussian noise on the expert's arm commands (default: 0.1)")
    p.add_argument("--target-jitter", type=float, default=0.01, help="metres of jitter on the expert's waypoints (default: 0.01)")
    p.add_argument("--keep-failures", action="store_true", help="also record episodes the expert failed")
    p.add_argument("--skip-existing", action="store_true", help="do nothing when the dataset already exists")
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error("--episodes must be at least 1")
    return args


@cli_errors
def main(argv: list[str] | None = None) -> Path | None:
    args = parse_args(argv)
    from sir.data.writer import DatasetWriter, dataset_features

    target = Path(args.root) / args.repo_id
    if args.skip_existing and target.exists():
        print(f"{target} exists; not recording again.")
        return target
    cameras = [c.strip() for c in args.cameras.split(",") if c.strip()]
    layout = {}
    if args.state_keys:
        layout["state_keys"] = [k.strip() for k in args.state_keys.split(",") if k.strip()]
    if args.env_state_keys:
        layout["env_state_keys"] = [k.strip() for k in args.env_state_keys.split(",") if k.strip()]
    spec = default_spec(args.env, args.robot, cameras=cameras, image_size=args.image_size, horizon=args.max_steps,
                        **layout)
    expert = make_expert(args.env, ExpertNoise(args.noise, args.target_jitter), seed=args.seed)
    env = make_env(spec)
    example = observation_to_features(reset_env(env, args.seed), spec)
    features = dataset_features(spec, example, action_dim(env))
    writer = DatasetWriter(
        args.root,
        args.repo_id,
        spec,
        features,
        info={"recorded_by": "sir.data.collect", "expert": type(expert).__name__, "noise": args.noise,
              "target_jitter": args.target_jitter, "first_seed": args.seed},
    )
    kept = tried = successes = 0
    bar = tqdm(total=args.episodes, desc=f"Recording {args.env}", unit="ep")
    try:
        while kept < args.episodes:
            frames, success = run_expert_episode(env, spec, expert, args.seed + tried, args.max_steps)
            tried += 1
            successes += success
            if success or args.keep_failures:
                writer.add_episode(frames)
                kept += 1
                bar.update(1)
            bar.set_postfix(success=f"{successes}/{tried}")
            if tried >= 3 * args.episodes and successes == 0:
                raise UserError(f"The {args.env} expert failed {tried} episodes in a row; nothing to record.")
    except KeyboardInterrupt:
        print(f"\nInterrupted: keeping the {kept} episodes recorded so far.", file=sys.stderr)
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
        env.close()
    path = writer.finalize()
    if path is None:
        print("No episode recorded; nothing written.")
        return None
    print(f"Wrote {writer.num_episodes} episodes ({writer.num_frames} frames) to {path} "
          f"[expert success {successes}/{tried}]")
    return path


if __name__ == "__main__":
    main()
