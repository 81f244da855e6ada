"""``--lr-schedule``: the learning-rate schedule, one of lerobot's scheduler configs.

``preset`` keeps the policy's own (``get_scheduler_preset()``: none for ACT, a constant
rate; diffusers' cosine with 500 warm-up steps for Diffusion). ``constant`` drops it.
``cosine`` is lerobot's ``CosineDecayWithWarmupSchedulerConfig`` (lerobot.optim.schedulers):
a linear warm-up over ``--lr-warmup-steps`` to the optimizer's rate, then a cosine from it
to ``--lr-final`` at ``--lr-decay-steps`` (counted from step 0, as lerobot counts them), held
there after. Diffusion Policy trains its low-dim policies with a cosine and 500 warm-up
steps (``config/train_diffusion_unet_lowdim_workspace.yaml``: ``lr_scheduler: cosine``,
``lr_warmup_steps: 500``), which is the default warm-up here when the decay is long enough.
"""

from __future__ import annotations

from typing import Any

from sir.errors import UserError

SCHEDULES = ("preset", "constant", "cosine")
DEFAULT_WARMUP_STEPS = 500  # Diffusion Policy's lr_warmup_steps


def warmup_steps(config: Any) -> int:
    """--lr-warmup-steps, or 500 (a tenth of the decay when that is shorter)."""
    if config.lr_warmup_steps is not None:
        return config.lr_warmup_steps
    return min(DEFAULT_WARMUP_STEPS, decay_steps(config) // 10)


def decay_steps(config: Any) -> int:
    return config.lr_decay_steps if config.lr_decay_steps is not None else config.training_steps


def scheduler_config(config: Any, policy_cfg: Any, peak_lr: float) -> Any:
    """The lerobot scheduler config the run trains with (None: a constant rate)."""
    if config.lr_schedule == "preset":
        return policy_cfg.get_scheduler_preset()
    if config.lr_schedule == "constant":
        return None
    from lerobot.optim.schedulers import CosineDecayWithWarmupSchedulerConfig

    final = config.lr_final or 0.0
    if final > peak_lr:
        raise UserError(f"--lr-final {final:g} is above the learning rate {peak_lr:g}; a decay ends lower.")
    # peak_lr is only read as decay_lr / peak_lr: the multiplier the cosine ends at.
    return CosineDecayWithWarmupSchedulerConfig(num_warmup_steps=warmup_steps(config),
                                                num_decay_steps=decay_steps(config),
                                                peak_lr=peak_lr, decay_lr=final)


def describe(scheduler_cfg: Any) -> str:
    if scheduler_cfg is None:
        return "constant"
    fields = {k: v for k, v in vars(scheduler_cfg).items() if v is not None}
    described = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())
    return f"{scheduler_cfg.type} ({described})"
