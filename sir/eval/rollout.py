"""Roll a policy out in the Robosuite env its EnvSpec describes, and measure it."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sir.envs.factory import check_success, make_env, observation_to_features, render_frame, reset_env
from sir.envs.spec import IMAGE_FEATURE_PREFIX, EnvSpec

# Evaluation seeds live far from the recording seeds (0, 1, 2, ...), so a policy is never
# scored on the exact initial states of its training demos.
DEFAULT_EVAL_SEED = 100_000


def to_policy_batch(features: dict[str, np.ndarray], task: str) -> dict[str, Any]:
    """One observation as a batch of one, in LeRobotDataset's conventions
    (state float32; images CHW float in [0, 1])."""
    batch: dict[str, Any] = {}
    for key, value in features.items():
        if key.startswith(IMAGE_FEATURE_PREFIX):
            batch[key] = torch.from_numpy(value).permute(2, 0, 1).float().div_(255.0).unsqueeze(0)
        else:
            batch[key] = torch.from_numpy(value).unsqueeze(0)
    batch["task"] = [task]
    return batch


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@torch.no_grad()
def evaluate_policy(
    policy: Any,
    preprocessor: Any,
    postprocessor: Any,
    spec: EnvSpec,
    episodes: int,
    max_steps: int,
    seed: int = DEFAULT_EVAL_SEED,
    video_path: str | Path | None = None,
    video_episodes: int = 4,
    render_camera: str = "agentview",
    render_size: int = 256,
    progress: bool = False,
) -> dict[str, Any]:
    """Run ``episodes`` rollouts; episode i always starts from the state of ``seed + i``.

    Success is the task's own check at any step; the episode stops there.
    """
    from tqdm import tqdm

    record = video_path is not None and video_episodes > 0
    env = make_env(spec, render_camera=render_camera if record else None, render_size=render_size)
    was_training = policy.training
    policy.eval()
    results = []
    frames: list[np.ndarray] = []
    start = time.perf_counter()
    total_steps = 0
    try:
        for ep in tqdm(range(episodes), desc="Evaluating", unit="ep", leave=False, disable=not progress):
            obs = reset_env(env, seed + ep)
            policy.reset()
            reward_sum, success, steps, failure = 0.0, False, 0, None
            for _ in range(max_steps):
                if record and ep < video_episodes:
                    frames.append(render_frame(env, render_camera, render_size))
                batch = preprocessor(to_policy_batch(observation_to_features(obs, spec), spec.task))
                action = postprocessor(policy.select_action(batch))
                action = action.squeeze(0).cpu().numpy()
                if not np.all(np.isfinite(action)):
                    failure = "non-finite action"
                    break
                obs, reward, done, _ = env.step(action)
                steps += 1
                reward_sum += float(reward)
                if check_success(env):
                    success = True
                    break
                if done:
                    break
            total_steps += steps
            results.append({"episode": ep, "seed": seed + ep, "success": success, "reward": reward_sum,
                            "length": steps, "failure": failure})
    finally:
        env.close()
        policy.train(was_training)
    wall = time.perf_counter() - start
    n_success = sum(r["success"] for r in results)
    low, high = wilson_interval(n_success, len(results))
    metrics = {
        "success_rate": n_success / max(1, len(results)),
        "success_ci95": [low, high],
        "avg_reward": float(np.mean([r["reward"] for r in results])) if results else 0.0,
        "avg_length": float(np.mean([r["length"] for r in results])) if results else 0.0,
        "episodes": len(results),
        "wall_time_s": wall,
        "env_steps_per_s": total_steps / wall if wall > 0 else 0.0,
        "per_episode": results,
    }
    if record and frames:
        import imageio.v2 as imageio

        video_path = Path(video_path)
        video_path.parent.mkdir(parents=True, exist_ok=True)
        imageio.mimsave(video_path, frames, fps=spec.control_freq)
        metrics["video"] = str(video_path)
    return metrics


def format_metrics(metrics: dict[str, Any]) -> str:
    low, high = metrics["success_ci95"]
    return (
        f"  Success Rate: {100 * metrics['success_rate']:.1f}% (95% CI {100 * low:.0f}-{100 * high:.0f}%, "
        f"{metrics['episodes']} episodes)\n"
        f"  Avg Reward: {metrics['avg_reward']:.3f}\n"
        f"  Avg Length: {metrics['avg_length']:.1f}\n"
        f"  Env steps/s: {metrics['env_steps_per_s']:.0f}"
    )
