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

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sir.data import make_dataloader, make_split_mixtures
from sir.data.mixture.sampling import BatchStream
from sir.envs.layout import spec_for_data
from sir.envs.spec import EnvSpec
from sir.errors import UserError
from sir.eval.rollout import DEFAULT_EVAL_SEED
from sir.hub import check_push
from sir.runtime import pick_device, quiet_libraries, seed_everything
from sir.training import banner
from sir.training.checkpointing import Checkpointer
from sir.training.config import TrainConfig, check, config_to_save, evaluation_due
from sir.training.ema import WeightAverage
from sir.training.evaluation import Evaluations, in_background
from sir.training.model import StartingPoint, make_model
from sir.training.publish import publish
from sir.training.run_folder import RunFolder
from sir.training.selection import RUN_STATE_KEY, BestModelChoice
from sir.training.state import data_position, load_training_state
from sir.training.step import update
from sir.training.tracking import RunLogger, TrainingProgress
from sir.training.validation import ValidationLoss


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
    # The mean success of the last --last-k evaluations (k, steps, success_mean, ci95); None without any.
    last_k: dict[str, Any] | None = None
    datasets: list[dict[str, Any]] = field(default_factory=list)  # repo_id, root, episodes used, frames, revision

    @classmethod
    def of(cls, run: RunFolder, spec: EnvSpec, evals: Any, chosen: Any, datasets: list[dict[str, Any]]) -> RunResult:
        """The result of a run whose evaluations are ``evals`` and whose best_model is ``chosen``
        (sir.training.selection.Chosen, None without one)."""
        # Chosen among the candidates: the best model's own record says which, and how well.
        best_step, best_metrics = (chosen.step, chosen.metrics) if chosen else evals.best_eval or (None, None)
        return cls(run_dir=run.path, final_model=run.final_model, env_spec=spec,
                   best_model=run.best_model if evals.has_best else None, best_step=best_step,
                   best_metrics=best_metrics, selection=chosen.selection if chosen else None,
                   last_metrics=evals.last, datasets=datasets, last_k=run.last_k(evals.last_k))

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

    # ---- setup -----------------------------------------------------------------------
    device = pick_device(config.device)
    accelerator = make_accelerator(device, config.amp)
    main_process, processes = accelerator.is_main_process, accelerator.num_processes
    say = print if main_process else _silent
    seed_everything(config.seed + accelerator.process_index)
    start = StartingPoint.of(config)
    resume = start.path if start.resume else None
    run = RunFolder(resume.parent if resume is not None else
                    Path(config.checkpoint_dir) / (config.run_name or run_name_for(start.policy, config.repo_ids)))
    leftovers = run.prepare(resume is not None, config.overwrite) if main_process else None
    eval_seed = DEFAULT_EVAL_SEED if config.eval_seed is None else config.eval_seed
    background, eval_workers = in_background(config, device, check_cluster=main_process)
    banner.setup(say, config, start, device, processes, background, eval_workers, leftovers)

    # ---- data ------------------------------------------------------------------------
    say("\nFiltering datasets...")
    mixture, held_out = make_split_mixtures(config, config.val_episodes or 0, verbose=main_process)
    first = mixture.infos[0]
    spec, line = spec_for_data(next((s for s in mixture.env_specs if s is not None), None), first.repo_id,
                               first.root, mixture.features, config.env, config.robot, config.state_keys,
                               config.env_state_keys, check_fits=not config.no_eval and main_process)
    if line:
        say(line)
    say(f"Environment: {spec.env_name} ({', '.join(spec.robots)}), {mixture.fps} fps")

    # ---- policy ----------------------------------------------------------------------
    built = make_model(config, mixture, start, device, say, held_out)
    start_step, run_state = load_training_state(resume, built.optimizer, built.scheduler) if resume else (0, {})
    # The average evaluation and model folders use (--ema-decay); the main process keeps it.
    ema = WeightAverage.for_run(built.policy, config.ema_decay, config.ema_power, run_state, resume, say) \
        if config.ema_decay is not None and main_process else None
    banner.model(say, config, start.policy, built)
    banner.data(say, mixture, held_out)
    frames = mixture.cache_frames(config.frame_cache_gb, config.frame_cache_dir)  # decoded once, not per sample
    if frames.episodes:
        say(frames.line())
    loader = make_dataloader(mixture, config.batch_size, num_workers=config.num_workers,
                             pin_memory=device.startswith("cuda"), seed=config.seed)
    policy, optimizer, loader = accelerator.prepare(built.policy, built.optimizer, loader)
    model = accelerator.unwrap_model(policy)
    position = data_position(run_state, config.batch_size, processes, config.seed, say) if resume else (0, 0)
    batches = BatchStream(loader, *position)
    datasets = dataset_records(mixture)

    # ---- run folder, checkpoints and the evaluation hook (main process) ----------------
    logger = checkpointer = choice = None
    if main_process:
        saved = run.write_config(config_to_save(config, device=device, eval_seed=eval_seed, env_spec=spec.to_dict(),
                                                effective_batch_size=banner.effective_batch(config, processes),
                                                datasets=datasets))
        logger = RunLogger.for_run(run, saved, config, run_state.get("wandb_run_id"), start_step if resume else None)
        say(f"\nCheckpoints will be saved to: {run.path}")
        checkpointer = Checkpointer(
            run, model, built, spec, {"policy": start.policy, "preset": config.preset, "datasets": datasets,
                                      "train_config": str(run.config_file)}, ema, batches,
            {"batch_size": config.batch_size, "processes": processes, "seed": config.seed}, logger.run_id)
        if not config.no_eval:
            choice = BestModelChoice.for_run(config, run.path, eval_seed, run_state.get(RUN_STATE_KEY), device,
                                             eval_workers)
    progress = TrainingProgress(start_step, config.training_steps, enabled=main_process)
    validation = ValidationLoss(held_out, config.batch_size) if held_out is not None and main_process else None
    evals = Evaluations.for_run(config, run, eval_seed, device, eval_workers, logger, checkpointer, progress.write,
                                choice, validation)
    if main_process:
        for line in evals.start(background, run_state, start_step if resume else None):
            say(line)
    say("\nStarting training..." if resume is None else f"\nResuming training at step {start_step}...")
    say(banner.RULE)

    # ---- loop ------------------------------------------------------------------------
    policy.train()
    began, finished = time.perf_counter(), False
    try:
        for step in range(start_step + 1, config.training_steps + 1):
            loss, grad_norm, output = update(policy, built.preprocessor, batches, optimizer, accelerator,
                                             config.grad_accum_steps, built.grad_clip, built.scheduler)
            if ema is not None:
                ema.update(model)
            if not main_process:
                continue
            log_now = step % config.log_freq == 0 or step == start_step + 1
            lr = optimizer.param_groups[0]["lr"]
            progress.step(step, loss, lr, grad_norm, log_now)
            if log_now:
                evals.losses.append((step, loss))
                logger.log_training(step, loss, grad_norm, lr, output, time.perf_counter() - began,
                                    resumed_at=start_step if step == start_step + 1 else None)
            evals.collect(step)  # the background evaluations done by now
            if evals.active and evaluation_due(config, step):
                evals.evaluate(step)
            if step % config.save_freq == 0:
                checkpointer.save_resumable(step, evals.last, evals.run_state())
        progress.close()
        if main_process:
            evals.collect(config.training_steps, wait=True)
        finished = True
    finally:
        evals.close(finished)
    accelerator.wait_for_everyone()

    # ---- the final model, the choice of best_model -------------------------------------
    chosen = None
    if main_process:
        checkpointer.save_model(run.final_model, config.training_steps, evals.last, last_k=run.last_k(config.last_k))
        logger.finish()
        banner.finished(say, time.perf_counter() - began, evals.best)
        chosen = evals.choose_best_model(say)
        say(f"Final model: {run.final_model}")
        if config.push_to_hub:
            say(publish(run, evals.has_best, config.push_to_hub, model, config.repo_ids))
    accelerator.end_training()
    return RunResult.of(run, spec, evals, chosen, datasets)


def dataset_records(mixture: Any) -> list[dict[str, Any]]:
    """What each dataset gave the run (repo_id, root, the episodes used, frames, revision):
    kept in train_config.json, every model record and the RunResult."""
    return [{"repo_id": i.repo_id, "root": str(i.root), "episodes": [int(e) for e in i.used_episodes],
             "total_episodes": i.total_episodes, "frames": i.frames, "revision": getattr(i, "revision", None)}
            for i in mixture.infos]


def _silent(*args: Any, **kwargs: Any) -> None:
    """``print`` on processes other than the main one."""
