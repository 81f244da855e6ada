"""The trainer's command line: flags, ``--config`` files, and the checks that refuse
impossible combinations before any work starts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sir.data.args import add_mixture_arguments
from sir.errors import UserError

CONFIG_FILENAME = "train_config.json"
# Flags that describe how a run was launched rather than what it trains: a config file
# never sets them, so `--config <run>/train_config.json` starts a fresh, equal run.
_NOT_FROM_CONFIG = {"config", "resume", "list_policies", "overwrite"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sir.training.train_policy",
        description="Train a LeRobot policy by behavioural cloning on one or more LeRobot datasets, "
        "evaluating it in Robosuite every --eval-freq steps and keeping the best model by success rate. "
        "Outputs go to <checkpoint-dir>/<policy>_<datasets>/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--config", default=None,
                   help="YAML or JSON file of flags (e.g. a run's train_config.json); command-line flags override it")
    p.add_argument("--list-policies", action="store_true", help="print the policies, their needs and presets, and exit")

    g = p.add_argument_group("policy")
    g.add_argument("--policy", default=None,
                   help="policy type (see --list-policies); default act, or the type of --policy-path")
    g.add_argument("--preset", default="default", choices=["tiny", "cpu", "default"],
                   help="model size: tiny (tests), cpu (trains on 2 cores in minutes), default (lerobot's sizes)")
    g.add_argument("--action-chunk-size", type=int, default=None, help="action chunk / horizon (default: policy's)")
    g.add_argument("--n-obs-steps", type=int, default=None, help="observation steps (default: policy's)")
    g.add_argument("--n-action-steps", type=int, default=None, help="actions executed per chunk (default: policy's)")
    g.add_argument("--policy-path", default=None,
                   help="fine-tune from a saved sir or lerobot model folder (weights, config, processors)")
    g.add_argument("--pretrained-path", default=None,
                   help="local folder of a pretrained backbone model (pi0, smolvla, ...) instead of the hub")

    # The dataset flags are sir.data's own, shared with `python -m sir.data.verify` so that a
    # verified command line trains on exactly what was verified.
    add_mixture_arguments(p, require_repo_ids=False)
    g = p.add_argument_group("env (datasets without an EnvSpec)")
    g.add_argument("--env", default=None, help="Robosuite env, only for datasets recorded without an EnvSpec (default: Lift)")
    g.add_argument("--robot", default=None, help="robot, only for datasets recorded without an EnvSpec (default: Panda)")

    g = p.add_argument_group("training")
    g.add_argument("--batch-size", type=int, default=16)
    g.add_argument("--lr", type=float, default=None, help="learning rate (default: the policy preset's)")
    g.add_argument("--training-steps", type=int, default=10000, help="optimizer steps")
    g.add_argument("--grad-accum-steps", type=int, default=1,
                   help="micro-batches per optimizer step; the effective batch is batch-size x this")
    g.add_argument("--grad-clip-norm", type=float, default=None, help="gradient clipping (default: the policy's optimizer preset)")
    g.add_argument("--log-freq", type=int, default=50, help="log the loss every N steps")
    g.add_argument("--amp", action="store_true", help="mixed precision (bf16/fp16) on CUDA")
    g.add_argument("--resume", default=None, help="continue a run from one of its checkpoint_<step> folders")
    g.add_argument("--sequential", action="store_true",
                   help="train one stage per dataset in --repo-ids order, each from the previous stage's final model")
    g.add_argument("--steps-per-stage", type=int, default=None, help="training steps of each --sequential stage")

    g = p.add_argument_group("LoRA (peft)")
    g.add_argument("--lora-rank", type=int, default=None, help="train LoRA adapters of this rank instead of all weights")
    g.add_argument("--lora-alpha", type=int, default=None, help="LoRA alpha (default: 2 x rank)")
    g.add_argument("--lora-dropout", type=float, default=0.0)

    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-freq", type=int, default=1000, help="evaluate every N steps (0: only at the end)")
    g.add_argument("--eval-episodes", type=int, default=10)
    g.add_argument("--eval-workers", type=int, default=None, help="rollout worker processes (default: one per core)")
    g.add_argument("--max-steps", type=int, default=None,
                   help="step limit of an evaluation episode (default: the dataset's EnvSpec horizon, which is "
                   "400 for datasets recorded without one)")
    g.add_argument("--eval-seed", type=int, default=None, help="seed of evaluation episode 0; episode i uses seed+i")
    g.add_argument("--save-video", action="store_true", help="write eval_step_<N>.mp4 for each evaluation")
    g.add_argument("--video-dir", default=None, help="where videos go (default: <run dir>/videos)")
    g.add_argument("--video-episodes", type=int, default=4, help="episodes tiled into each video")

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
    return p


def load_config_file(path: str | Path, parser: argparse.ArgumentParser) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--config {path} does not exist.")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as err:
        raise UserError(f"--config {path} is not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {err}") from err
    if not isinstance(data, dict):
        raise UserError(f"--config {path} must hold a mapping of flag names to values.")
    known = {a.dest for a in parser._actions}
    values = {}
    for key, value in data.items():
        dest = key.lstrip("-").replace("-", "_")
        if dest.startswith("_") or dest in _NOT_FROM_CONFIG:
            continue
        if dest not in known:
            raise UserError(f"--config {path} sets '{key}', which is not a train_policy flag (see --help).")
        if dest == "repo_ids" and isinstance(value, list):
            value = ",".join(value)
        values[dest] = value
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = args.config
    if config is None and args.resume:
        # A resumed run trains with the flags it started with; the command line may override.
        config = Path(args.resume).parent / CONFIG_FILENAME
        if not config.is_file():
            raise UserError(f"--resume {args.resume} is not inside a sir run folder (no {config}).")
    if config:
        parser.set_defaults(**load_config_file(config, parser))
        args = parser.parse_args(argv)
    if args.list_policies:
        return args
    if not args.repo_ids:
        parser.error("--repo-ids is required (comma-separated dataset names)")
    for name in ("batch_size", "training_steps", "eval_episodes", "max_steps", "save_freq", "log_freq",
                 "grad_accum_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.eval_freq < 0:
        parser.error("--eval-freq must be 0 or more")
    if args.steps_per_stage is not None and not args.sequential:
        parser.error("--steps-per-stage only applies with --sequential")
    if args.sequential and args.resume:
        parser.error("--resume continues one run; resume a --sequential stage by running it alone")
    if args.lora_rank is not None and args.lora_rank < 1:
        parser.error("--lora-rank must be at least 1")
    return args


def config_to_save(args: argparse.Namespace, **resolved: Any) -> dict[str, Any]:
    """The run's flags (loadable again with --config) plus resolved values under '_resolved'."""
    flags = {k: v for k, v in vars(args).items() if k not in _NOT_FROM_CONFIG}
    return {**flags, "_resolved": resolved}
