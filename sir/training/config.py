"""``TrainConfig``: every trainer setting, with its default and help, in one dataclass.

The command line, ``--config`` YAML/JSON files and a run's saved ``train_config.json`` all
map to it here: a field is the long flag of the same name (``training_steps`` is
``--training-steps``), and a config file naming anything else is refused by name.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sir.config import add_arguments, flag, from_mapping, from_namespace, option, validate
from sir.data.mixture.config import DataConfig
from sir.errors import UserError
from sir.eval.cluster import EVAL_BACKENDS
from sir.policies.registry import PRESETS
from sir.training.run_folder import CONFIG_FILENAME
from sir.training.schedule import SCHEDULES, decay_steps, warmup_steps
from sir.training.selection import SELECT_SEED, check_selection_seeds

# Settings that describe how a run was launched rather than what it trains: a config file
# never sets them, so `--config <run>/train_config.json` starts a fresh, equal run.
LAUNCH_ONLY = {"resume", "overwrite"}

POLICY, ENV, TRAIN, LORA, EVAL, SYSTEM, LOG = (
    "policy", "env (datasets without an EnvSpec)", "training", "LoRA (peft)", "evaluation", "system", "logging")


@dataclass
class TrainConfig(DataConfig):
    """One training run (the dataset settings come from ``DataConfig``)."""

    # policy
    policy: str | None = option(None, "policy type (see --list-policies); default act, or the type of --policy-path",
                                group=POLICY)
    preset: str = option("default", "model size: tiny (tests), cpu (trains on 2 cores in minutes), default "
                         "(lerobot's sizes)", group=POLICY, choices=PRESETS)
    action_chunk_size: int | None = option(None, "action chunk / horizon (default: the policy's)", group=POLICY,
                                           minimum=1)
    n_obs_steps: int | None = option(None, "observation steps (default: the policy's)", group=POLICY, minimum=1)
    n_action_steps: int | None = option(None, "actions executed per chunk (default: the policy's)", group=POLICY,
                                        minimum=1)
    policy_path: str | None = option(None, "fine-tune from a saved sir or lerobot model folder (weights, config, "
                                     "processors)", group=POLICY)
    pretrained_path: str | None = option(None, "local folder of a pretrained backbone model (pi0, smolvla, ...) "
                                         "instead of the hub", group=POLICY)
    policy_args: str | None = option(None, "settings of lerobot's config for the policy over the preset, "
                                     "space-separated name=value, e.g. \"dim_model=256 temporal_ensemble_coeff=0.01\"",
                                     group=POLICY)
    # --policy-args as check() parsed it (name -> value): derived, never saved or given.
    policy_overrides: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False, metadata={"cli": False})
    # env
    env: str | None = option(None, "Robosuite env, only for datasets recorded without an EnvSpec (default: Lift)",
                             group=ENV)
    robot: str | None = option(None, "robot, only for datasets recorded without an EnvSpec (default: Panda)", group=ENV)
    state_keys: list[str] | None = option(None, "robosuite observation keys concatenated into observation.state, only "
                                          "for datasets recorded without an EnvSpec (default: the env's layout)",
                                          group=ENV)
    env_state_keys: list[str] | None = option(None, "observation keys concatenated into "
                                              "observation.environment_state, likewise", group=ENV)
    # training
    batch_size: int = option(16, group=TRAIN, minimum=1)
    lr: float | None = option(None, "learning rate (default: the policy preset's)", group=TRAIN, positive=True)
    training_steps: int = option(10000, "optimizer steps", group=TRAIN, minimum=1)
    grad_accum_steps: int = option(1, "micro-batches per optimizer step; the effective batch is batch-size x this",
                                   group=TRAIN, minimum=1)
    grad_clip_norm: float | None = option(None, "gradient clipping (default: the policy's optimizer preset)",
                                          group=TRAIN, positive=True)
    lr_schedule: str = option("preset", "learning-rate schedule: preset (the policy's own: constant for ACT, "
                              "diffusers' cosine for Diffusion), constant, or cosine (lerobot's "
                              "CosineDecayWithWarmupSchedulerConfig: linear warm-up, then a cosine to --lr-final)",
                              group=TRAIN, choices=SCHEDULES)
    lr_warmup_steps: int | None = option(None, "warm-up steps of --lr-schedule cosine (default: 500, Diffusion "
                                         "Policy's, or a tenth of the decay steps when fewer)", group=TRAIN, minimum=0)
    lr_decay_steps: int | None = option(None, "step at which --lr-schedule cosine reaches --lr-final (default: "
                                        "--training-steps)", group=TRAIN, minimum=1)
    lr_final: float | None = option(None, "learning rate --lr-schedule cosine decays to (default: 0)", group=TRAIN,
                                    minimum=0)
    ema_decay: float | None = option(None, "keep an exponential moving average of the weights with this largest "
                                     "decay (Diffusion Policy: 0.9999) and evaluate and save it instead of the "
                                     "trained weights (checkpoint_<step> keeps both); default: off", group=TRAIN,
                                     positive=True)
    ema_power: float = option(0.75, "warm-up of the average's decay, 1 - (1 + step) ** -power, as Diffusion "
                              "Policy's low-dim configs warm it", group=TRAIN, positive=True)
    log_freq: int = option(50, "log the loss every N steps", group=TRAIN, minimum=1)
    amp: bool = option(False, "mixed precision (bf16/fp16) on CUDA", group=TRAIN)
    resume: str | None = option(None, "continue a run from one of its checkpoint_<step> folders", group=TRAIN)
    sequential: bool = option(False, "train one stage per dataset in --repo-ids order, each from the previous "
                              "stage's final model", group=TRAIN)
    steps_per_stage: int | None = option(None, "training steps of each --sequential stage", group=TRAIN, minimum=1)
    # LoRA
    lora_rank: int | None = option(None, "train LoRA adapters of this rank instead of all weights", group=LORA,
                                   minimum=1)
    lora_alpha: int | None = option(None, "LoRA alpha (default: 2 x rank)", group=LORA, minimum=1)
    lora_dropout: float = option(0.0, group=LORA, minimum=0)
    # evaluation
    eval_freq: int = option(1000, "evaluate every N steps (0: only at the end)", group=EVAL, minimum=0)
    eval_start: int = option(0, "evaluate every --eval-freq steps only from this step on (the last step always): "
                             "e.g. the last 3 checkpoints of a run for --last-k 3, without the earlier ones' cost",
                             group=EVAL, minimum=0)
    no_eval: bool = option(False, "train without Robosuite evaluation (no best_model), e.g. on data from a robot "
                           "or layout sir cannot simulate", group=EVAL)
    eval_episodes: int = option(10, group=EVAL, minimum=1)
    eval_workers: int | None = option(None, "rollout worker processes (default: one per core; with --async-eval the "
                                      "cores training leaves spare; with --eval-backend ray the cluster's CPUs)",
                                      group=EVAL, minimum=1)
    async_eval: bool | None = option(
        None, "evaluate in a process beside training, on a snapshot of the weights and processors, so training does "
        "not wait (same results; the best snapshot becomes best_model). Default: on where the machine has cores to "
        "spare, i.e. more than training uses (torch's threads on CPU, one with a GPU, plus --num-workers); "
        "--no-async-eval waits for every evaluation", group=EVAL)
    eval_backend: str = option("local", "where evaluation envs run: local worker processes, or Ray actors on a "
                               "running Ray cluster (see --ray-address)", group=EVAL, choices=EVAL_BACKENDS)
    ray_address: str = option("auto", "the Ray cluster of --eval-backend ray: auto (RAY_ADDRESS, else the cluster "
                              "`ray start` began on this machine) or the head's HOST:PORT", group=EVAL)
    max_steps: int | None = option(None, "step limit of an evaluation episode (default: the dataset's EnvSpec "
                                   "horizon, which is 400 for datasets recorded without one)", group=EVAL, minimum=1)
    eval_seed: int | None = option(None, "seed of evaluation episode 0; episode i uses seed+i", group=EVAL)
    last_k: int = option(3, "report the mean success of the last K evaluations during training beside the best "
                         "(Diffusion Policy's fair figure: nothing chose those checkpoints), in eval_history.csv, "
                         "final_model's record and the run's result", group=EVAL, minimum=1)
    val_episodes: int | None = option(
        None, "hold the last N selected episodes of each dataset out of training and log the policy's loss on them "
        "(val/loss) at every evaluation point, with rollouts or without; with --no-eval the lowest validation loss "
        "chooses best_model", group=EVAL, minimum=1)
    select_top_k: int = option(3, "before naming best_model, evaluate the K best models of the run again on "
                               "--select-episodes other episodes and keep the best of those (0 or 1: the best "
                               "evaluation during training is best_model)", group=EVAL, minimum=0)
    select_episodes: int | None = option(None, "episodes of each of those evaluations (default: twice "
                                         "--eval-episodes)", group=EVAL, minimum=1)
    select_seed: int = option(SELECT_SEED, "seed of their episode 0, apart from --eval-seed's episodes and from "
                              "sir.results' final ones (200000 on)", group=EVAL)
    save_video: bool = option(False, "write eval_step_<N>.mp4 for each evaluation", group=EVAL)
    video_dir: str | None = option(None, "where videos go (default: <run dir>/videos)", group=EVAL)
    video_episodes: int = option(4, "episodes tiled into each video", group=EVAL, minimum=1)
    # system
    device: str | None = option(None, "cuda, mps or cpu (default: the best available)", group=SYSTEM)
    num_workers: int = option(0, "dataloader worker processes", group=SYSTEM, minimum=0)
    frame_cache_gb: float | None = option(
        None, "GB of decoded camera frames kept in memory (default: a quarter of RAM); beyond it they are "
        "cached on disk", group=SYSTEM, minimum=0)
    frame_cache_dir: str | None = option(
        None, "folder of the disk cache of decoded camera frames (default: ~/.cache/sir/frames)", group=SYSTEM)
    checkpoint_dir: str = option("checkpoints", group=SYSTEM)
    run_name: str | None = option(None, "run folder name (default: <policy>_<datasets>)", group=SYSTEM)
    save_freq: int = option(5000, "write checkpoint_<step> every N steps", group=SYSTEM, minimum=1)
    overwrite: bool = option(False, "replace an existing run folder of the same name", group=SYSTEM)
    push_to_hub: str | None = option(
        None, "when training ends, upload best_model (final_model with --no-eval) to this Hugging Face model repo, "
        "e.g. user/act_lift; refused at start when offline or not logged in", group=SYSTEM)
    # logging
    report_to: str | None = option(None, "log the curves and evaluation videos to tensorboard (<run dir>/tensorboard), "
                                   "wandb or none, besides metrics.jsonl (default: wandb with --use-wandb, else none)",
                                   group=LOG, choices=["tensorboard", "wandb", "none"])
    use_wandb: bool = option(False, "log to Weights & Biases (WANDB_MODE=offline works); the same as --report-to wandb",
                             group=LOG)
    wandb_project: str = option("sir", group=LOG)
    wandb_entity: str | None = option(None, group=LOG)
    wandb_run_name: str | None = option(None, group=LOG)


def evaluation_due(cfg: TrainConfig, step: int) -> bool:
    """Whether the run evaluates after ``step``: every --eval-freq steps from --eval-start on,
    and after the last step."""
    return step == cfg.training_steps or (bool(cfg.eval_freq) and step % cfg.eval_freq == 0 and step >= cfg.eval_start)


def last_evaluations(cfg: TrainConfig) -> frozenset[int]:
    """The steps of the run's last --last-k evaluations (those eval_history.csv's last_k_success
    and final_model's score average), which an evaluation beside training never skips."""
    if cfg.last_k <= 0:
        return frozenset()
    steps = {cfg.training_steps}
    if cfg.eval_freq:
        first = max(cfg.eval_freq, -(-cfg.eval_start // cfg.eval_freq) * cfg.eval_freq)
        steps.update(range(first, cfg.training_steps + 1, cfg.eval_freq))
    return frozenset(sorted(steps)[-cfg.last_k:])


def report_to(cfg: TrainConfig) -> str:
    """Where the run logs besides metrics.jsonl: --report-to, or wandb for --use-wandb."""
    if cfg.use_wandb and cfg.report_to not in (None, "wandb"):
        raise UserError(f"--use-wandb logs to wandb but --report-to {cfg.report_to} was given; pass one of them.")
    return cfg.report_to or ("wandb" if cfg.use_wandb else "none")


def check(cfg: TrainConfig) -> TrainConfig:
    """Refuse impossible settings before any work starts, in one sentence each."""
    validate(cfg)
    report_to(cfg)
    if not cfg.repo_ids:
        raise UserError("--repo-ids is required (comma-separated dataset names).")
    from sir.data.resolve import parse_repo_ids

    cfg = dataclasses.replace(cfg, repo_ids=parse_repo_ids(cfg.repo_ids))
    if cfg.steps_per_stage is not None and not cfg.sequential:
        raise UserError("--steps-per-stage only applies with --sequential.")
    if cfg.policy_args:
        from sir.policies.build import check_policy_args, parse_policy_args
        from sir.policies.registry import get_entry

        if cfg.policy_path:
            raise UserError("--policy-args shapes a new model; a --policy-path model keeps its saved settings.")
        policy = cfg.policy or "act"
        get_entry(policy)  # an unknown policy is refused by its own sentence first
        # Before any data is read: a value of the wrong type is refused in one sentence.
        cfg.policy_overrides = check_policy_args(policy, parse_policy_args(cfg.policy_args))
    if Path(cfg.checkpoint_dir).exists() and not Path(cfg.checkpoint_dir).is_dir():
        raise UserError(f"--checkpoint-dir {cfg.checkpoint_dir} is a file, not a folder; name a folder for the runs.")
    if cfg.lr_schedule != "cosine":
        given = [flag(n) for n in ("lr_warmup_steps", "lr_decay_steps", "lr_final") if getattr(cfg, n) is not None]
        if given:
            raise UserError(f"{', '.join(given)} shape(s) --lr-schedule cosine; add --lr-schedule cosine or drop them.")
    elif warmup_steps(cfg) >= decay_steps(cfg):
        raise UserError(f"--lr-warmup-steps {warmup_steps(cfg)} must be fewer than the decay's {decay_steps(cfg)} "
                        "steps (--lr-decay-steps, default --training-steps).")
    if cfg.ema_decay is not None and cfg.ema_decay >= 1:
        raise UserError(f"--ema-decay must be below 1 (an average that never moves), not {cfg.ema_decay}.")
    check_selection_seeds(cfg)
    if cfg.sequential and cfg.resume:
        raise UserError("--resume continues one run; resume a --sequential stage by running it alone.")
    return cfg


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sir.training.train_policy",
        description="Train a LeRobot policy by behavioural cloning on one or more LeRobot datasets, "
        "evaluating it in Robosuite every --eval-freq steps and keeping the best model by success rate. "
        "Outputs go to <checkpoint-dir>/<policy>_<datasets>/.",
    )
    p.add_argument("--config", default=None,
                   help="YAML or JSON file of settings (e.g. a run's train_config.json); "
                        "command-line flags override it")
    p.add_argument("--list-policies", action="store_true", help="print the policies, their needs and presets, and exit")
    add_arguments(p, TrainConfig)
    return p


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The settings a YAML/JSON file gives, by field name; unknown keys are refused."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--config {path} does not exist.")
    kind = "JSON" if path.suffix == ".json" else "YAML"
    try:
        if kind == "JSON":
            data = json.loads(path.read_text())
        else:
            import yaml

            data = yaml.safe_load(path.read_text()) or {}
    except Exception as err:
        raise UserError(f"--config {path} is not valid {kind}: {err}") from err
    if not isinstance(data, dict):
        raise UserError(f"--config {path} must hold a mapping of flag names to values.")
    return from_mapping(TrainConfig, data, f"--config {path}", ignore=LAUNCH_ONLY | {"config", "list_policies"})


def parse_config(argv: list[str] | None = None) -> tuple[TrainConfig, bool]:
    """(the run's config, whether --list-policies was asked) from a command line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    config = args.config
    if config is None and args.resume:
        # A resumed run trains with the settings it started with; the command line may override.
        config = Path(args.resume).parent / CONFIG_FILENAME
        if not config.is_file():
            raise UserError(f"--resume {args.resume} is not inside a sir run folder (no {config}).")
    if config:
        parser.set_defaults(**load_config_file(config))
        args = parser.parse_args(argv)
    cfg = from_namespace(TrainConfig, args)
    if args.list_policies:
        return cfg, True
    return check(cfg), False


def config_to_save(cfg: TrainConfig, **resolved: Any) -> dict[str, Any]:
    """The run's settings (loadable again with --config) plus resolved values under '_resolved'."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in LAUNCH_ONLY | {"policy_overrides"}}
    return {**settings, "_resolved": resolved}
