"""Evaluation throughput against the simulator's own limits, and the cost of a video, in one run.

    python benchmarks/eval_throughput.py [--episodes 16] [--max-steps 50] [--workers N] [--rounds 10]
        [--video-episodes 50] [--video-recorded 4] [--video-rounds 3]

The evaluation: a small state-based ACT (the "tiny" preset, randomly initialised, with the
stats of a 2-episode scripted Lift dataset recorded here) evaluated on Lift through
``sir.eval.evaluate_policy``. Two limits: the same number of processes, each with its own
Lift env, stepping random actions with no policy and no coordination through the same
episodes (same count, same length, a reset each), timed over the whole ("with resets") and
over the time spent in step() alone ("pure stepping": the simulator's rate, with nothing
else). Random actions run straight on for hundreds of steps would press the arm into the
table, where steps cost more: so the pure rate is taken from the same short episodes. All run after a warm-up (workers
started, envs built), alternating in short rounds so that load from elsewhere hits them
alike; each round's evaluation is compared with the limits timed just before and just after
it. A ratio is evaluation env steps/s over limit env steps/s, the median over rounds (robust
to a neighbour's burst on a shared machine; the ratio of the means is printed too). Goal: at
least 0.85 of pure stepping.

Then the video: ``--video-episodes`` episodes evaluated without a video and with one of the
first ``--video-recorded`` episodes (256 px tiles), alternating; the ratio is the wall time
of the plain evaluation over that of the recorded one, video writing included (goal: at
least 0.8), and the same for the CPU time of this process and the workers, which a busy
machine disturbs less.

Then, as a user runs it (``--trained-episodes 16,50``; 0 skips): a tiny ACT trained here on
scripted Lift demos (``--trained-steps`` steps, no evaluation), evaluated
- one-shot, through the CLI (``python -m sir.eval.evaluate --checkpoint ... --workers W``,
  a fresh process each: workers started and envs built inside the evaluation's time),
  against a limit that pays the same starts: W fresh processes (forked as the evaluation's
  workers are, robosuite preloaded) that each build one env and step random actions
  through the same episodes (the evaluation's own lengths), timed from their start;
- in the loop, as the trainer evaluates (the pool and its envs kept from the evaluation
  before, ``--trained-max-steps`` so that early successes and failures mix in a wave),
  against the same processes stepping the same episodes with their env already built.
Goal: at least 0.8 of the limit for 16 and for 50 episodes.

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
    """Step ``episodes`` episodes of random actions, each from its own reset, timed from the
    parent's go; answer the steps, the span of the whole and the time spent in step() alone."""
    from sir.envs.factory import action_dim, reset_env
    from sir.envs.spec import EnvSpec
    from sir.eval.worker import ENV_BUILD_SEED, EnvKey, build_env

    env = build_env(EnvKey.make(EnvSpec.from_dict(spec_dict), None, 64, ENV_BUILD_SEED))
    dim = action_dim(env)
    rng = np.random.default_rng(seed)
    conn.send("ready")
    while conn.recv() == "go":
        start = time.monotonic()
        steps, stepping = 0, 0.0
        for episode in range(episodes):
            reset_env(env, seed + episode)
            for _ in range(max_steps):
                action = rng.uniform(-1, 1, dim)
                before = time.monotonic()
                env.step(action)
                stepping += time.monotonic() - before
                steps += 1
        conn.send((steps, start, time.monotonic(), stepping))
    env.close()


def episodes_worker(conn, spec_dict: dict, plans: list[tuple[int, int]], started: float) -> None:
    """Build one env, then step random actions through ``plans`` ((seed, length) each, a
    reset each), as often as asked; answer the time from ``started`` (the parent's clock at
    the start) to ready and the seconds of each pass."""
    from sir.envs.factory import action_dim, reset_env
    from sir.envs.spec import EnvSpec
    from sir.eval.worker import ENV_BUILD_SEED, EnvKey, build_env

    env = build_env(EnvKey.make(EnvSpec.from_dict(spec_dict), None, 64, ENV_BUILD_SEED))
    dim = action_dim(env)
    rng = np.random.default_rng(0)
    conn.send(time.time() - started)
    while conn.recv() == "go":
        start = time.perf_counter()
        for seed, length in plans:
            reset_env(env, seed)
            for _ in range(length):
                env.step(rng.uniform(-1, 1, dim))
        conn.send(time.perf_counter() - start)
    env.close()


class EpisodesLimit:
    """Fresh processes (forked as the evaluation's workers are, robosuite preloaded) that
    each build one env and step random actions through their share of ``episodes`` (dealt
    out in turn); ``first`` is the seconds from their start to the end of the first pass
    (a one-shot evaluation's limit), ``again()`` times a further pass with the envs built
    (an in-loop evaluation's)."""

    def __init__(self, spec, episodes: list[dict], processes: int):
        import multiprocessing

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["sir.eval.worker", "robosuite"])
        shares = [[(e["seed"], e["length"]) for e in episodes[i::processes]] for i in range(processes)]
        started = time.time()
        self.conns, self.procs = [], []
        for share in shares:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=episodes_worker, args=(child, spec.to_dict(), share, started), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        ready = [conn.recv() for conn in self.conns]
        for conn in self.conns:
            conn.send("go")
        self.first = max(r + conn.recv() for r, conn in zip(ready, self.conns, strict=True))

    def again(self) -> float:
        for conn in self.conns:
            conn.send("go")
        return max(conn.recv() for conn in self.conns)

    def close(self) -> None:
        for conn in self.conns:
            conn.send("stop")
        for proc in self.procs:
            proc.join(timeout=10)


def one_shot_limit(spec, episodes: list[dict], processes: int, tmp: Path) -> float:
    """EpisodesLimit's first pass in a fresh interpreter, as the CLI's evaluation starts in
    one: its fork server (and robosuite's import there) counts too."""
    import json
    import subprocess
    import sys

    job = tmp / "limit.json"
    job.write_text(json.dumps({"spec": spec.to_dict(), "episodes": episodes, "processes": processes}))
    out = subprocess.run([sys.executable, __file__, "--one-shot-limit", str(job)], check=True, capture_output=True,
                         text=True).stdout
    return float(out.strip().splitlines()[-1])


def _one_shot_limit_main(path: str) -> None:
    import json

    from sir.envs.spec import EnvSpec

    job = json.loads(Path(path).read_text())
    limit = EpisodesLimit(EnvSpec.from_dict(job["spec"]), job["episodes"], job["processes"])
    limit.close()
    print(limit.first, flush=True)


def trained_act(root: Path, repo_id: str, steps: int, out: Path) -> Path:
    from sir.training import TrainConfig, train

    result = train(TrainConfig(repo_ids=[repo_id], root=str(root), policy="act", preset="tiny", batch_size=16,
                               training_steps=steps, no_eval=True, save_freq=steps, log_freq=max(1, steps // 4),
                               checkpoint_dir=str(out), run_name="trained", overwrite=True))
    return result.final_model


def trained_cases(args, root: Path) -> None:
    """The one-shot (CLI) and in-loop evaluations of a trained model against their limits."""
    import json
    import subprocess
    import sys

    from sir.data.collect import main as collect
    from sir.eval.pool import shared_workers
    from sir.eval.rollout import evaluate_policy
    from sir.policies.checkpoint import load_checkpoint

    if not (root / "bench_lift20").exists():
        collect(["--env", "Lift", "--episodes", "20", "--root", str(root), "--repo-id", "bench_lift20", "--seed", "0"])
    with tempfile.TemporaryDirectory() as tmp:
        model = trained_act(root, "bench_lift20", args.trained_steps, Path(tmp))
        policy, pre, post, spec, _ = load_checkpoint(model, device="cpu")
        print(f"\ntrained tiny ACT ({args.trained_steps} steps on 20 Lift demos), {args.workers} workers; "
              f"episodes of at most {args.trained_max_steps} steps")
        for episodes in [int(n) for n in args.trained_episodes.split(",") if n.strip()]:
            out = Path(tmp) / f"eval_{episodes}"
            command = [sys.executable, "-m", "sir.eval.evaluate", "--checkpoint", str(model), "--episodes",
                       str(episodes), "--max-steps", str(args.trained_max_steps), "--workers", str(args.workers),
                       "--output-dir", str(out)]
            # One-shot: the CLI and the fresh limit in turn, so that load from elsewhere hits both alike.
            shots = []
            for _ in range(args.trained_rounds):
                subprocess.run(command, check=True, capture_output=True, text=True)
                cli = json.loads((out / "eval_results.json").read_text())
                shots.append((cli["env_steps_per_s"], cli["env_steps"] / one_shot_limit(spec, cli["per_episode"],
                                                                                        args.workers, Path(tmp))))
            steps = cli["env_steps"]
            # In the loop: the pool and its envs kept, as the trainer's; each evaluation beside
            # a pass of the limit's processes, their envs built.
            shared_workers(args.workers)
            evaluate_policy(policy, pre, post, spec, episodes, args.trained_max_steps, workers=args.workers)
            evaluate_policy(policy, pre, post, spec, episodes, args.trained_max_steps, workers=args.workers)
            limit = EpisodesLimit(spec, cli["per_episode"], args.workers)
            loops = []
            for _ in range(args.trained_rounds):
                m = evaluate_policy(policy, pre, post, spec, episodes, args.trained_max_steps, workers=args.workers)
                loops.append((m["env_steps_per_s"], steps / limit.again()))
            limit.close()
            lengths = sorted({e["length"] for e in cli["per_episode"]})
            print(f"{episodes} episodes ({100 * cli['success_rate']:.0f}% success, lengths {lengths[0]}-{lengths[-1]}, "
                  f"{steps} steps), medians of {args.trained_rounds} rounds  [load average {os.getloadavg()[0]:.1f}]:")
            for name, pairs, limit_name in (("one-shot CLI", shots, "one env built a worker"),
                                            ("in the loop", loops, "envs built")):
                print(f"  {name:13s} {statistics.median(e for e, _ in pairs):.0f} env steps/s; limit with "
                      f"{limit_name} {statistics.median(lim for _, lim in pairs):.0f}: ratio "
                      f"{statistics.median(e / lim for e, lim in pairs):.3f}", flush=True)
    print("goal: >= 0.8 of the limit, one-shot and in the loop")


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

    def measure(self) -> tuple[float, float]:
        """(env steps/s with resets, env steps/s of pure stepping): the same steps over the
        span of the whole run, and over each process's time inside step() alone."""
        for conn in self.conns:
            conn.send("go")
        results = [conn.recv() for conn in self.conns]
        steps = sum(r[0] for r in results)
        with_resets = steps / (max(r[2] for r in results) - min(r[1] for r in results))
        return with_resets, sum(r[0] / r[3] for r in results)

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
    from sir.data.mixture.config import DataConfig
    from sir.policies import build_config

    mixture = make_mixture(DataConfig(repo_ids=repo_id, root=root), verbose=False)
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
    p.add_argument("--video-episodes", type=int, default=50, help="episodes of each evaluation in the video comparison")
    p.add_argument("--video-recorded", type=int, default=4, help="episodes recorded in the video")
    p.add_argument("--video-rounds", type=int, default=3, help="0 skips the video comparison")
    p.add_argument("--root", default=None,
                   help="a folder holding (or to hold) the small dataset; default: a temporary one")
    p.add_argument("--trained-episodes", default="16,50", help="episode counts of the trained-model cases ('' skips)")
    p.add_argument("--trained-steps", type=int, default=600, help="training steps of the trained model")
    p.add_argument("--trained-max-steps", type=int, default=40, help="step limit of its episodes")
    p.add_argument("--trained-rounds", type=int, default=3, help="in-loop evaluations timed per case")
    p.add_argument("--skip-random", action="store_true", help="only the trained-model cases")
    p.add_argument("--one-shot-limit", default=None, help=argparse.SUPPRESS)  # one_shot_limit's own process
    args = p.parse_args()
    if args.one_shot_limit:
        _one_shot_limit_main(args.one_shot_limit)
        return

    from sir.data.collect import main as collect
    from sir.eval.rollout import evaluate_policy
    from sir.runtime import quiet_libraries

    quiet_libraries()
    if args.skip_random:
        with tempfile.TemporaryDirectory() as tmp:
            trained_cases(args, Path(args.root or tmp))
        return
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

    rates: dict[str, list[float]] = {"evaluation": [], "resets": [], "pure": []}
    before = dict(zip(("resets", "pure"), limit.measure(), strict=True))
    for round_ in range(args.rounds):
        metrics = evaluate_policy(policy, pre, post, spec, args.episodes, args.max_steps, workers=args.workers)
        rate = metrics["env_steps_per_s"]
        after = dict(zip(("resets", "pure"), limit.measure(), strict=True))
        rates["evaluation"].append(rate)
        for mode in ("resets", "pure"):
            rates[mode].append((before[mode] + after[mode]) / 2)
        print(f"round {round_ + 1}: evaluation {rate:.0f} steps/s ({metrics['env_steps']} steps in "
              f"{metrics['wall_time_s']:.1f} s); limit with resets {rates['resets'][-1]:.0f}, pure stepping "
              f"{rates['pure'][-1]:.0f}  [load average {os.getloadavg()[0]:.1f}]", flush=True)
        before = after
    limit.close()
    print(f"\nevaluation:                {statistics.mean(rates['evaluation']):.0f} env steps/s")
    for mode, name in (("resets", "limit with resets"), ("pure", "pure stepping limit")):
        ratios = [e / r for e, r in zip(rates["evaluation"], rates[mode], strict=True)]
        print(f"{name + ':':26s} {statistics.mean(rates[mode]):.0f} env steps/s "
              f"({args.workers} processes, random actions); "
              f"evaluation/limit {statistics.median(ratios):.3f} (median of {args.rounds} rounds), "
              f"{statistics.mean(rates['evaluation']) / statistics.mean(rates[mode]):.3f} (ratio of the means)")
    print("goal: >= 0.85 of pure stepping")
    if args.video_rounds:
        video_cost(args, policy, pre, post, spec)
    if args.trained_episodes.strip():
        with tempfile.TemporaryDirectory() as tmp:
            trained_cases(args, Path(args.root or tmp))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of this process and ``pids`` so far."""
    own = os.times()
    total = own.user + own.system
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def video_cost(args, policy, pre, post, spec) -> None:
    from sir.eval.pool import shared_workers
    from sir.eval.rollout import evaluate_policy

    with tempfile.TemporaryDirectory() as tmp:
        def run(video: bool) -> tuple[float, float]:
            pids = shared_workers(args.workers).pids if args.workers > 1 else []
            cpu, start = cpu_seconds(pids), time.perf_counter()
            evaluate_policy(policy, pre, post, spec, args.video_episodes, args.max_steps, workers=args.workers,
                            video_path=Path(tmp, "eval.mp4") if video else None, video_episodes=args.video_recorded)
            return time.perf_counter() - start, cpu_seconds(pids) - cpu

        evaluate_policy(policy, pre, post, spec, args.video_episodes, 2, workers=args.workers,
                        video_path=Path(tmp, "warmup.mp4"), video_episodes=args.video_recorded)
        print(f"\nvideo: {args.video_episodes} episodes x {args.max_steps} steps, "
              f"the first {args.video_recorded} recorded")
        walls, cpus = [], []
        for round_ in range(args.video_rounds):
            # Which goes first alternates, so that load rising or falling over a round favours neither.
            first = round_ % 2 == 0
            a = run(not first)
            b = run(first)
            (plain, plain_cpu), (recorded, recorded_cpu) = (a, b) if first else (b, a)
            walls.append(plain / recorded)
            cpus.append(plain_cpu / recorded_cpu)
            print(f"round {round_ + 1}: without video {plain:.1f} s ({plain_cpu:.1f} CPU s), "
                  f"with video {recorded:.1f} s "
                  f"({recorded_cpu:.1f} CPU s), ratio {plain / recorded:.3f}  [load average {os.getloadavg()[0]:.1f}]",
                  flush=True)
    print(f"video ratio: {statistics.median(walls):.3f} wall time, {statistics.median(cpus):.3f} CPU time "
          f"(medians of {args.video_rounds} rounds; goal >= 0.8)")


if __name__ == "__main__":
    main()
