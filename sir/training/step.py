"""One optimizer update, shared by the trainer and its tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


def update(
    policy: Any,
    preprocessor: Any,
    batches: Iterator[dict[str, Any]],
    optimizer: Any,
    accelerator: Any,
    accum_steps: int = 1,
    grad_clip: float | None = None,
    scheduler: Any = None,
) -> tuple[float, float, dict[str, Any]]:
    """Forward/backward ``accum_steps`` micro-batches, then one optimizer step.

    Each micro-batch loss is scaled by 1/K, so with equal micro-batches the update equals
    one step on a K-times larger batch. Gradients are synchronised across processes only
    on the last micro-batch. Returns (mean loss, gradient norm, last forward's outputs).
    """
    total = 0.0
    output: dict[str, Any] = {}
    for micro in range(accum_steps):
        batch = preprocessor(next(batches))
        sync = micro == accum_steps - 1
        with (contextlib.nullcontext() if sync else accelerator.no_sync(policy)), accelerator.autocast():
            loss, output = policy.forward(batch)
        accelerator.backward(loss / accum_steps)
        total += loss.item()
    grad_norm = accelerator.clip_grad_norm_(policy.parameters(), grad_clip or float("inf"))
    optimizer.step()
    model = accelerator.unwrap_model(policy)
    if callable(getattr(model, "update", None)):
        model.update()  # TD-MPC's EMA target network follows every step, as in lerobot's trainer
    optimizer.zero_grad(set_to_none=True)
    if scheduler is not None:
        scheduler.step()
    return total / accum_steps, float(grad_norm), output or {}
