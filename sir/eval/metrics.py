"""Metrics of a set of episodes: success rate with its Wilson interval, reward, length, speed."""

from __future__ import annotations

from collections import Counter
from typing import Any


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a success rate, as scipy computes it; (0, 0) for no episodes."""
    if n == 0:
        return (0.0, 0.0)
    # scipy.stats takes most of a second to import: paid where an interval is computed, not at import.
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def summarize(episodes: list[dict[str, Any]], rollout_time_s: float, wall_time_s: float) -> dict[str, Any]:
    """The metrics dict of ``episodes`` (each: success, reward, length, failure, ...).

    ``env_steps_per_s`` counts the rollouts alone (``rollout_time_s``); ``wall_time_s`` is
    the whole evaluation, worker start-up and video writing included.
    """
    n = len(episodes)
    n_success = sum(bool(e["success"]) for e in episodes)
    steps = sum(int(e["length"]) for e in episodes)
    low, high = wilson_interval(n_success, n)
    return {
        "success_rate": n_success / n if n else 0.0,
        "success_ci95": [low, high],
        "avg_reward": sum(float(e["reward"]) for e in episodes) / n if n else 0.0,
        "avg_length": steps / n if n else 0.0,
        "episodes": n,
        "env_steps": steps,
        "wall_time_s": wall_time_s,
        "env_steps_per_s": steps / rollout_time_s if rollout_time_s > 0 else 0.0,
        "failures": dict(Counter(e["failure"] for e in episodes if e["failure"])),
        "per_episode": episodes,
    }


def format_metrics(metrics: dict[str, Any]) -> str:
    low, high = metrics["success_ci95"]
    lines = [
        f"  Success Rate: {100 * metrics['success_rate']:.1f}% (95% CI {100 * low:.0f}-{100 * high:.0f}%, "
        f"{metrics['episodes']} episodes)",
        f"  Avg Reward: {metrics['avg_reward']:.3f}",
        f"  Avg Length: {metrics['avg_length']:.1f}",
        f"  Env steps/s: {metrics['env_steps_per_s']:.0f}",
    ]
    failures = metrics.get("failures") or {}
    if failures:
        lines.append("  Failed episodes: " + ", ".join(f"{n} {reason}" for reason, n in sorted(failures.items())))
    if metrics.get("worker_restarts"):
        lines.append(f"  Worker restarts: {metrics['worker_restarts']} (their episodes were re-run)")
    for name, task in (metrics.get("per_task") or {}).items():
        t_low, t_high = task["success_ci95"]
        lines.append(
            f"  [{name}] Success Rate: {100 * task['success_rate']:.1f}% "
            f"(95% CI {100 * t_low:.0f}-{100 * t_high:.0f}%, "
            f"{task['episodes']} episodes), Avg Reward: {task['avg_reward']:.3f}, Avg Length: {task['avg_length']:.1f}"
        )
    return "\n".join(lines)
