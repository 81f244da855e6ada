"""Train a LeRobot policy on LeRobot datasets, evaluating it in Robosuite as it trains.

    python -m sir.training.train_policy --repo-ids lift_demos --root data --policy act

Reads top to bottom: arguments, data, policy, loop (train step, eval hook, checkpoints).
The machinery lives in sir.data, sir.policies, sir.eval and sir.training.checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

from sir.errors import UserError, cli_errors

BANNER = "=" * 60


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m sir.training.train_policy",
        description="Train a LeRobot policy by behavioural cloning on one or more LeRobot datasets, "
        "evaluating it in Robosuite every --eval-freq steps and keeping the best model by success rate. "
        "Outputs go to <checkpoint-dir>/<policy>_<datasets>/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("policy")
    g.add_argument("--policy", default="act", help="policy type (see sir.policies)")
    g.add_argument("--preset", default="default", choices=["tiny", "cpu", "default"],
                   help="model size: tiny (tests), cpu (trains on 2 cores in minutes), default (lerobot's sizes)")
    g.add_argument("--action-chunk-size", type=int, default=None, help="action chunk / horizon (default: policy's)")
    g.add_argument("--n-obs-steps", type=int, default=None, help="observation steps (default: policy's)")
    g.add_argument("--n-action-steps", type=int, default=None, help="actions executed per chunk (default: policy's)")

    g = p.add_argument_group("data")
    g.add_argument("--repo-ids", required=True, help="comma-separated dataset names")
    g.add_argument("--root", default=None, help="folder holding the datasets (default: the Hugging Face cache)")
    g.add_argument("--env", default=None, help="Robosuite env, only for datasets recorded without an EnvSpec (default: Lift)")
    g.add_argument("--robot", default=None, help="robot, only for datasets recorded without an EnvSpec (default: Panda)")
    g.add_argument("--episodes", default=None,
                   help='episodes per dataset, e.g. "lift_demos=0:25,lift_dagger=all", or a YAML/JSON file')
    g.add_argument("--dataset-weights", default=None,
                   help="comma-separated share of samples drawn from each dataset, e.g. 1,2 (normalized)")
    g.add_argument("--balance-datasets", action="store_true", help="draw equally from every dataset")
    g.add_argument("--balance-episodes", action="store_true", help="make every episode equally likely")
    g.add_argument("--no-dagger-filter", action="store_true",
                   help="train on every frame of DAgger datasets, not only the successful human corrections")

    g = p.add_argument_group("training")
    g.add_argument("--batch-size", type=int, default=16)
    g.add_argument("--lr", type=float, default=None, help="learning rate (default: the policy preset's)")
    g.add_argument("--training-steps", type=int, default=10000)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--grad-clip-norm", type=float, default=None, help="gradient clipping (default: the policy's optimizer preset)")
    g.add_argument("--log-freq", type=int, default=50, help="log the loss every N steps")

    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-freq", type=int, default=1000, help="evaluate every N steps (0: only at the end)")
    g.add_argument("--eval-episodes", type=int, default=10)
    g.add_argument("--max-steps", type=int, default=400, help="step limit of an evaluation episode")
    g.add_argument("--eval-seed", type=int, default=None, help="seed of evaluation episode 0; episode i uses seed+i")
    g.add_argument("--save-video", action="store_true", help="write eval_step_<N>.mp4 for each evaluation")
    g.add_argument("--video-dir", default=None, help="where videos go (default: <run dir>/videos)")
    g.add_argument("--video-episodes", type=int, default=2, help="episodes recorded in each video")

    g = p.add_argument_group("system")
    g.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    g.add_argument("--num-workers", type=int, default=0, help="dataloader worker processes")
    g.add_argument("--checkpoint-dir", default="checkpoints")
    g.add_argument("--run-name", default=None, help="run folder name (default: <policy>_<datasets>)")
    g.add_argument("--save-freq", type=int, default=5000, help="write checkpoint_<step> every N steps")
    g.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")

    g = p.add_argument_group("logging")
    g.add_argument("--use-wandb", action="store_true", help="log to Weights & Biases (WANDB_MODE=offline works)")
    g.add_argument("--wandb-project", default="sir")
    g.add_argument("--wandb-entity", default=None)
    g.add_argument("--wandb-run-name", default=None)
    args = p.parse_args(argv)
    for name in ("batch_size", "training_steps", "eval_episodes", "max_steps", "save_freq", "log_freq"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.eval_freq < 0:
        p.error("--eval-freq must be 0 or more")
    return args


def pick_device(requested: str | None) -> str:
    import torch

    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu.")
        if requested == "mps" and not torch.backends.mps.is_available():
            raise UserError("--device mps was asked for but MPS is not available; use --device cpu.")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def quiet_libraries() -> None:
    # lerobot warns at import that no GPU is present and that configs switch device; sir
    # prints the device it uses in the header instead.
    logging.getLogger().setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", message=".*Converting input from bool.*")


def cycle(loader):
    while True:
        yield from loader


@cli_errors
def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    quiet_libraries()
    import torch
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.datasets.utils import dataset_to_policy_features
    from lerobot.policies.factory import make_policy, make_pre_post_processors
    from tqdm import tqdm

    from sir.data import make_mixture, parse_repo_ids
    from sir.envs.spec import spec_for_dataset
    from sir.eval.rollout import DEFAULT_EVAL_SEED, evaluate_policy, format_metrics
    from sir.policies import build_config
    from sir.training.checkpoint import save_checkpoint
    from sir.training.tracking import RunLogger

    # ---- setup -----------------------------------------------------------------------
    repo_ids = parse_repo_ids(args.repo_ids)
    device = pick_device(args.device)
    seed_everything(args.seed)
    run_name = args.run_name or f"{args.policy}_" + "_".join(r.replace("/", "_") for r in repo_ids)
    run_dir = Path(args.checkpoint_dir) / run_name
    if run_dir.exists() and any(run_dir.iterdir()):
        if not args.overwrite:
            raise UserError(f"{run_dir} already holds a run; pass --run-name to start another or --overwrite to replace it.")
        import shutil

        shutil.rmtree(run_dir)
    eval_seed = DEFAULT_EVAL_SEED if args.eval_seed is None else args.eval_seed

    print(BANNER)
    print(f"Training {args.policy.upper()} Policy with LeRobot (sir)")
    print(BANNER)
    print(f"Policy: {args.policy} (preset {args.preset})")
    print(f"Datasets: {', '.join(repo_ids)}")
    print(f"Root: {args.root or 'Hugging Face cache'}")
    print(f"Device: {device}")
    print(f"Batch size: {args.batch_size}")

    # ---- data ------------------------------------------------------------------------
    print("\nFiltering datasets...")
    mixture = make_mixture(
        repo_ids, root=args.root, episodes=args.episodes, weights=args.dataset_weights,
        balance_datasets=args.balance_datasets, balance_episodes=args.balance_episodes,
        dagger_filter=not args.no_dagger_filter, seed=args.seed,
    )
    spec = next((s for s in mixture.env_specs if s is not None), None)
    if spec is None:
        spec = spec_for_dataset(mixture.infos[0].root, args.env, args.robot)
        print(f"No EnvSpec recorded with the data: using the default {spec.env_name} layout for {spec.robots[0]}.")
    print(f"Environment: {spec.env_name} ({', '.join(spec.robots)}), {mixture.fps} fps")

    features = dataset_to_policy_features(mixture.features)
    output_features = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    input_features = {k: f for k, f in features.items() if k not in output_features}
    print("\nInput features:")
    for key, ft in input_features.items():
        print(f"  {key}: shape={tuple(ft.shape)}")
    print("Output features:")
    for key, ft in output_features.items():
        print(f"  {key}: shape={tuple(ft.shape)}")

    # ---- policy ----------------------------------------------------------------------
    cfg = build_config(
        args.policy, args.preset, input_features, output_features, device,
        chunk_size=args.action_chunk_size, n_obs_steps=args.n_obs_steps,
        n_action_steps=args.n_action_steps, lr=args.lr,
    )
    mixture.set_delta_timestamps(resolve_delta_timestamps(cfg, mixture))
    policy = make_policy(cfg, ds_meta=mixture)
    preprocessor, postprocessor = make_pre_post_processors(cfg, dataset_stats=mixture.stats)
    optimizer_cfg = cfg.get_optimizer_preset()
    optimizer = optimizer_cfg.build(policy.get_optim_params())
    scheduler_cfg = cfg.get_scheduler_preset()
    scheduler = scheduler_cfg.build(optimizer, args.training_steps) if scheduler_cfg else None
    grad_clip = args.grad_clip_norm if args.grad_clip_norm is not None else getattr(optimizer_cfg, "grad_clip_norm", None)
    n_params = sum(p.numel() for p in policy.parameters())
    print(f"\n{args.policy.upper()} policy created")
    print(f"  Parameters: {n_params:,}")
    for field in ("chunk_size", "horizon", "n_obs_steps", "n_action_steps"):
        if hasattr(cfg, field):
            print(f"  {field}: {getattr(cfg, field)}")
    print(f"  Learning rate: {optimizer_cfg.lr:g}")

    print("\nDatasets:")
    for info in mixture.infos:
        print(f"  {info.repo_id}: {len(info.used_episodes)} episodes (of {info.total_episodes} total), {info.frames} frames")
    print(f"  Total frames: {mixture.num_frames}")

    loader = torch.utils.data.DataLoader(
        mixture, batch_size=args.batch_size, sampler=mixture.sampler, shuffle=mixture.sampler is None,
        num_workers=args.num_workers, drop_last=len(mixture) >= args.batch_size,
        pin_memory=device.startswith("cuda"), persistent_workers=args.num_workers > 0,
    )
    video_dir = Path(args.video_dir) if args.video_dir else run_dir / "videos"
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {**vars(args), "device": device, "run_dir": str(run_dir), "eval_seed": eval_seed,
              "env_spec": spec.to_dict(), "policy_config": cfg.__class__.__name__}
    (run_dir / "train_config.json").write_text(json.dumps(config, indent=2, default=str) + "\n")
    logger = RunLogger(run_dir, config, args.use_wandb, args.wandb_project, args.wandb_entity, args.wandb_run_name)
    data_info = [
        {"repo_id": i.repo_id, "root": str(i.root), "episodes": i.used_episodes, "total_episodes": i.total_episodes,
         "frames": i.frames, "revision": getattr(i, "revision", None)}
        for i in mixture.infos
    ]
    print(f"\nCheckpoints will be saved to: {run_dir}")

    def checkpoint(name: str, step: int, metrics: dict[str, Any] | None) -> Path:
        info = {"step": step, "policy": args.policy, "preset": args.preset, "metrics": metrics,
                "datasets": data_info, "train_config": str(run_dir / "train_config.json")}
        return save_checkpoint(run_dir / name, policy, preprocessor, postprocessor, spec, info)

    best: tuple[float, float] | None = None  # (success rate, -avg length): higher is better

    def evaluate(step: int) -> dict[str, Any]:
        nonlocal best
        video = video_dir / f"eval_step_{step}.mp4" if args.save_video else None
        metrics = evaluate_policy(policy, preprocessor, postprocessor, spec, args.eval_episodes, args.max_steps,
                                  seed=eval_seed, video_path=video, video_episodes=args.video_episodes)
        tqdm.write(f"\nEvaluation Results (step {step}):\n{format_metrics(metrics)}")
        logger.log(step, {"eval/success_rate": metrics["success_rate"], "eval/avg_reward": metrics["avg_reward"],
                          "eval/avg_length": metrics["avg_length"], "eval/wall_time_s": metrics["wall_time_s"]},
                   video=metrics.get("video"))
        summary = {k: v for k, v in metrics.items() if k != "per_episode"}
        score = (metrics["success_rate"], -metrics["avg_length"])
        if best is None or score > best:
            best = score
            checkpoint("best_model", step, summary)
            tqdm.write(f"Saved best model (success rate: {100 * metrics['success_rate']:.1f}%)")
        return summary

    # ---- loop ------------------------------------------------------------------------
    print("\nStarting training...")
    print(BANNER)
    policy.train()
    batches = cycle(loader)
    bar = tqdm(range(1, args.training_steps + 1), desc="Training", unit="step", dynamic_ncols=True)
    start = time.perf_counter()
    last_eval: dict[str, Any] | None = None
    for step in bar:
        batch = preprocessor(next(batches))
        loss, output = policy.forward(batch)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip or float("inf"))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if scheduler is not None:
            scheduler.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % args.log_freq == 0 or step == 1:
            record = {"train/loss": loss.item(), "train/grad_norm": float(grad_norm),
                      "train/lr": optimizer.param_groups[0]["lr"], "train/elapsed_s": time.perf_counter() - start}
            record.update({f"train/{k}": float(v) for k, v in (output or {}).items() if isinstance(v, int | float)})
            logger.log(step, record)
        if (args.eval_freq and step % args.eval_freq == 0) or step == args.training_steps:
            last_eval = evaluate(step)
        if step % args.save_freq == 0:
            checkpoint(f"checkpoint_{step}", step, last_eval)
    bar.close()
    final = checkpoint("final_model", args.training_steps, last_eval)
    logger.finish()
    print(BANNER)
    print(f"Training finished in {time.perf_counter() - start:.0f} s.")
    if best is not None:
        print(f"Best success rate: {100 * best[0]:.1f}% -> {run_dir / 'best_model'}")
    print(f"Final model: {final}")
    return run_dir


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
