"""Evaluation throughput against the simulator's own limit, measured in the same run.

    python benchmarks/eval_throughput.py [--episodes 16] [--max-steps 50] [--workers N] [--rounds 10]

The evaluation: a small state-based ACT (the "tiny" preset, randomly initialised, with the
stats of a 2-episode scripted Lift dataset recorded here) evaluated on Lift through
``sir.eval.evaluate_policy``. The limit: the same number of processes, each with its own
Lift env, stepping random actions through the same episodes (same count, same length, a
reset each), with no policy and no coordination. Both run after a warm-up (workers started,
envs built), alternating in short rounds so that load from elsewhere hits both alike; each
round's evaluation is compared with the limit timed just before and just after it. The
ratio is evaluation env steps/s over limit env steps/s, the median over rounds (robust to
a neighbour's burst on a shared machine; the ratio of the means is printed too). The goal
is at least 0.85.

Heavy imports (torch, lerobot) stay inside main(): worker processes import this file as
their __main__ module.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def simulator_worker(conn, spec_dict: dict, episodes: int, max_steps: int, seed: int) -> None:
    """Step ``episodes`` episodes of random actions, timed from the parent's go."""
    from sir.envs.factory import action_dim, reset_env
    from sir.envs.spec import EnvSpec
    from sir.eval.worker import ENV_BUILD_SEED, EnvKey, build_env

    env = build_env(EnvKey.make(EnvSpec.from_dict(spec_dict), None, 64, ENV_BUILD_SEED))
    dim = action_dim(env)
    rng = np.random.default_rng(seed)
    conn.send("ready")
    while conn.recv() == "go":
        start = time.monotonic()
        steps = 0
        for episode in range(episodes):
            reset_env(env, seed + episode)
            for _ in range(max_steps):
                _, _, done, _ = env.step(rng.uniform(-1, 1, dim))
                steps += 1
                if done:
                    break
        conn.send((steps, start, time.monotonic()))
    env.close()


class SimulatorLimit:
    """``processes`` processes stepping Lift with random actions, started once."""

    def __init__(self, spec, processes: int, episodes: int, max_steps: int):
        import multiprocessing

        ctx = multiprocessing.get_context("forkserver")
        shares = [episodes // processes + (i < episodes % processes) for i in range(processes)]
        self.conns, self.procs = [], []
        for i, share in enumerate(shares):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=simulator_worker, args=(child, spec.to_dict(), share, max_steps, 1000 * i),
                               daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        for conn in self.conns:
            assert conn.recv() == "ready"

    def measure(self) -> float:
        for conn in self.conns:
            conn.send("go")
        results = [conn.recv() for conn in self.conns]
        steps = sum(r[0] for r in results)
        return steps / (max(r[2] for r in results) - min(r[1] for r in results))

    def close(self) -> None:
        for conn in self.conns:
            conn.send("stop")
        for proc in self.procs:
            proc.join(timeout=10)


def tiny_act(root: Path, repo_id: str):
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.utils import dataset_to_policy_features
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    from sir.data import make_mixture
    from sir.policies import build_config

    mixture = make_mixture(repo_id, root=root, verbose=False)
    features = dataset_to_policy_features(mixture.features)
    outputs = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    inputs = {k: f for k, f in features.items() if k not in outputs}
    cfg = build_config("act", "tiny", inputs, outputs, "cpu")
    policy = make_policy(cfg, ds_meta=mixture)
    preprocessor, postprocessor = make_pre_post_processors(cfg, dataset_stats=mixture.stats)
    spec = next(s for s in mixture.env_specs if s is not None)
    return policy, preprocessor, postprocessor, spec


def main() -> None:
    from sir.eval.pool import default_workers

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=16)
    p.add_argument("--max-steps", type=int, default=50)
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--root", default=None, help="a folder holding (or to hold) the small dataset; default: a temporary one")
    args = p.parse_args()

    from sir.data.collect import main as collect
    from sir.eval.rollout import evaluate_policy
    from sir.runtime import quiet_libraries

    quiet_libraries()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or tmp)
        if not (root / "bench_lift").exists():
            collect(["--env", "Lift", "--episodes", "2", "--root", str(root), "--repo-id", "bench_lift", "--seed", "0"])
        policy, pre, post, spec = tiny_act(root, "bench_lift")
    print(f"\nLift, {args.workers} processes, {args.episodes} episodes x {args.max_steps} steps, "
          f"tiny ACT ({sum(p.numel() for p in policy.parameters()):,} parameters, random weights)")

    # Warm-up: the same waves and lanes, two steps an episode, so that the workers are up and
    # every env is built before anything is timed (a training run pays this once).
    evaluate_policy(policy, pre, post, spec, args.episodes, 2, workers=args.workers)
    limit = SimulatorLimit(spec, args.workers, args.episodes, args.max_steps)

    ratios, evals, limits = [], [], []
    sim = limit.measure()
    for round_ in range(args.rounds):
        metrics = evaluate_policy(policy, pre, post, spec, args.episodes, args.max_steps, workers=args.workers)
        rate = metrics["env_steps_per_s"]
        sim_after = limit.measure()
        reference = (sim + sim_after) / 2
        evals.append(rate)
        limits.append(reference)
        ratios.append(rate / reference)
        print(f"round {round_ + 1}: simulator limit {sim:.0f} -> {sim_after:.0f} steps/s, evaluation {rate:.0f} "
              f"steps/s ({metrics['env_steps']} steps in {metrics['wall_time_s']:.1f} s), ratio {rate / reference:.3f}"
              f"  [load average {os.getloadavg()[0]:.1f}]", flush=True)
        sim = sim_after
    limit.close()
    print(f"\nsimulator limit: {statistics.mean(limits):.0f} env steps/s ({args.workers} processes, random actions)")
    print(f"evaluation:      {statistics.mean(evals):.0f} env steps/s")
    print(f"ratio:           {statistics.median(ratios):.3f} (median of {args.rounds} rounds; goal >= 0.85)")
    print(f"                 {statistics.mean(evals) / statistics.mean(limits):.3f} (ratio of the means)")


if __name__ == "__main__":
    main()
