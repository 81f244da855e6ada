"""What the trainer prints before its loop: the run's setup, the model and the data, in the
order they are built (a batch job's log reads the same as a terminal)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sir.training.schedule import describe

RULE = "=" * 60
Say = Callable[[str], Any]


def setup(say: Say, config: Any, start: Any, device: str, processes: int, background: bool,
          eval_workers: int | None, leftovers: str | None) -> None:
    say(RULE)
    say(f"Training {start.policy.upper()} Policy with LeRobot (sir)")
    say(RULE)
    if leftovers:
        say(leftovers)
    say(f"Policy: {start.policy} (preset {config.preset})" + (f", starting from {start.path}" if start.path else ""))
    say(f"Datasets: {', '.join(config.repo_ids)}")
    say(f"Root: {config.root or 'Hugging Face cache'}")
    say(f"Device: {device}" + (f" x {processes} processes" if processes > 1 else ""))
    say(f"Batch size: {config.batch_size} (effective {effective_batch(config, processes)}: "
        f"x{config.grad_accum_steps} accumulation x{processes} processes)")
    if not config.no_eval:
        where = f"Ray cluster at {config.ray_address}" if config.eval_backend == "ray" else "local workers"
        say(f"Evaluation: {'beside training (--async-eval)' if background else 'training waits (--no-async-eval)'}, "
            f"{where}" + (f" x{eval_workers}" if eval_workers else ""))


def effective_batch(config: Any, processes: int) -> int:
    return config.batch_size * config.grad_accum_steps * processes


def model(say: Say, config: Any, policy_name: str, built: Any) -> None:
    """The features, the policy's size and shape, its learning rate and schedule."""
    say("\nInput features:")
    for key, ft in built.input_features.items():
        say(f"  {key}: shape={tuple(ft.shape)}")
    say("Output features:")
    for key, ft in built.output_features.items():
        say(f"  {key}: shape={tuple(ft.shape)}")
    n_params = sum(p.numel() for p in built.policy.parameters())
    say(f"\n{policy_name.upper()} policy created")
    say(f"  Parameters: {n_params:,}" + (f" ({built.trainable:,} trainable)" if built.trainable != n_params else ""))
    for name in ("chunk_size", "horizon", "n_obs_steps", "n_action_steps"):
        if hasattr(built.config, name):
            say(f"  {name}: {getattr(built.config, name)}")
    say(f"  Learning rate: {built.optimizer.param_groups[0]['lr']:g}, schedule {describe(built.scheduler_config)}")
    if config.ema_decay is not None:
        say(f"  Weight average: decay up to {config.ema_decay:g} (power {config.ema_power:g}); evaluated and saved")


def finished(say: Say, seconds: float, best: tuple[float, float] | None) -> None:
    say(RULE)
    say(f"Training finished in {seconds:.0f} s.")
    if best is not None:
        say(f"Best success rate during training: {100 * best[0]:.1f}%")


def data(say: Say, mixture: Any, held_out: Any = None) -> None:
    say("\nDatasets:")
    for info in mixture.infos:
        say(f"  {info.repo_id}: {len(info.used_episodes)} episodes (of {info.total_episodes} total), "
            f"{info.frames} frames")
    say(f"  Total frames: {mixture.num_frames}")
    if held_out is not None:
        episodes = ", ".join(f"{i.repo_id} {i.used_episodes[0]}-{i.used_episodes[-1]}" for i in held_out.infos)
        say(f"  Held out for the validation loss: episodes {episodes} ({held_out.num_frames} frames)")
