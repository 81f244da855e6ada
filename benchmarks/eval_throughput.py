"""Evaluation throughput against the simulator's own limits, and the cost of a video, in one run.

    python benchmarks/eval_throughput.py [--episodes 16] [--max-steps 50] [--workers N] [--rounds 10]
        [--video-episodes 50] [--video-recorded 4] [--video-rounds 3]

The evaluation: a small state-based ACT (the "tiny" preset, randomly initialised, with the
stats of a 2-episode scripted Lift dataset recorded here) evaluated on Lift through
``sir.eval.evaluate_policy``. Every limit below steps the evaluation's own episodes (its
seeds, ``--eval-seed`` on, and the length each of them ran), dealt out in turn over as many
processes as the evaluation had workers, each with its own Lift env, random actions, no policy
and no coordination. Two limits: the time of the whole pass ("with resets") and the time
spent in step() alone ("pure stepping": the simulator's rate, with nothing else). Random
actions run straight on for hundreds of steps would press the arm into the table, where steps
cost more: so the pure rate is taken from the same short episodes. All run after a warm-up
(workers started, envs built), alternating in short rounds so that load from elsewhere hits
them alike; each round's evaluation is compared with the limits timed just before and just
after it. A ratio is evaluation env steps/s over limit env steps/s, the median over rounds
(robust to a neighbour's burst on a shared machine; the ratio of the means is printed too).
Goal: at least 0.85 of pure stepping.

Then the video: ``--video-episodes`` episodes evaluated without a video and with one of the
first ``--video-recorded`` episodes (256 px tiles), alternating; the ratio is the wall time
of the plain evaluation over that of the recorded one, video writing included (goal: at
least 0.8), and the same for the CPU time of this process and the workers, which a busy
machine disturbs less.

Then, as a user runs it (``--trained-episodes 16,50``; 0 skips): a tiny ACT trained here on
scripted Lift demos (``--trained-steps`` steps, no evaluation), evaluated on the episodes
from ``--eval-seed``
- one-shot, through the CLI (``python -m sir.eval.evaluate --checkpoint ... --workers W``,
  a fresh process each), against W fresh processes forked as the evaluation's workers are
  (a fresh interpreter, its fork server preloading robosuite) that each build one env and
  step random actions through their share of the same episodes (the CLI's own seeds and
  lengths). Both on two clocks: from before the workers start (the fork server, robosuite's
  import, the forks: ``startup_s`` of the CLI's record, added to its rollouts' time) and from
  when they are up (the CLI's ``env_steps_per_s``, which counts its rollouts alone; the
  limit's time from when its processes are forked to the end of the pass). Env builds are
  inside both clocks, on both sides.
- in the loop, as the trainer evaluates (the pool and its envs kept from the evaluation
  before, ``--trained-max-steps`` so that early successes and failures mix in a wave),
  against the same processes stepping that evaluation's episodes with their env built.
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


def deal(episodes: list[dict], processes: int) -> list[list[tuple[int, int]]]:
    """The evaluation's episodes ((seed, length) each, as its ``per_episode`` records them)
    dealt out in turn over ``processes``: every process gets its share of the same episodes."""
    plans = [(int(e["seed"]), int(e["length"])) for e in episodes]
    return [plans[i::processes] for i in range(processes)]


def demo_repo_id(episodes: int) -> str:
    """The scripted Lift demos' dataset under ``--root``, named by its size: the benchmarks that
    share a root (this one, ``async_eval.py``) reuse a dataset only of the size they ask for."""
    return f"bench_lift{episodes}"


def recorded_demos(root: Path, episodes: int) -> str:
    """``episodes`` scripted Lift demos (seed 0) under ``root``, recorded unless there; their repo id."""
    from sir.data.collect import main as collect

    repo_id = demo_repo_id(episodes)
    if not (root / repo_id).exists():
        collect(["--env", "Lift", "--episodes", str(episodes), "--root", str(root), "--repo-id", repo_id,
                 "--seed", "0"])
    return repo_id


def stepping_worker(conn, spec_dict: dict, plans: list[tuple[int, int]]) -> None:
    """Build one env, say when it is built, then on every "go" step random actions through
    ``plans`` (a reset each); answer each pass's (start, end) on the wall clock, which all
    processes share, its seconds inside step() and its steps."""
    from sir.envs.factory import action_dim, reset_env
    from sir.envs.spec import EnvSpec
    from sir.eval.worker import ENV_BUILD_SEED, EnvKey, build_env

    env = build_env(EnvKey.make(EnvSpec.from_dict(spec_dict), None, 64, ENV_BUILD_SEED))
    dim = action_dim(env)
    rng = np.random.default_rng(0)
    conn.send(time.time())
    while conn.recv() == "go":
        start = time.time()
        steps, stepping = 0, 0.0
        for seed, length in plans:
            reset_env(env, seed)
            for _ in range(length):
                action = rng.uniform(-1, 1, dim)
                before = time.perf_counter()
                env.step(action)
                stepping += time.perf_counter() - before
                steps += 1
        conn.send((start, time.time(), stepping, steps))
    env.close()


class Limit:
    """Fresh processes, forked as the evaluation's workers are (a fork server preloading
    robosuite), that each build one env and step random actions through their share of the
    evaluation's ``episodes``. The first pass is timed on two clocks, as a one-shot evaluation
    is: ``first_with_start`` from before the processes start (the fork server, robosuite's
    import, the forks), ``first`` from when they are up (forked; env builds inside both).
    ``measure()`` times a further pass with the envs built (an in-loop evaluation's limit)."""

    def __init__(self, spec, episodes: list[dict], processes: int):
        import multiprocessing

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["sir.eval.worker", "robosuite"])
        self.steps = sum(int(e["length"]) for e in episodes)
        started = time.time()
        self.conns, self.procs = [], []
        for share in deal(episodes, processes):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=stepping_worker, args=(child, spec.to_dict(), share), daemon=True)
            proc.start()  # returns once forked: the fork server is up and robosuite imported
            self.conns.append(parent)
            self.procs.append(proc)
        up = time.time()
        for conn in self.conns:
            conn.recv()  # env built
        passes = self._pass()
        end = max(p[1] for p in passes)
        self.first_with_start, self.first = end - started, end - up

    def _pass(self) -> list[tuple[float, float, float, int]]:
        for conn in self.conns:
            conn.send("go")
        return [conn.recv() for conn in self.conns]

    def measure(self) -> tuple[float, float]:
        """(env steps/s of the whole pass, env steps/s of pure stepping): the same steps over
        the span of the pass, and over each process's time inside step() alone."""
        passes = self._pass()
        span = max(p[1] for p in passes) - min(p[0] for p in passes)
        return self.steps / span, sum(p[3] / p[2] for p in passes)

    def close(self) -> None:
        for conn in self.conns:
            conn.send("stop")
        for proc in self.procs:
            proc.join(timeout=10)


def one_shot_limit(spec, episodes: list[dict], processes: int, tmp: Path) -> tuple[float, float]:
    """Limit's first pass in a fresh interpreter, as the CLI's evaluation starts in one (its
    fork server and robosuite's import there count too): (seconds with the workers' start,
    seconds from when they are up)."""
    import json
    import subprocess
    import sys

    job = tmp / "limit.json"
    job.write_text(json.dumps({"spec": spec.to_dict(), "episodes": episodes, "processes": processes}))
    out = subprocess.run([sys.executable, __file__, "--one-shot-limit", str(job)], check=True, capture_output=True,
                         text=True).stdout
    with_start, up = out.strip().splitlines()[-1].split()
    return float(with_start), float(up)


def _one_shot_limit_main(path: str) -> None:
    import json

    from sir.envs.spec import EnvSpec

    job = json.loads(Path(path).read_text())
    limit = Limit(EnvSpec.from_dict(job["spec"]), job["episodes"], job["processes"])
    limit.close()
    print(limit.first_with_start, limit.first, flush=True)


def trained_act(root: Path, repo_id: str, steps: int, out: Path) -> Path:
    from sir.training import TrainConfig, train

    result = train(TrainConfig(repo_ids=[repo_id], root=str(root), policy="act", preset="tiny", batch_size=16,
                               training_steps=steps, no_eval=True, save_freq=steps, log_freq=max(1, steps // 4),
                               checkpoint_dir=str(out), run_name="trained", overwrite=True))
    return result.final_model


def one_shot_rates(cli: dict, limit_s: tuple[float, float]) -> dict[str, tuple[float, float]]:
    """The CLI's evaluation and its limit on each clock, env steps/s: (evaluation, limit).
    "with start": the workers' start (``startup_s``) added to the rollouts' time, against
    the limit's pass from before its processes started; "from up": the rollouts alone
    (``env_steps_per_s``) against the limit's pass from when its processes were up."""
    steps = cli["env_steps"]
    rollouts_s = steps / cli["env_steps_per_s"]
    return {"with start": (steps / (cli["startup_s"] + rollouts_s), steps / limit_s[0]),
            "from up": (cli["env_steps_per_s"], steps / limit_s[1])}


def trained_cases(args, root: Path) -> None:
    """The one-shot (CLI) and in-loop evaluations of a trained model against their limits."""
    import json
    import subprocess
    import sys

    from sir.eval.pool import shared_workers
    from sir.eval.rollout import evaluate_policy
    from sir.policies.checkpoint import load_checkpoint

    repo_id = recorded_demos(root, args.trained_demos)
    with tempfile.TemporaryDirectory() as tmp:
        model = trained_act(root, repo_id, args.trained_steps, Path(tmp))
        policy, pre, post, spec, _ = load_checkpoint(model, device="cpu")
        print(f"\ntrained tiny ACT ({args.trained_steps} steps on {args.trained_demos} Lift demos), {args.workers} "
              f"workers; episodes of at most {args.trained_max_steps} steps from seed {args.eval_seed}")
        for episodes in [int(n) for n in args.trained_episodes.split(",") if n.strip()]:
            out = Path(tmp) / f"eval_{episodes}"
            command = [sys.executable, "-m", "sir.eval.evaluate", "--checkpoint", str(model), "--episodes",
                       str(episodes), "--max-steps", str(args.trained_max_steps), "--workers", str(args.workers),
                       "--eval-seed", str(args.eval_seed), "--output-dir", str(out)]
            # One-shot: the CLI and the fresh limit in turn, so that load from elsewhere hits both alike.
            shots: dict[str, list[tuple[float, float]]] = {"with start": [], "from up": []}
            for _ in range(args.trained_rounds):
                subprocess.run(command, check=True, capture_output=True, text=True)
                cli = json.loads((out / "eval_results.json").read_text())
                limit_s = one_shot_limit(spec, cli["per_episode"], cli["workers"], Path(tmp))
                for clock, pair in one_shot_rates(cli, limit_s).items():
                    shots[clock].append(pair)
            # In the loop: the pool and its envs kept, as the trainer's; each evaluation beside
            # a pass of the limit's processes over that evaluation's episodes, their envs built.
            shared_workers(args.workers)
            evaluate_policy(policy, pre, post, spec, episodes, args.trained_max_steps, seed=args.eval_seed,
                            workers=args.workers)
            warm = evaluate_policy(policy, pre, post, spec, episodes, args.trained_max_steps, seed=args.eval_seed,
                                   workers=args.workers)
            limit = Limit(spec, warm["per_episode"], warm["workers"])
            loops = []
            for _ in range(args.trained_rounds):
                m = evaluate_policy(policy, pre, post, spec, episodes, args.trained_max_steps, seed=args.eval_seed,
                                    workers=args.workers)
                if deal(m["per_episode"], 1) != deal(warm["per_episode"], 1):
                    raise SystemExit("the in-loop evaluations ran other episodes than the limit steps")
                loops.append((m["env_steps_per_s"], limit.measure()[0]))
            limit.close()
            lengths = sorted({e["length"] for e in cli["per_episode"]})
            print(f"{episodes} episodes ({100 * cli['success_rate']:.0f}% success, lengths {lengths[0]}-{lengths[-1]}, "
                  f"{cli['env_steps']} steps), medians of {args.trained_rounds} rounds  "
                  f"[load average {os.getloadavg()[0]:.1f}]:")
            for name, pairs, limit_name in (
                    ("one-shot CLI, workers' start in both", shots["with start"], "one env built a worker"),
                    ("one-shot CLI, from the workers up", shots["from up"], "one env built a worker"),
                    ("in the loop", loops, "envs built")):
                print(f"  {name:37s} {statistics.median(e for e, _ in pairs):.0f} env steps/s; limit with "
                      f"{limit_name} {statistics.median(lim for _, lim in pairs):.0f}: ratio "
                      f"{statistics.median(e / lim for e, lim in pairs):.3f}", flush=True)
    print("goal: >= 0.8 of the limit, one-shot and in the loop")


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


def main(argv: list[str] | None = None) -> None:
    from sir.eval.pool import default_workers
    from sir.eval.rollout import DEFAULT_EVAL_SEED

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=16)
    p.add_argument("--max-steps", type=int, default=50)
    p.add_argument("--workers", type=int, default=default_workers())
    p.add_argument("--rounds", type=int, default=10, help="rounds against the simulator's limits (0 skips them)")
    p.add_argument("--eval-seed", type=int, default=DEFAULT_EVAL_SEED,
                   help=f"seed of every evaluation's episode 0, and so of its limit's (default: {DEFAULT_EVAL_SEED}, "
                   "as the trainer's evaluations)")
    p.add_argument("--video-episodes", type=int, default=50, help="episodes of each evaluation in the video comparison")
    p.add_argument("--video-recorded", type=int, default=4, help="episodes recorded in the video")
    p.add_argument("--video-rounds", type=int, default=3, help="0 skips the video comparison")
    p.add_argument("--root", default=None,
                   help="a folder holding (or to hold) the small dataset; default: a temporary one")
    p.add_argument("--trained-episodes", default="16,50", help="episode counts of the trained-model cases ('' skips)")
    p.add_argument("--trained-demos", type=int, default=20, help="scripted Lift demos the trained model learns from")
    p.add_argument("--trained-steps", type=int, default=600, help="training steps of the trained model")
    p.add_argument("--trained-max-steps", type=int, default=40, help="step limit of its episodes")
    p.add_argument("--trained-rounds", type=int, default=3, help="in-loop evaluations timed per case")
    p.add_argument("--skip-random", action="store_true", help="only the trained-model cases")
    p.add_argument("--one-shot-limit", default=None, help=argparse.SUPPRESS)  # one_shot_limit's own process
    args = p.parse_args(argv)
    if args.one_shot_limit:
        _one_shot_limit_main(args.one_shot_limit)
        return

    from sir.runtime import quiet_libraries

    quiet_libraries()
    if args.skip_random:
        with tempfile.TemporaryDirectory() as tmp:
            trained_cases(args, Path(args.root or tmp))
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.root or tmp)
        policy, pre, post, spec = tiny_act(root, recorded_demos(root, 2))
    print(f"\nLift, {args.workers} processes, {args.episodes} episodes x {args.max_steps} steps from seed "
          f"{args.eval_seed}, tiny ACT ({sum(p.numel() for p in policy.parameters()):,} parameters, random weights)")

    if args.rounds:
        simulator_rounds(args, policy, pre, post, spec)
    if args.video_rounds:
        video_cost(args, policy, pre, post, spec)
    if args.trained_episodes.strip():
        with tempfile.TemporaryDirectory() as tmp:
            trained_cases(args, Path(args.root or tmp))


def simulator_rounds(args, policy, pre, post, spec) -> None:
    """The evaluation against its limits with resets and of pure stepping, in rounds."""
    from sir.eval.rollout import evaluate_policy

    def evaluate(max_steps: int) -> dict:
        return evaluate_policy(policy, pre, post, spec, args.episodes, max_steps, seed=args.eval_seed,
                               workers=args.workers)

    # Warm-up: the same waves and lanes, two steps an episode, so that the workers are up and
    # every env is built before anything is timed (a training run pays this once); then one
    # whole evaluation, whose episodes (seeds and lengths) the limit steps.
    evaluate(2)
    first = evaluate(args.max_steps)
    episodes = first["per_episode"]
    limit = Limit(spec, episodes, first["workers"])  # as many processes as the evaluation's workers

    rates: dict[str, list[float]] = {"evaluation": [], "resets": [], "pure": []}
    before = dict(zip(("resets", "pure"), limit.measure(), strict=True))
    for round_ in range(args.rounds):
        metrics = evaluate(args.max_steps)
        if deal(metrics["per_episode"], 1) != deal(episodes, 1):
            raise SystemExit("the evaluation ran other episodes than the limit steps")
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
              f"({args.workers} processes, random actions, the evaluation's episodes); "
              f"evaluation/limit {statistics.median(ratios):.3f} (median of {args.rounds} rounds), "
              f"{statistics.mean(rates['evaluation']) / statistics.mean(rates[mode]):.3f} (ratio of the means)")
    print("goal: >= 0.85 of pure stepping")


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
            evaluate_policy(policy, pre, post, spec, args.video_episodes, args.max_steps, seed=args.eval_seed,
                            workers=args.workers, video_path=Path(tmp, "eval.mp4") if video else None,
                            video_episodes=args.video_recorded)
            return time.perf_counter() - start, cpu_seconds(pids) - cpu

        evaluate_policy(policy, pre, post, spec, args.video_episodes, 2, seed=args.eval_seed, workers=args.workers,
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
