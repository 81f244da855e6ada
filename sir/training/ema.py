"""``--ema-decay``: an exponential moving average of the weights, evaluated and saved in
place of the weights being trained, as Diffusion Policy evaluates its EMA model.

Diffusion Policy (Chi et al. 2023; real-stanford/diffusion_policy) keeps a deep copy of the
policy (``ema_model``), steps it after every optimizer step
(``workspace/train_diffusion_unet_lowdim_workspace.py``: ``ema.step(self.model)``), runs its
rollouts and keeps its top-k checkpoints with that copy. Its ``EMAModel``
(``model/diffusion/ema_model.py``) warms the decay up from 0:
``decay = 1 - (1 + step / inv_gamma) ** -power``, 0 for the first two updates, clamped to
``[min_value, max_value]``; trainable parameters are averaged, BatchNorm and frozen
parameters copied. Its low-dim configs (``config/train_diffusion_unet_lowdim_workspace.yaml``,
``ema:``) use ``inv_gamma: 1.0``, ``power: 0.75``, ``min_value: 0.0``, ``max_value: 0.9999``;
``--ema-decay`` is ``max_value`` and ``--ema-power`` is ``power``, the rest are theirs.

One difference, on purpose: buffers (BatchNorm running statistics and the like) are copied
from the trained model at every update. Diffusion Policy's EMAModel leaves the copy's
buffers as they were at the start, which its networks (GroupNorm, normalizer held as
parameters) never notice; lerobot's policies may hold buffers that training moves.

Why not ``torch.optim.swa_utils.AveragedModel``: it wraps the model (its state dict's keys
gain ``module.`` and an ``n_averaged`` counter), so the copy no longer saves as the lerobot
policy it is, and it averages frozen weights and buffers with the same rule as trained ones
(integer buffers included). The average here is the policy itself, ``save_pretrained`` and all.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch.nn.modules.batchnorm import _BatchNorm

EMA_STATE_FILENAME = "sir_ema.safetensors"  # in training_state/: the average, for --resume
DEFAULT_POWER = 0.75  # Diffusion Policy's low-dim configs' ema.power
INV_GAMMA = 1.0  # theirs, ema.inv_gamma


def ema_decay(updates: int, max_decay: float, power: float = DEFAULT_POWER) -> float:
    """The decay of the update after ``updates`` earlier ones: Diffusion Policy's
    ``EMAModel.get_decay(optimization_step)`` with update_after_step 0 and min_value 0."""
    step = max(0, updates - 1)
    if step <= 0:
        return 0.0
    return max(0.0, min(1 - (1 + step / INV_GAMMA) ** -power, max_decay))


class WeightAverage:
    """The averaged copy of a model (``.model``), updated with ``update(model)`` after each
    optimizer step; ``updates`` counts those steps (the warm-up's clock)."""

    def __init__(self, model: torch.nn.Module, max_decay: float, power: float = DEFAULT_POWER, updates: int = 0):
        self.model = copy.deepcopy(model)
        self.model.eval()
        self.model.requires_grad_(False)
        self.max_decay, self.power, self.updates = max_decay, power, updates
        self._paired: tuple[torch.nn.Module, tuple[list, list, list, list]] | None = None

    def _pairs(self, model: torch.nn.Module) -> tuple[list, list, list, list]:
        """(averaged, their live tensors, copied, their live tensors), found once per model:
        module by module, immediate parameters only, as Diffusion Policy's EMAModel.step walks
        them, so a frozen or BatchNorm parameter is recognised by its own module."""
        if self._paired is None or self._paired[0] is not model:
            avg, live, copy_to, copy_from = [], [], [], []
            for module, averaged in zip(model.modules(), self.model.modules(), strict=True):
                for p, a in zip(module.parameters(recurse=False), averaged.parameters(recurse=False), strict=True):
                    if isinstance(module, _BatchNorm) or not p.requires_grad:
                        copy_to.append(a), copy_from.append(p)
                    else:
                        avg.append(a), live.append(p)
            for b, a in zip(model.buffers(), self.model.buffers(), strict=True):
                copy_to.append(a), copy_from.append(b)
            self._paired = (model, (avg, live, copy_to, copy_from))
        return self._paired[1]

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> float:
        """Fold ``model``'s weights in: avg = decay * avg + (1 - decay) * weight; returns the decay."""
        decay = ema_decay(self.updates, self.max_decay, self.power)
        avg, live, copy_to, copy_from = self._pairs(model)
        if avg:  # one call over all tensors: the per-tensor loop cost more than the maths
            torch._foreach_mul_(avg, decay)
            torch._foreach_add_(avg, [p.detach() for p in live], alpha=1 - decay)
        for a, p in zip(copy_to, copy_from, strict=True):
            a.copy_(p.detach())
        self.updates += 1
        return decay

    @classmethod
    def for_run(cls, model: torch.nn.Module, max_decay: float, power: float, run_state: dict[str, Any],
                resume: Path | None, say: Any = print) -> WeightAverage:
        """A run's average: a resumed run's own (its checkpoint's training_state/), or a copy of the weights."""
        from sir.training.state import TRAINING_STATE_DIR

        average = cls(model, max_decay, power, int((run_state.get("ema") or {}).get("updates", 0)))
        if resume is not None and not average.load(resume / TRAINING_STATE_DIR):
            average.updates = 0
            say(f"note: {resume} holds no weight average (trained without --ema-decay); it starts from its weights.")
        return average

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_model

        save_model(self.model, str(Path(folder) / EMA_STATE_FILENAME))

    def load(self, folder: Path) -> bool:
        """The average saved in ``folder`` (a training_state/), when there is one."""
        from safetensors.torch import load_model

        path = Path(folder) / EMA_STATE_FILENAME
        if not path.is_file():
            return False
        load_model(self.model, str(path))
        return True

    def record(self) -> dict[str, Any]:
        """What the run state and a model folder's sir_checkpoint.json say of the average."""
        return {"max_decay": self.max_decay, "power": self.power, "updates": self.updates,
                "decay": ema_decay(max(self.updates - 1, 0), self.max_decay, self.power)}
