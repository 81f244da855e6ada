"""``train(cfg) -> RunResult``: train a LeRobot policy on LeRobot datasets, evaluating it
in Robosuite as it trains.

    from sir.training import TrainConfig, train
    result = train(TrainConfig(repo_ids=["lift_demos"], root="data", policy="act", preset="cpu"))

Reads top to bottom: setup, data, policy, loop (train step, eval hook, checkpoints). The
machinery lives in sir.data, sir.policies, sir.eval and the sir.training modules. Runs
under ``accelerate launch`` too: every process trains, only the main one evaluates, logs
and writes checkpoints.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sir import atomic
from sir.envs.spec import EnvSpec
from sir.errors import UserError, note_kept
from sir.hub import check_push
from sir.runtime import pick_device, quiet_libraries, seed_everything
from sir.training.config import CONFIG_FILENAME, TrainConfig, check, config_to_save, report_to

BANNER = "=" * 60


@dataclass
class RunResult:
    """What a training run produced."""

    run_dir: Path
    final_model: Path
    env_spec: EnvSpec
    best_model: Path | None = None  # None when the run never evaluated
    best_step: int | None = None
    best_metrics: dict[str, Any] | None = None  # the best evaluation's summary (success_rate, success_ci95, ...)
    selection: dict[str, Any] | None = None  # how best_model was chosen (sir.training.selection)
    last_metrics: dict[str, Any] | None = None
    datasets: list[dict[str, Any]] = field(default_factory=list)  # repo_id, root, episodes used, frames, revision

    @property
    def frames_per_dataset(self) -> dict[str, int]:
        return {d["repo_id"]: int(d["frames"]) for d in self.datasets}


def run_name_for(policy: str, repo_ids: list[str]) -> str:
    return f"{policy}_" + "_".join(r.replace("/", "_") for r in repo_ids)


def make_accelerator(device: str, amp: bool) -> Any:
    from accelerate import Accelerator

    if amp and not device.startswith("cuda"):
        raise UserError("--amp (mixed precision) needs a CUDA GPU; drop it on this device.")
    precision = "no"
    if amp:
        import torch

        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    # The scheduler steps once per optimizer step, whatever the number of processes.
    return Accelerator(cpu=device == "cpu", mixed_precision=precision, step_scheduler_with_optimizer=False)


def train(config: TrainConfig) -> RunResult:
    """One training run, as ``python -m sir.training.train_policy`` runs it."""
    config = check(config)
    if config.sequential:
        raise UserError("train() runs one training run; --sequential stages run through "
                        "sir.training.sequential.run_sequential(config), as train_policy does.")
    if config.push_to_hub:
        check_push(config.push_to_hub)  # before any work: offline, no token, no network
    quiet_libraries()
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.utils import dataset_to_policy_features
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    from sir.data import make_dataloader, make_mixture
    from sir.data.mixture.sampling import BatchStream
    from sir.envs.layout import check_data_fits_env, spec_without_record
    from sir.eval.rollout import DEFAULT_EVAL_SEED
    from sir.policies import build_config
    from sir.policies.checkpoint import load_checkpoint, save_checkpoint
    from sir.training import finetune
    from sir.training.ema import WeightAverage
    from sir.training.evaluation import Evaluations, in_background
    from sir.training.publish import model_to_push, push_model
    from sir.training.schedule import describe, scheduler_config
    from sir.training.selection import (
        RUN_STATE_KEY,
        BestModelChoice,
        evaluate_saved,
        select_episodes,
    )
    from sir.training.state import (
        TRAINING_STATE_DIR,
        data_position,
        data_record,
        load_training_state,
        save_training_state,
    )
    from sir.training.step import update
    from sir.training.tracking import RunLogger, TrainingProgress

    # ---- setup -----------------------------------------------------------------------
    repo_ids = config.repo_ids  # parsed by check()
    device = pick_device(config.device)
    accelerator = make_accelerator(device, config.amp)
    main_process = accelerator.is_main_process
    say = print if main_process else (lambda *a, **k: None)
    seed_everything(config.seed + accelerator.process_index)
    resume = Path(config.resume) if config.resume else None
    base_path = resume or (Path(config.policy_path) if config.policy_path else None)
    base_cfg = finetune.load_base_config(base_path, config.policy) if base_path else None
    policy_name = base_cfg.type if base_cfg is not None else (config.policy or "act")
    run_dir = resume.parent if resume is not None else (
        Path(config.checkpoint_dir) / (config.run_name or run_name_for(policy_name, repo_ids)))
    # What a killed run was writing (.<name>.tmp-PID, .old-PID) is not a run: removed first,
    # so a run killed before its first file can be restarted without --overwrite.
    leftovers = atomic.remove_leftovers(run_dir) if main_process else None
    if resume is None:
        if main_process and run_dir.exists() and any(run_dir.iterdir()):
            if not config.overwrite:
                raise UserError(f"{run_dir} already holds a run; pass --run-name to start another, "
                                f"--resume {run_dir}/checkpoint_<step> to continue it, or --overwrite to replace it.")
            shutil.rmtree(run_dir)
    eval_seed = DEFAULT_EVAL_SEED if config.eval_seed is None else config.eval_seed
    background, eval_workers = in_background(config, device)
    if not config.no_eval and config.eval_backend == "ray" and main_process:
        from sir.eval.cluster import resolve_address

        resolve_address(config.ray_address)  # before any work: no cluster, one sentence

    say(BANNER)
    say(f"Training {policy_name.upper()} Policy with LeRobot (sir)")
    say(BANNER)
    if leftovers:
        say(leftovers)
    say(f"Policy: {policy_name} (preset {config.preset})" + (f", starting from {base_path}" if base_path else ""))
    say(f"Datasets: {', '.join(repo_ids)}")
    say(f"Root: {config.root or 'Hugging Face cache'}")
    say(f"Device: {device}" + (f" x {accelerator.num_processes} processes" if accelerator.num_processes > 1 else ""))
    effective = config.batch_size * config.grad_accum_steps * accelerator.num_processes
    say(f"Batch size: {config.batch_size} (effective {effective}: x{config.grad_accum_steps} accumulation"
        f" x{accelerator.num_processes} processes)")
    if not config.no_eval:
        where = f"Ray cluster at {config.ray_address}" if config.eval_backend == "ray" else "local workers"
        say(f"Evaluation: {'beside training (--async-eval)' if background else 'training waits (--no-async-eval)'}, "
            f"{where}" + (f" x{eval_workers}" if eval_workers else ""))

    # ---- data ------------------------------------------------------------------------
    say("\nFiltering datasets...")
    mixture = make_mixture(config, verbose=main_process)
    spec = next((s for s in mixture.env_specs if s is not None), None)
    recorded, rebuilt = spec is not None, False
    if recorded:
        for flag, asked, has in (("--env", config.env, spec.env_name), ("--robot", config.robot, spec.robots[0]),
                                 ("--state-keys", config.state_keys, list(spec.state_keys)),
                                 ("--env-state-keys", config.env_state_keys, list(spec.env_state_keys))):
            if asked is not None and asked != has:
                has, asked = (",".join(v) if isinstance(v, list) else v for v in (has, asked))
                raise UserError(f"The data records {has} in its EnvSpec but {flag} {asked} was given; drop {flag} "
                                "(it only fills in for datasets recorded without an EnvSpec).")
    else:  # rebuilt from the metadata when an editing tool dropped it, or from --env/--robot
        spec, line, rebuilt = spec_without_record(mixture.infos[0].repo_id, mixture.infos[0].root, mixture.features,
                                                  config.env, config.robot, config.state_keys, config.env_state_keys)
        say(line)
    say(f"Environment: {spec.env_name} ({', '.join(spec.robots)}), {mixture.fps} fps")
    if not config.no_eval and main_process:
        # Before any training: the evaluation must be able to feed the model what the data holds.
        check_data_fits_env(spec, mixture.features, recorded, mixture.infos[0].repo_id if rebuilt else None)

    features = dataset_to_policy_features(mixture.features)
    output_features = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    input_features = {k: f for k, f in features.items() if k not in output_features}
    say("\nInput features:")
    for key, ft in input_features.items():
        say(f"  {key}: shape={tuple(ft.shape)}")
    say("Output features:")
    for key, ft in output_features.items():
        say(f"  {key}: shape={tuple(ft.shape)}")

    # ---- policy ----------------------------------------------------------------------
    if base_cfg is None:
        policy_cfg = build_config(
            policy_name, config.preset, input_features, output_features, device,
            chunk_size=config.action_chunk_size, n_obs_steps=config.n_obs_steps,
            n_action_steps=config.n_action_steps, lr=config.lr, pretrained_path=config.pretrained_path,
            dataset_features=mixture.features, policy_args=config.policy_overrides,
        )
        stats = mixture.stats
    else:
        # Fine-tuning or resuming: the saved model decides the architecture; its stats are
        # pooled with the new data's so the old task keeps its normalization.
        policy_cfg = base_cfg
        finetune.check_features_match(policy_cfg, features, base_path)
        policy_cfg.device = device
        policy_cfg.pretrained_path = str(base_path)
        if config.lr is not None:
            policy_cfg.optimizer_lr = config.lr
        stats = None if resume is not None else finetune.merge_stats(finetune.saved_stats(base_path), mixture.stats)
    mixture.fit_policy(policy_cfg)
    if mixture.dagger_mode == "sirius" and getattr(policy_cfg, "do_mask_loss_for_padding", True) is False:
        # Sirius's pre-intervention actions reach the loss as padding (sir.data.mixture.build);
        # Diffusion skips padding only when asked to.
        policy_cfg.do_mask_loss_for_padding = True
        say("--dagger-mode sirius: do_mask_loss_for_padding set, so pre-intervention actions in a chunk are not trained on")
    policy = make_policy(policy_cfg, ds_meta=mixture)
    if resume is not None:
        _, preprocessor, postprocessor, _, _ = load_checkpoint(resume, device=device)
    else:
        preprocessor, postprocessor = make_pre_post_processors(policy_cfg, dataset_stats=stats)
    if config.lora_rank is not None:
        policy = finetune.wrap_with_lora(policy, config.lora_rank, config.lora_alpha, config.lora_dropout)
    optimizer_cfg = policy_cfg.get_optimizer_preset()
    params = [p for p in policy.parameters() if p.requires_grad]
    # LoRA: only the adapters train; lerobot's optim params would list frozen base weights too.
    optimizer = optimizer_cfg.build(params if config.lora_rank is not None else policy.get_optim_params())
    scheduler_cfg = scheduler_config(config, policy_cfg, optimizer.param_groups[0]["lr"])
    scheduler = scheduler_cfg.build(optimizer, config.training_steps) if scheduler_cfg else None
    grad_clip = config.grad_clip_norm if config.grad_clip_norm is not None else getattr(optimizer_cfg, "grad_clip_norm", None)
    start_step, run_state = 0, {}
    if resume is not None:
        start_step, run_state = load_training_state(resume, optimizer, scheduler)
    ema = None  # the average evaluation and model folders use (--ema-decay); the main process keeps it
    if config.ema_decay is not None and main_process:
        ema = WeightAverage(policy, config.ema_decay, config.ema_power, int((run_state.get("ema") or {}).get("updates", 0)))
        if resume is not None and not ema.load(resume / TRAINING_STATE_DIR):
            ema.updates = 0
            say(f"note: {resume} holds no weight average (trained without --ema-decay); it starts from its weights.")
    n_params = sum(p.numel() for p in policy.parameters())
    n_trainable = sum(p.numel() for p in params)
    say(f"\n{policy_name.upper()} policy created")
    say(f"  Parameters: {n_params:,}" + (f" ({n_trainable:,} trainable)" if n_trainable != n_params else ""))
    for name in ("chunk_size", "horizon", "n_obs_steps", "n_action_steps"):
        if hasattr(policy_cfg, name):
            say(f"  {name}: {getattr(policy_cfg, name)}")
    say(f"  Learning rate: {optimizer.param_groups[0]['lr']:g}, schedule {describe(scheduler_cfg)}")
    if config.ema_decay is not None:
        say(f"  Weight average: decay up to {config.ema_decay:g} (power {config.ema_power:g}); evaluated and saved")

    say("\nDatasets:")
    for info in mixture.infos:
        say(f"  {info.repo_id}: {len(info.used_episodes)} episodes (of {info.total_episodes} total), {info.frames} frames")
    say(f"  Total frames: {mixture.num_frames}")

    # Camera videos decoded once, not per sample (see sir.data.store.cache).
    frames = mixture.cache_frames(config.frame_cache_gb, config.frame_cache_dir)
    if frames.episodes:
        say(frames.line())
    loader = make_dataloader(mixture, config.batch_size, num_workers=config.num_workers,
                             pin_memory=device.startswith("cuda"), seed=config.seed)
    policy, optimizer, loader = accelerator.prepare(policy, optimizer, loader)
    model = accelerator.unwrap_model(policy)
    evaluated = ema.model if ema is not None else model
    video_dir = Path(config.video_dir) if config.video_dir else run_dir / "videos"
    data_info = [
        {"repo_id": i.repo_id, "root": str(i.root), "episodes": [int(e) for e in i.used_episodes],
         "total_episodes": i.total_episodes, "frames": i.frames, "revision": getattr(i, "revision", None)}
        for i in mixture.infos
    ]
    logger, selection = None, None
    if main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        saved = config_to_save(config, device=device, eval_seed=eval_seed, env_spec=spec.to_dict(),
                               effective_batch_size=effective, datasets=data_info)
        atomic.write_json(run_dir / CONFIG_FILENAME, saved)
        logger = RunLogger(run_dir, saved, report_to(config), config.wandb_project, config.wandb_entity,
                           config.wandb_run_name, run_id=run_state.get("wandb_run_id"),
                           resume_step=start_step if resume is not None else None)
        say(f"\nCheckpoints will be saved to: {run_dir}")

    # ---- evaluation hook (see sir.training.evaluation: beside training or waited for) -----
    choice = BestModelChoice(run_dir, config.select_top_k, select_episodes(config), config.select_seed,
                             {"episodes": config.eval_episodes, "seed": eval_seed},
                             run_state.get(RUN_STATE_KEY)) if main_process and not config.no_eval else None
    evals = Evaluations(run_dir, {"episodes": config.eval_episodes, "max_steps": config.max_steps, "seed": eval_seed,
                                  "video_episodes": config.video_episodes, "workers": eval_workers,
                                  "backend": config.eval_backend, "ray_address": config.ray_address},
                        device, logger, say, video_dir if config.save_video else None, choice=choice)
    if main_process:
        for line in evals.start(background, run_state, start_step if resume is not None else None):
            say(line)
    say("\nStarting training..." if resume is None else f"\nResuming training at step {start_step}...")
    say(BANNER)
    policy.train()
    batches = BatchStream(loader, *(data_position(run_state, config.batch_size, accelerator.num_processes,
                                                  config.seed, say) if resume is not None else (0, 0)))
    progress = TrainingProgress(start_step, config.training_steps, enabled=main_process)
    evals.write = progress.write
    model_info = {"policy": policy_name, "preset": config.preset, "datasets": data_info,
                  "train_config": str(run_dir / CONFIG_FILENAME)}

    def weights_record() -> Any:
        return "trained" if ema is None else {"average": ema.record()}

    def checkpoint(name: str, step: int, metrics: dict[str, Any] | None, with_state: bool = False) -> Path:
        # A resumable checkpoint_<step> keeps the trained weights (the average beside them in
        # training_state/); the model folders keep the evaluated ones.
        weights = model if with_state else evaluated

        def write_state(folder: Path) -> None:
            save_training_state(folder, step, optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer,
                                scheduler, {**evals.run_state(), "wandb_run_id": logger.run_id if logger else None,
                                            "data": data_record(batches.position(), config.batch_size,
                                                                accelerator.num_processes, config.seed),
                                            "ema": ema.record() if ema is not None else None,
                                            RUN_STATE_KEY: choice.state() if choice is not None else []})
            if ema is not None:
                ema.save(folder / TRAINING_STATE_DIR)

        info = {"step": step, **model_info, "metrics": metrics,
                "weights": "trained" if weights is model else weights_record()}
        saved = save_checkpoint(run_dir / name, weights, preprocessor, postprocessor, spec, info,
                                write_state if with_state else None)
        if with_state:
            evals.checkpointed()
            note_kept(f"last checkpoint {saved}")  # the line Ctrl-C prints (sir.errors.cli_errors)
        return saved

    def evaluate(step: int) -> None:
        evals.evaluate(step, evaluated, preprocessor, postprocessor, spec, checkpoint,
                       {**model_info, "weights": weights_record()})

    # ---- loop ------------------------------------------------------------------------
    start = time.perf_counter()
    finished = False
    try:
        for step in range(start_step + 1, config.training_steps + 1):
            loss, grad_norm, output = update(policy, preprocessor, batches, optimizer, accelerator,
                                             config.grad_accum_steps, grad_clip, scheduler)
            if ema is not None:
                ema.update(model)
            if not main_process:
                continue
            log_now = step % config.log_freq == 0 or step == start_step + 1
            lr = optimizer.param_groups[0]["lr"]
            progress.step(step, loss, lr, grad_norm, log_now)
            if log_now:
                evals.losses.append((step, loss))
                record = {"train/loss": loss, "train/grad_norm": grad_norm,
                          "train/lr": lr, "train/elapsed_s": time.perf_counter() - start}
                record.update({f"train/{k}": float(v) for k, v in (output or {}).items() if isinstance(v, int | float)})
                if step == start_step + 1 and start_step:
                    # A resumed process's first record: its elapsed time counts from its own start
                    # (sir.results.run_times adds the processes up from this mark).
                    record["train/resumed_at"] = start_step
                logger.log(step, record)
            evals.collect(step, checkpoint)  # the background evaluations done by now
            if not config.no_eval and ((config.eval_freq and step % config.eval_freq == 0)
                                       or step == config.training_steps):
                evaluate(step)
            if step % config.save_freq == 0:
                checkpoint(f"checkpoint_{step}", step, evals.last, with_state=True)
        progress.close()
        if main_process:
            evals.collect(config.training_steps, checkpoint, wait=True)
        finished = True
    finally:
        evals.close(finished)
    accelerator.wait_for_everyone()
    if main_process:
        final = checkpoint("final_model", config.training_steps, evals.last)
        logger.finish()
        say(BANNER)
        say(f"Training finished in {time.perf_counter() - start:.0f} s.")
        if evals.best is not None:
            say(f"Best success rate during training: {100 * evals.best[0]:.1f}%")
            selection = choice.finish(run_dir / "best_model", evals.best_eval[0] if evals.best_eval else None,
                                      lambda folder: evaluate_saved(folder, choice.episodes, choice.seed, device,
                                                                    config.max_steps, eval_workers), say)
            if selection is not None:
                say(f"Best model: {run_dir / 'best_model'} (step {selection['chosen_step']})")
        say(f"Final model: {final}")
        if config.push_to_hub:
            pushed = model_to_push(run_dir, evals.best is not None)
            say(f"Pushed {pushed} to {config.push_to_hub}: {push_model(pushed, config.push_to_hub, model, repo_ids)}")
    accelerator.end_training()
    best_step, best_metrics = evals.best_eval or (None, None)  # kept in the run state across resumes
    if selection is not None:
        # Chosen among the candidates: the best model's own record says which, and how well.
        import json

        saved = json.loads((run_dir / "best_model" / "sir_checkpoint.json").read_text())
        best_step, best_metrics = saved["step"], saved["metrics"]
    return RunResult(
        run_dir=run_dir, final_model=run_dir / "final_model", env_spec=spec,
        best_model=run_dir / "best_model" if evals.best is not None else None,
        best_step=best_step, best_metrics=best_metrics, last_metrics=evals.last, datasets=data_info,
        selection=selection,
    )
