"""lerobot-train beside sir (issue 24, part 4): what a user would run instead of sir, on the
same data with the same policy configuration and batch, for the same wall time, both scored
by sir's evaluation on the same episodes.

    OMP_NUM_THREADS=1 python benchmarks/lerobot_train_beside.py --task PickPlaceCan \\
        --root results/data --repo-id pickplacecan_200 --minutes 21 --out results/lerobot_beside

1. Builds the policy configuration exactly as ``sir.training.train_policy --config
   sir/results/recipes/<Task>.yaml`` builds it (preset, recipe settings, sir's
   normalization of ``observation.environment_state``), and writes it, with the recipe's
   batch size and data loader workers, as a lerobot ``TrainPipelineConfig``, so
   ``lerobot-train --config_path`` trains that very configuration on ``--root/--repo-id``
   (no hub), with lerobot's own loop, sampler, optimizer preset and checkpoints, and no
   evaluation.
2. Probes each trainer's speed on that data and configuration: sir for ``--probe-steps``
   steps (``--no-eval``; ``train/elapsed_s`` in metrics.jsonl, as ``sir.results`` times
   training), lerobot-train for as many (between its checkpoints at half and at all of them).
3. Sizes each trainer's schedule to the steps it makes in ``--minutes``: its probed rate
   times the minutes, rounded down to a multiple of the recipe's number of evaluations. A
   recipe's ``lr_schedule: cosine`` then decays over that trainer's own steps (so neither
   stops part way down its decay), and both save as many checkpoints (sir evaluates at
   each, as the recipe does; lerobot-train cannot).
4. Trains both to the end of their schedules, one after the other, each timed over its whole
   training: sir's training time as ``sir.results`` counts it (``train/elapsed_s`` at the last
   step less the evaluations training waited for; with a spare core they run beside it, as
   by default), lerobot-train's from its "Start offline training" line to its last
   "Checkpoint policy after step N" line.
5. Scores sir's best_model (chosen as sir chooses it) and lerobot-train's last checkpoint
   (``checkpoints/last/pretrained_model``: lerobot-train keeps no best model) with
   ``sir.eval.evaluate`` on the same ``--eval-episodes`` episodes from ``--eval-seed``
   (default: the test range, ``sir.seeds.TEST``), with the data's episode step limit.

Prints and writes to ``<out>/beside.json`` both trainers' probe and whole-run steps per
second, steps, training time and score, with the command that ran. Run it with one torch
thread (``OMP_NUM_THREADS=1``), as the results table trains.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sir.errors import UserError, cli_errors
from sir.results.recipes import TASKS

START_LINE = "Start offline training"
CHECKPOINT_LINE = re.compile(r"Checkpoint policy after step (\d+)")


def sir_settings(task: str, train_args: str) -> dict[str, Any]:
    from sir.config import flags_given
    from sir.training import TrainConfig

    settings = {**TASKS[task].train_settings(), **flags_given(TrainConfig, train_args, "--train-args")}
    if settings.get("ema_decay") is not None:
        raise UserError(f"lerobot-train keeps no weight average, and {task}'s recipe or --train-args sets --ema-decay "
                        f"{settings['ema_decay']:g}: compare the trainers on a task whose recipe has none "
                        f"({', '.join(t for t in TASKS if TASKS[t].train_settings().get('ema_decay') is None)}) and "
                        "without --ema-decay in --train-args.")
    return settings


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

    if train_cfg.lr_schedule == "preset":
        return {}
    scheduler = scheduler_config(train_cfg, policy_cfg, policy_cfg.get_optimizer_preset().lr)
    if scheduler is None:
        if policy_cfg.get_scheduler_preset() is None:
            return {}  # the policy's own rate is constant already (ACT)
        raise UserError("lerobot-train has no constant schedule to replace this policy's own; drop --lr-schedule "
                        "constant from --train-args to compare the two trainers.")
    # Without the policy's training preset lerobot-train takes the optimizer and scheduler given.
    return {"use_policy_training_preset": False, "optimizer": policy_cfg.get_optimizer_preset(),
            "scheduler": scheduler}


def lerobot_pipeline_config(policy_cfg: Any, settings: dict[str, Any], root: str, repo_id: str, output_dir: Path,
                            steps: int, save_freq: int, optimizer: dict[str, Any] | None = None) -> Any:
    """The lerobot ``TrainPipelineConfig`` that trains ``policy_cfg`` on ``--root/--repo-id``
    with the recipe's batch and loader workers, for ``steps`` steps into ``output_dir``."""
    from lerobot.configs.default import DatasetConfig, WandBConfig
    from lerobot.configs.train import TrainPipelineConfig

    policy_cfg.push_to_hub = False
    return TrainPipelineConfig(
        dataset=DatasetConfig(repo_id=repo_id, root=str(Path(root) / repo_id)), policy=policy_cfg,
        output_dir=output_dir, job_name="lerobot_beside_sir", seed=settings.get("seed", 0),
        num_workers=settings.get("num_workers", 0), batch_size=settings.get("batch_size", 16),
        steps=steps, eval_freq=0, log_freq=save_freq, save_freq=save_freq, wandb=WandBConfig(enable=False),
        **(optimizer or {}))


def write_lerobot_config(policy_cfg: Any, settings: dict[str, Any], root: str, repo_id: str, out: Path, name: str,
                         steps: int, save_freq: int, optimizer: dict[str, Any] | None = None) -> Path:
    """``<out>/<name>_config/train_config.json``: lerobot-train for ``steps`` steps into
    ``<out>/<name>_run``, a checkpoint every ``save_freq`` steps and at the last."""
    cfg = lerobot_pipeline_config(policy_cfg, settings, root, repo_id, out / f"{name}_run", steps, save_freq,
                                  optimizer)
    folder = out / f"{name}_config"
    folder.mkdir(parents=True, exist_ok=True)
    cfg._save_pretrained(folder)
    return folder / "train_config.json"


def evaluations(settings: dict[str, Any]) -> int:
    """How many evaluations (and checkpoints) the recipe makes over its schedule."""
    from sir.training import TrainConfig

    steps = settings.get("training_steps", TrainConfig.training_steps)
    return max(1, steps // (settings.get("eval_freq") or steps))


def sized(rate: float, seconds: float, parts: int) -> int:
    """The steps a trainer makes in ``seconds`` at ``rate`` steps/s, rounded down to a
    multiple of ``parts`` (at least one step a part)."""
    return parts * max(1, int(rate * seconds) // parts)


def with_schedule(settings: dict[str, Any], steps: int, parts: int) -> dict[str, Any]:
    """The recipe's settings over ``steps`` training steps: its schedule (a cosine decays to
    its end at the last step), its evaluations and checkpoints spread over them as over the
    recipe's, and one log line at each, so that the last step's time is logged."""
    every = steps // parts
    return {**settings, "training_steps": steps, "eval_freq": every, "save_freq": every, "log_freq": every}


def sir_speed(settings: dict[str, Any], root: str, repo_id: str, out: Path, steps: int) -> dict[str, Any]:
    """sir's steps per second on the same data and configuration, training only (a probe)."""
    from sir.training import TrainConfig, train

    log_freq = max(1, steps // 20)
    run = train(TrainConfig(**{**settings, "repo_ids": [repo_id], "root": root, "training_steps": steps,
                               "no_eval": True, "log_freq": log_freq, "save_freq": steps, "checkpoint_dir": str(out),
                               "run_name": "sir_probe", "overwrite": True}))
    records = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    timed = [(r["step"], r["train/elapsed_s"]) for r in records if "train/elapsed_s" in r]
    (first_step, first_s), (last_step, last_s) = timed[0], timed[-1]
    return {"steps": last_step - first_step, "seconds": last_s - first_s,
            "steps_per_s": (last_step - first_step) / (last_s - first_s)}


def run_sir(settings: dict[str, Any], root: str, repo_id: str, out: Path) -> dict[str, Any]:
    """sir trained on ``settings`` (its sized schedule) as sir.results trains a seed, timed as
    it times one: the training steps' wall time, evaluations during training excluded."""
    from sir.results.run import run_times
    from sir.training import TrainConfig, train

    run = train(TrainConfig(**{**settings, "repo_ids": [repo_id], "root": root, "checkpoint_dir": str(out),
                               "run_name": "sir_run", "overwrite": True}))
    if run.best_model is None:
        raise UserError("sir's run evaluated nothing, so it has no best model; drop --no-eval from --train-args.")
    train_s, eval_s = run_times(run.run_dir / "metrics.jsonl")
    steps = settings["training_steps"]
    return {"steps": steps, "train_s": train_s, "eval_s": eval_s, "steps_per_s": steps / train_s,
            "best_step": run.best_step, "model": str(run.best_model)}


def run_lerobot(config_path: Path, log_path: Path, limit_s: float | None = None) -> dict[str, Any]:
    """lerobot-train to the end of its schedule (stopped with Ctrl-C, as a user stops it, only
    past ``limit_s`` seconds of training); its checkpoints' steps and times, and its training
    time from its start line to its last checkpoint's line."""
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
    while proc.poll() is None and (limit_s is None or not started or time.perf_counter() - started[0] < limit_s):
        time.sleep(0.5)
    if proc.poll() is None:
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
    last_step, last_t = checkpoints[-1]
    return {"steps": last_step, "train_s": last_t - start, "startup_s": start - launched,
            "steps_per_s": last_step / (last_t - start), "checkpoints": [s for s, _ in checkpoints],
            "times_s": [t - start for _, t in checkpoints], "exit_code": proc.returncode, "log": str(log_path)}


def lerobot_speed(result: dict[str, Any]) -> dict[str, Any]:
    """A probe's steps per second between its first and last checkpoints (the start's first
    steps left out, as sir's probe leaves out its first logged step)."""
    steps, times = result["checkpoints"], result["times_s"]
    if len(steps) > 1 and steps[-1] > steps[0]:
        return {"steps": steps[-1] - steps[0], "seconds": times[-1] - times[0],
                "steps_per_s": (steps[-1] - steps[0]) / (times[-1] - times[0])}
    return {"steps": steps[-1], "seconds": times[-1], "steps_per_s": steps[-1] / times[-1]}


def prune(checkpoint_dir: Path, keep: int = 2) -> None:
    """lerobot-train keeps every checkpoint, optimizer state and all; only the newest matter here
    (the one being written and the last whole one, which ``last`` points at)."""
    import shutil

    steps = sorted((p for p in checkpoint_dir.glob("[0-9]*") if p.is_dir()), key=lambda p: int(p.name))
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def evaluate_model(model: Path, task: str | None, spec: Any, episodes: int, seed: int, out: Path) -> dict[str, Any]:
    """sir.eval.evaluate on ``model``: with ``task`` (``--env``), the env rebuilt from the task's
    default layout (a lerobot folder carries no EnvSpec), else the model's own."""
    from sir.envs.spec import default_spec
    from sir.eval.evaluate import EvalConfig, evaluate

    if task is None:
        return evaluate(EvalConfig(checkpoint=str(model), episodes=episodes, eval_seed=seed, max_steps=spec.horizon,
                                   output_dir=str(out)))
    # sir.eval.evaluate --env rebuilds the env's default layout: it must be the one the data records.
    rebuilt = default_spec(task, spec.robots[0])
    if (list(rebuilt.state_keys), list(rebuilt.env_state_keys)) != (list(spec.state_keys), list(spec.env_state_keys)):
        raise UserError(f"The data's observation layout is not {task}'s default; --env cannot rebuild it.")
    return evaluate(EvalConfig(checkpoint=str(model), env=task, robot=spec.robots[0], episodes=episodes,
                               eval_seed=seed, max_steps=spec.horizon, output_dir=str(out)))


def scored(metrics: dict[str, Any], seed: int) -> dict[str, Any]:
    return {"success_rate": metrics["success_rate"], "success_ci95": list(metrics["success_ci95"]),
            "episodes": metrics["episodes"], "eval_seed": seed}


@cli_errors
def main(argv: list[str] | None = None) -> dict[str, Any]:
    from sir import seeds

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="PickPlaceCan", choices=list(TASKS), help="recipe and env (default: PickPlaceCan)")
    p.add_argument("--root", default="results/data", help="folder of the dataset (default: results/data)")
    p.add_argument("--repo-id", default=None, help="dataset under --root (default: <task>_200, as make results)")
    p.add_argument("--minutes", type=float, default=60.0, help="each trainer's training time: its schedule is sized "
                   "to the steps it makes in it (default: 60)")
    p.add_argument("--probe-steps", type=int, default=300, help="steps of each trainer's speed probe (default: 300)")
    p.add_argument("--eval-episodes", type=int, default=100, help="episodes of each evaluation (default: 100)")
    p.add_argument("--eval-seed", type=int, default=seeds.TEST.start, help="seed of episode 0 (default: "
                   f"{seeds.TEST.start}, the test range, as the results table's rows)")
    p.add_argument("--train-args", default="", help="train_policy flags over the recipe, quoted (e.g. \"--preset "
                   "tiny\"); they shape both trainers' configuration (--training-steps is sized from --minutes)")
    p.add_argument("--out", default="results/lerobot_beside", help="output folder (default: results/lerobot_beside)")
    args = p.parse_args(argv)
    ran = "python benchmarks/lerobot_train_beside.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    out = Path(args.out)
    for name in ("lerobot_probe_run", "lerobot_run"):
        if (out / name).exists():
            raise UserError(f"{out / name} exists (lerobot-train refuses to overwrite it); remove it or pass "
                            "another --out.")
    repo_id = args.repo_id or f"{args.task.lower()}_200"
    settings = sir_settings(args.task, args.train_args)
    out.mkdir(parents=True, exist_ok=True)
    parts = evaluations(settings)
    seconds = 60 * args.minutes

    # Probes: each trainer's rate on this data and configuration.
    policy_cfg, spec, train_cfg = policy_config(settings, args.root, repo_id)
    probe_config = write_lerobot_config(policy_cfg, settings, args.root, repo_id, out, "lerobot_probe",
                                        args.probe_steps, max(1, args.probe_steps // 2),
                                        optimizer_settings(train_cfg, policy_cfg))
    sir_probe = sir_speed(settings, args.root, repo_id, out, args.probe_steps)
    lerobot_probe = lerobot_speed(run_lerobot(probe_config, out / "lerobot_probe.log"))
    print(f"probes: sir {sir_probe['steps_per_s']:.2f} steps/s, lerobot-train {lerobot_probe['steps_per_s']:.2f} "
          "steps/s", flush=True)

    # Each trainer's schedule: the steps it makes in the minutes, its decay over them.
    sir_settings_sized = with_schedule(settings, sized(sir_probe["steps_per_s"], seconds, parts), parts)
    lerobot_settings = with_schedule(settings, sized(lerobot_probe["steps_per_s"], seconds, parts), parts)
    steps = lerobot_settings["training_steps"]
    config_path = write_lerobot_config(policy_cfg, lerobot_settings, args.root, repo_id, out, "lerobot", steps,
                                       lerobot_settings["save_freq"],
                                       optimizer_settings(dataclasses.replace(train_cfg, training_steps=steps),
                                                          policy_cfg))
    print(f"schedules for {args.minutes:g} min: sir {sir_settings_sized['training_steps']} steps, lerobot-train "
          f"{lerobot_settings['training_steps']} steps ({config_path})", flush=True)

    sir = run_sir(sir_settings_sized, args.root, repo_id, out)
    print(f"sir: {sir['steps']} steps in {sir['train_s'] / 60:.1f} min, {sir['steps_per_s']:.2f} steps/s", flush=True)
    lerobot = run_lerobot(config_path, out / "lerobot_train.log", limit_s=3 * seconds + 60)
    print(f"lerobot-train: {lerobot['steps']} steps in {lerobot['train_s'] / 60:.1f} min, "
          f"{lerobot['steps_per_s']:.2f} steps/s", flush=True)
    if lerobot["steps"] < lerobot_settings["training_steps"]:
        print(f"lerobot-train was stopped at step {lerobot['steps']} of {lerobot_settings['training_steps']}, "
              "three times its minutes; its schedule did not end.")

    sir_model = Path(sir["model"])
    lerobot_model = out / "lerobot_run" / "checkpoints" / "last" / "pretrained_model"
    sir_metrics = evaluate_model(sir_model, None, spec, args.eval_episodes, args.eval_seed, out / "eval_sir")
    lerobot_metrics = evaluate_model(lerobot_model, args.task, spec, args.eval_episodes, args.eval_seed,
                                     out / "eval_lerobot")
    result = {
        "task": args.task, "repo_id": repo_id, "settings": settings, "batch_size": settings.get("batch_size"),
        "minutes": args.minutes,
        "sir": {**sir, "probe": sir_probe, "settings": sir_settings_sized, **scored(sir_metrics, args.eval_seed)},
        "lerobot": {**lerobot, "probe": lerobot_probe, "settings": lerobot_settings, "model": str(lerobot_model),
                    **scored(lerobot_metrics, args.eval_seed)},
        "torch_threads": os.environ.get("OMP_NUM_THREADS"), "command": ran,
    }
    (out / "beside.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\n{args.minutes:g} minutes of training each, same data, configuration and batch, each schedule sized "
          "to its trainer's steps:")
    for name, r in (("sir", result["sir"]), ("lerobot-train", result["lerobot"])):
        low, high = r["success_ci95"]
        print(f"  {name:13s} {r['steps']} steps in {r['train_s'] / 60:.1f} min ({r['steps_per_s']:.2f} steps/s; "
              f"probe {r['probe']['steps_per_s']:.2f}): {100 * r['success_rate']:.0f}% ({100 * low:.0f}-"
              f"{100 * high:.0f}%, {r['episodes']} episodes from seed {args.eval_seed})")
    print(f"{out / 'beside.json'}")
    return result


if __name__ == "__main__":
    main()
