"""How often each scripted expert succeeds, and how fast, over a range of seeds.

    python benchmarks/expert_success.py [--env Lift ...] [--seeds 50] [--first-seed 0] [--max-steps 200]
                                        [--noise 0.1] [--target-jitter 0.01]

Episodes run as ``python -m sir.data.collect`` runs them with its defaults: the recording
noise (--noise 0.1 --target-jitter 0.01), a 200-step limit, one expert seeded 0 for all
episodes, and episode i from the env's initial state of seed first_seed + i (``--first-seed
200000`` gives the initial states of ``sir.results.run``'s final evaluation). Prints a line per task: the
successes, the mean length of all episodes and of the successful ones, and the wall time.
Run the tasks one at a time on a shared machine: PickPlaceCan and NutAssemblySquare take
about a second an episode.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sir.data.record.runner import ExpertActor, run_episode
from sir.envs.factory import make_env
from sir.envs.spec import default_spec
from sir.experts import EXPERTS, ExpertNoise, make_expert


def measure(env_name: str, seeds: int, max_steps: int, noise: ExpertNoise, first_seed: int = 0) -> dict:
    spec = default_spec(env_name, horizon=max_steps)
    env = make_env(spec)
    expert = make_expert(env_name, noise, seed=0)
    lengths, successes = [], []
    start = time.perf_counter()
    try:
        for seed in range(first_seed, first_seed + seeds):
            episode = run_episode(env, spec, ExpertActor(expert), seed, max_steps)
            frames, success = episode.frames, episode.success
            lengths.append(len(frames))
            successes.append(success)
    finally:
        env.close()
    lengths, successes = np.array(lengths), np.array(successes)
    return {
        "successes": int(successes.sum()),
        "mean_length": float(lengths.mean()),
        "mean_success_length": float(lengths[successes].mean()) if successes.any() else float("nan"),
        "failed_seeds": (first_seed + np.flatnonzero(~successes)).tolist(),
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", nargs="+", default=list(EXPERTS), choices=list(EXPERTS),
                   help="tasks to measure (default: all)")
    p.add_argument("--seeds", type=int, default=50, help="episodes (default: 50)")
    p.add_argument("--first-seed", type=int, default=0, help="seed of episode 0 (default: 0)")
    p.add_argument("--max-steps", type=int, default=200, help="step limit per episode (default: 200)")
    p.add_argument("--noise", type=float, default=0.1, help="arm command noise std (default: 0.1)")
    p.add_argument("--target-jitter", type=float, default=0.01, help="waypoint jitter, metres (default: 0.01)")
    args = p.parse_args(argv)
    noise = ExpertNoise(args.noise, args.target_jitter)
    for env_name in args.env:
        r = measure(env_name, args.seeds, args.max_steps, noise, args.first_seed)
        failed = f"  failed seeds {r['failed_seeds']}" if r["failed_seeds"] else ""
        print(
            f"{env_name:18s} {r['successes']}/{args.seeds} succeeded  mean length {r['mean_length']:.1f}"
            f" (successes {r['mean_success_length']:.1f})  {r['seconds']:.0f} s{failed}",
            flush=True,
        )


if __name__ == "__main__":
    main()
