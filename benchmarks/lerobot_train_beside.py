"""lerobot-train beside sir (issue 24, part 4): what a user would run instead of sir, on the
same data with the same policy configuration and batch, for a given wall time, scored by
sir's evaluation on the same held-out seeds.

    OMP_NUM_THREADS=1 python benchmarks/lerobot_train_beside.py --task PickPlaceCan \\
        --root results/data --repo-id pickplacecan_200 --minutes 60 --out results/lerobot_beside

1. Builds the policy configuration exactly as ``sir.training.train_policy --config
   sir/results/recipes/<Task>.yaml`` builds it (preset, recipe settings, sir's
   normalization of ``observation.environment_state``), and writes it, with the recipe's
   batch size and data loader workers, as a lerobot ``TrainPipelineConfig``
   (``<out>/lerobot_config/train_config.json``), so ``lerobot-train --config_path`` trains
   that very configuration on ``--root/--repo-id`` (no hub), with lerobot's own loop,
   sampler, optimizer preset and checkpoints, and no evaluation.
2. Measures sir's training speed on the same data and configuration for ``--sir-steps``
   steps (``--no-eval``), as ``sir.results`` times training: ``train/elapsed_s`` in
   metrics.jsonl.
3. Runs ``lerobot-train`` for ``--minutes`` of training (counted from its "Start offline
   training" line) and stops it with Ctrl-C; its steps per second are counted between its
   first and last "Checkpoint policy after step N" lines (its checkpoints every
   ``--save-freq`` steps; the steps after the last one are not counted, nor kept).
4. Evaluates lerobot's last checkpoint (``checkpoints/last/pretrained_model``) with
   ``sir.eval.evaluate --env <Task>`` on ``--eval-episodes`` episodes from ``--eval-seed``
   (the results' held-out seeds), with the data's episode step limit.

Prints both trainers' steps per second and lerobot's row, and writes them to
``<out>/beside.json``. Run both with one torch thread (``OMP_NUM_THREADS=1``), as the
results table trains.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sir.results.recipes import TASKS

START_LINE = "Start offline training"
CHECKPOINT_LINE = re.compile(r"Checkpoint policy after step (\d+)")


def sir_settings(task: str, train_args: str) -> dict[str, Any]:
    from sir.config import flags_given
    from sir.training import TrainConfig

    return {**TASKS[task].train_settings(), **flags_given(TrainConfig, train_args, "--train-args")}


def policy_config(settings: dict[str, Any], root: str, repo_id: str) -> tuple[Any, Any, Any]:
    """(lerobot policy config, the data's EnvSpec, sir's checked TrainConfig), built as sir's
    trainer builds them."""
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.utils import dataset_to_policy_features

    from sir.data import make_mixture
    from sir.policies import build_config
    from sir.training import TrainConfig
    from sir.training.config import check

    cfg = check(TrainConfig(**{**settings, "repo_ids": [repo_id], "root": root}))
    mixture = make_mixture(cfg, verbose=False)
    features = dataset_to_policy_features(mixture.features)
    outputs = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    inputs = {k: f for k, f in features.items() if k not in outputs}
    policy_cfg = build_config(cfg.policy or "act", cfg.preset, inputs, outputs, "cpu",
                              chunk_size=cfg.action_chunk_size, n_obs_steps=cfg.n_obs_steps,
                              n_action_steps=cfg.n_action_steps, lr=cfg.lr, dataset_features=mixture.features,
                              policy_args=cfg.policy_overrides)
    spec = next(s for s in mixture.env_specs if s is not None)
    return policy_cfg, spec, cfg


def optimizer_settings(train_cfg: Any, policy_cfg: Any) -> dict[str, Any]:
    """The TrainPipelineConfig fields that give lerobot-train sir's learning-rate schedule
    (``sir.training.schedule``; a recipe's ``lr_schedule: cosine`` decays over its
    ``training_steps``). Refused where lerobot-train cannot train as sir does, rather than
    comparing two different trainings under one name."""
    from sir.training.schedule import scheduler_config

    if train_cfg.ema_decay:
        raise SystemExit("lerobot-train keeps no weight average; drop --ema-decay from --train-args to compare "
                         "the two trainers.")
    if train_cfg.lr_schedule == "preset":
        return {}
    scheduler = scheduler_config(train_cfg, policy_cfg, policy_cfg.get_optimizer_preset().lr)
    if scheduler is None:
        if policy_cfg.get_scheduler_preset() is None:
            return {}  # the policy's own rate is constant already (ACT)
        raise SystemExit("lerobot-train has no constant schedule to replace this policy's own; drop --lr-schedule "
                         "constant from --train-args to compare the two trainers.")
    # Without the policy's training preset lerobot-train takes the optimizer and scheduler given.
    return {"use_policy_training_preset": False, "optimizer": policy_cfg.get_optimizer_preset(),
            "scheduler": scheduler}


def write_lerobot_config(policy_cfg: Any, settings: dict[str, Any], root: str, repo_id: str, out: Path,
                         save_freq: int, optimizer: dict[str, Any] | None = None) -> Path:
    from lerobot.configs.default import DatasetConfig, WandBConfig
    from lerobot.configs.train import TrainPipelineConfig

    policy_cfg.push_to_hub = False
    cfg = TrainPipelineConfig(
        dataset=DatasetConfig(repo_id=repo_id, root=str(Path(root) / repo_id)), policy=policy_cfg,
        output_dir=out / "lerobot_run", job_name="lerobot_beside_sir", seed=settings.get("seed", 0),
        num_workers=settings.get("num_workers", 0), batch_size=settings.get("batch_size", 16),
        steps=100_000_000, eval_freq=0, log_freq=save_freq, save_freq=save_freq, wandb=WandBConfig(enable=False),
        **(optimizer or {}))
    folder = out / "lerobot_config"
    folder.mkdir(parents=True, exist_ok=True)
    cfg._save_pretrained(folder)
    return folder / "train_config.json"


def sir_speed(settings: dict[str, Any], root: str, repo_id: str, out: Path, steps: int) -> dict[str, Any]:
    """sir's steps per second on the same data and configuration, training only."""
    from sir.training import TrainConfig, train

    log_freq = max(1, steps // 20)
    run = train(TrainConfig(**{**settings, "repo_ids": [repo_id], "root": root, "training_steps": steps,
                               "no_eval": True, "log_freq": log_freq, "save_freq": steps, "checkpoint_dir": str(out),
                               "run_name": "sir_speed", "overwrite": True}))
    records = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    timed = [(r["step"], r["train/elapsed_s"]) for r in records if "train/elapsed_s" in r]
    (first_step, first_s), (last_step, last_s) = timed[0], timed[-1]
    return {"steps": last_step - first_step, "seconds": last_s - first_s,
            "steps_per_s": (last_step - first_step) / (last_s - first_s)}


def run_lerobot(config_path: Path, seconds: float, log_path: Path) -> dict[str, Any]:
    """lerobot-train for ``seconds`` of training, then Ctrl-C; its checkpoints' steps and times."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled"}
    command = [sys.executable, "-m", "lerobot.scripts.lerobot_train", f"--config_path={config_path}"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    checkpoint_dir = Path(json.loads(config_path.read_text())["output_dir"]) / "checkpoints"
    started: list[float] = []
    checkpoints: list[tuple[int, float]] = []

    def read() -> None:
        with log_path.open("w") as log:
            for line in proc.stdout:
                now = time.perf_counter()
                log.write(line)
                log.flush()
                if START_LINE in line and not started:
                    started.append(now)
                match = CHECKPOINT_LINE.search(line)
                if match:
                    checkpoints.append((int(match[1]), now))
                    prune(checkpoint_dir)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    launched = time.perf_counter()
    while proc.poll() is None and (not started or time.perf_counter() - started[0] < seconds):
        time.sleep(0.5)
    if proc.poll() is None:
        # Ctrl-C, as a user stops it; lerobot-train has no wall-time limit.
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    reader.join(timeout=10)
    # lerobot logs a checkpoint's line before it writes the folder, so the last prune can
    # run before the last checkpoint exists.
    prune(checkpoint_dir)
    if not started or not checkpoints:
        raise SystemExit(f"lerobot-train wrote no checkpoint (exit code {proc.returncode}); see {log_path}.")
    start = started[0]
    (first_step, first_t), (last_step, last_t) = checkpoints[0], checkpoints[-1]
    if last_step > first_step:
        speed = (last_step - first_step) / (last_t - first_t)
    else:
        speed = last_step / (last_t - start)
    return {"steps": last_step, "train_s": last_t - start, "startup_s": start - launched,
            "steps_per_s": speed, "checkpoints": [s for s, _ in checkpoints], "log": str(log_path)}


def prune(checkpoint_dir: Path, keep: int = 2) -> None:
    """lerobot-train keeps every checkpoint, optimizer state and all; only the newest matter here
    (the one being written and the last whole one, which ``last`` points at)."""
    import shutil

    steps = sorted((p for p in checkpoint_dir.glob("[0-9]*") if p.is_dir()), key=lambda p: int(p.name))
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def evaluate_lerobot(model: Path, task: str, spec: Any, episodes: int, seed: int, out: Path) -> dict[str, Any]:
    from sir.envs.spec import default_spec
    from sir.eval.evaluate import EvalConfig, evaluate

    # sir.eval.evaluate --env rebuilds the env's default layout: it must be the one the data records.
    rebuilt = default_spec(task, spec.robots[0])
    if (list(rebuilt.state_keys), list(rebuilt.env_state_keys)) != (list(spec.state_keys), list(spec.env_state_keys)):
        raise SystemExit(f"The data's observation layout is not {task}'s default; --env cannot rebuild it.")
    return evaluate(EvalConfig(checkpoint=str(model), env=task, robot=spec.robots[0], episodes=episodes,
                               eval_seed=seed, max_steps=spec.horizon, output_dir=str(out / "eval_lerobot")))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="PickPlaceCan", choices=list(TASKS), help="recipe and env (default: PickPlaceCan)")
    p.add_argument("--root", default="results/data", help="folder of the dataset (default: results/data)")
    p.add_argument("--repo-id", default=None, help="dataset under --root (default: <task>_200, as make results)")
    p.add_argument("--minutes", type=float, default=60.0, help="lerobot-train's training time (default: 60)")
    p.add_argument("--save-freq", type=int, default=500, help="lerobot-train's checkpoint interval (default: 500)")
    p.add_argument("--sir-steps", type=int, default=300, help="steps of sir's speed measurement (default: 300)")
    p.add_argument("--eval-episodes", type=int, default=50, help="episodes of the evaluation (default: 50)")
    p.add_argument("--eval-seed", type=int, default=200_000, help="seed of episode 0 (default: 200000, the "
                   "results' held-out seeds)")
    p.add_argument("--train-args", default="", help="train_policy flags over the recipe, quoted (e.g. \"--preset "
                   "tiny\"); they shape both trainers' configuration")
    p.add_argument("--out", default="results/lerobot_beside", help="output folder (default: results/lerobot_beside)")
    args = p.parse_args(argv)
    out = Path(args.out)
    if (out / "lerobot_run").exists():
        raise SystemExit(f"{out / 'lerobot_run'} exists (lerobot-train refuses to overwrite it); remove it or "
                         "pass another --out.")
    out.mkdir(parents=True, exist_ok=True)
    repo_id = args.repo_id or f"{args.task.lower()}_200"
    settings = sir_settings(args.task, args.train_args)
    policy_cfg, spec, train_cfg = policy_config(settings, args.root, repo_id)
    config_path = write_lerobot_config(policy_cfg, settings, args.root, repo_id, out, args.save_freq,
                                       optimizer_settings(train_cfg, policy_cfg))
    print(f"lerobot config: {config_path}", flush=True)

    sir = sir_speed(settings, args.root, repo_id, out, args.sir_steps)
    print(f"sir: {sir['steps_per_s']:.2f} steps/s ({sir['steps']} steps in {sir['seconds']:.1f} s)", flush=True)
    lerobot = run_lerobot(config_path, 60 * args.minutes, out / "lerobot_train.log")
    print(f"lerobot-train: {lerobot['steps_per_s']:.2f} steps/s; {lerobot['steps']} steps kept in "
          f"{lerobot['train_s'] / 60:.1f} min", flush=True)
    model = out / "lerobot_run" / "checkpoints" / "last" / "pretrained_model"
    metrics = evaluate_lerobot(model, args.task, spec, args.eval_episodes, args.eval_seed, out)
    low, high = metrics["success_ci95"]
    result = {
        "task": args.task, "repo_id": repo_id, "settings": settings, "batch_size": settings.get("batch_size"),
        "sir": sir, "lerobot": {**lerobot, "model": str(model), "success_rate": metrics["success_rate"],
                                "success_ci95": [low, high], "episodes": metrics["episodes"],
                                "eval_seed": args.eval_seed},
        "torch_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    (out / "beside.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nsteps/s, same data, configuration and batch, measured in this run: sir {sir['steps_per_s']:.2f}, "
          f"lerobot-train {lerobot['steps_per_s']:.2f}")
    print(f"lerobot-train's last checkpoint (step {lerobot['steps']}, {lerobot['train_s'] / 60:.1f} min): "
          f"{100 * metrics['success_rate']:.0f}% ({100 * low:.0f}-{100 * high:.0f}%, {metrics['episodes']} episodes "
          f"from seed {args.eval_seed}); {out / 'beside.json'}")
    return result


if __name__ == "__main__":
    main()
