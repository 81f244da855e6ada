"""Evaluations beside training against evaluations training waits for, and Ray actors
against local worker processes, in one run.

    OMP_NUM_THREADS=1 MUJOCO_GL=egl python benchmarks/async_eval.py [--steps 2000] [--eval-freq 500]
        [--eval-episodes 10] [--max-steps 60] [--select-top-k 3] [--ray-episodes 16] [--ray-rounds 3]
        [--root DIR]

1. The same short training (a tiny ACT on scripted Lift demos recorded here, one torch
   thread) twice: with ``--no-async-eval`` and with ``--async-eval``, as training runs
   today: best-model selection on at its default (``--select-top-k 3``: the best evaluated
   models' weights kept as candidates during training, each evaluated again on
   ``--select-episodes`` when training ends, the best of those named best_model). Printed for
   each: the trainer's utilization, training-step time (the time inside
   ``sir.training.step.update``) over the wall time from the start of the first step to the
   end of the last (the candidates' saves are inside it; the evaluation after the last step
   and the selection, which both runs wait for, are outside it); the selection's own time; the
   wall time to the end of the run; and the wall time from the first step until best_model
   was final (the end of the selection), beside when the evaluation of its step was recorded.
   Both runs keep the same best model (their evaluations give the same results).
   Goal: >= 0.95 with async on a machine with one spare core.
2. A one-node Ray cluster started here (``ray start --head`` on 127.0.0.1, as many CPUs as
   local workers) and the same evaluation of the trained model through local worker
   processes and through Ray actors, alternating, after a warm-up: episodes/s of Ray over
   local (median of the rounds). Goal: >= 0.9.

Heavy imports stay inside main(): the evaluation processes import this file as __main__.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the benchmark beside this one records the demos

import eval_throughput as throughput  # noqa: E402


def timed_run(config) -> dict:
    """Train ``config``; the time inside update(), when each evaluation was recorded, and
    when and for how long best_model was chosen."""
    import sir.training.trainer as loop_module
    from sir.training import evaluation, train

    # The loop calls the update it imported (sir.training.trainer's name for sir.training.step.update).
    inner_update, inner_take = loop_module.update, evaluation.Evaluations.record
    inner_choose = evaluation.Evaluations.choose_best_model
    spent = {"update": 0.0, "first": None, "last": None, "taken": {}, "choice": None}

    def update(*args, **kwargs):
        start = time.perf_counter()
        spent["first"] = spent["first"] or start
        try:
            return inner_update(*args, **kwargs)
        finally:
            spent["last"] = time.perf_counter()
            spent["update"] += spent["last"] - start

    def take(self, step, *args, **kwargs):
        inner_take(self, step, *args, **kwargs)
        spent["taken"][step] = time.perf_counter()

    def choose(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return inner_choose(self, *args, **kwargs)
        finally:
            spent["choice"] = (start, time.perf_counter())

    loop_module.update, evaluation.Evaluations.record = update, take
    evaluation.Evaluations.choose_best_model = choose
    try:
        result = train(config)
    finally:
        loop_module.update, evaluation.Evaluations.record = inner_update, inner_take
        evaluation.Evaluations.choose_best_model = inner_choose
    end = time.perf_counter()
    loop = spent["last"] - spent["first"]
    chosen_from, chosen_at = spent["choice"]
    return {"result": result, "utilization": spent["update"] / loop, "loop": loop, "wall": end - spent["first"],
            "selection": chosen_at - chosen_from, "to_best": chosen_at - spent["first"],
            "best_recorded": spent["taken"][result.best_step] - spent["first"], "update": spent["update"]}


def start_ray(cpus: int) -> tuple[subprocess.Popen, str, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp_dir = tempfile.mkdtemp(prefix="sir-ray-")
    os.environ["RAY_AUTH_MODE"] = "disabled"  # a local cluster for this run only (see tests/conftest.py)
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
         "--port", str(port), "--num-cpus", str(cpus), "--include-dashboard", "false", "--disable-usage-stats",
         "--temp-dir", temp_dir], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    for line in proc.stdout:
        if "Ray runtime started" in line:
            break
    else:
        raise RuntimeError("ray start --head failed")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, f"127.0.0.1:{port}", temp_dir


def stop_ray(proc: subprocess.Popen, temp_dir: str) -> None:
    import ray

    from sir.eval.pool import discard_ray_pool

    discard_ray_pool()
    if ray.is_initialized():
        ray.shutdown()
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    shutil.rmtree(temp_dir, ignore_errors=True)


def ray_ratio(args, model: Path) -> None:
    from sir.eval.pool import default_workers
    from sir.eval.rollout import evaluate_policy
    from sir.policies.checkpoint import load_checkpoint

    workers = args.workers or default_workers()
    policy, pre, post, spec, _ = load_checkpoint(model, device="cpu")
    proc, address, temp_dir = start_ray(workers)
    try:
        def run(backend: str, steps: int) -> dict:
            return evaluate_policy(policy, pre, post, spec, args.ray_episodes, steps, workers=workers,
                                   backend=backend, ray_address=address)

        for backend in ("local", "ray"):  # warm-up: workers started, envs built
            run(backend, 2)
        ratios = []
        print(f"\nRay vs local: {args.ray_episodes} episodes x {args.max_steps} steps, {workers} workers each")
        for round_ in range(args.ray_rounds):
            order = ("local", "ray") if round_ % 2 == 0 else ("ray", "local")
            rates = {}
            for backend in order:
                m = run(backend, args.max_steps)
                rates[backend] = m["episodes"] / m["wall_time_s"]
            ratios.append(rates["ray"] / rates["local"])
            print(f"round {round_ + 1}: local {rates['local']:.2f} episodes/s, ray {rates['ray']:.2f} episodes/s, "
                  f"ratio {ratios[-1]:.3f}  [load average {os.getloadavg()[0]:.1f}]", flush=True)
        print(f"Ray/local episodes/s: {statistics.median(ratios):.3f} (median of {args.ray_rounds} rounds; "
              "goal >= 0.9)")
    finally:
        stop_ray(proc, temp_dir)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--eval-freq", type=int, default=500)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--max-steps", type=int, default=60)
    p.add_argument("--demos", type=int, default=20)
    p.add_argument("--select-top-k", type=int, default=None, help="the trainer's --select-top-k (default: its own, "
                   "as training runs today; 1 turns the selection off)")
    p.add_argument("--workers", type=int, default=None, help="env workers of the Ray comparison (default: cores)")
    p.add_argument("--ray-episodes", type=int, default=16)
    p.add_argument("--ray-rounds", type=int, default=3, help="0 skips the Ray comparison")
    p.add_argument("--root", default=None, help="a folder holding (or to hold) the demos; default: a temporary one")
    args = p.parse_args()

    import dataclasses

    from sir.runtime import quiet_libraries
    from sir.training import TrainConfig

    quiet_libraries()
    tmp = tempfile.mkdtemp(prefix="sir-async-bench-")
    root = Path(args.root or tmp)
    repo_id = throughput.recorded_demos(root, args.demos)  # the same demos as its trained model's
    base = TrainConfig(repo_ids=[repo_id], root=str(root), policy="act", preset="tiny", batch_size=16,
                       training_steps=args.steps, eval_freq=args.eval_freq, save_freq=args.steps,
                       eval_episodes=args.eval_episodes, max_steps=args.max_steps, log_freq=50,
                       checkpoint_dir=str(Path(tmp) / "runs"))
    if args.select_top_k is not None:
        base = dataclasses.replace(base, select_top_k=args.select_top_k)
    runs = {}
    for name, beside in (("waits", False), ("async", True)):
        runs[name] = timed_run(dataclasses.replace(base, async_eval=beside, run_name=name))
    from sir.training.selection import select_episodes

    selection = (f"best-model selection on: the {base.select_top_k} best evaluated models evaluated again on "
                 f"{select_episodes(base)} episodes when training ends" if base.select_top_k > 1
                 else "best-model selection off (--select-top-k 1)")
    print(f"\n{args.steps} training steps (tiny ACT, torch threads {os.environ.get('OMP_NUM_THREADS', 'default')}), "
          f"an evaluation of {args.eval_episodes} episodes x {args.max_steps} steps every {args.eval_freq} steps; "
          f"{selection}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    for name, run in runs.items():
        r = run["result"]
        print(f"{'--async-eval' if name == 'async' else '--no-async-eval':16s} utilization {run['utilization']:.3f} "
              f"({run['update']:.1f} s of training steps in {run['loop']:.1f} s), selection {run['selection']:.1f} s, "
              f"run {run['wall']:.1f} s; best model (step {r.best_step}, {100 * r.best_metrics['success_rate']:.0f}%) "
              f"final after {run['to_best']:.1f} s (its evaluation during training recorded after "
              f"{run['best_recorded']:.1f} s)")
    same = runs["waits"]["result"].best_step == runs["async"]["result"].best_step
    print(f"same best model: {same}; goal: utilization >= 0.95 with --async-eval on a machine with one spare core")
    if args.ray_rounds:
        ray_ratio(args, runs["async"]["result"].run_dir / "best_model")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
