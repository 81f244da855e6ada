"""Scripted experts, one module per task, behind the common ``Expert`` interface."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sir.errors import UserError
from sir.experts.base import Expert, ExpertNoise
from sir.experts.lift import LiftExpert

EXPERTS: dict[str, Callable[..., Expert]] = {
    "Lift": LiftExpert,
}


def make_expert(env_name: str, noise: ExpertNoise | None = None, seed: int | None = None) -> Expert:
    if env_name not in EXPERTS:
        raise UserError(
            f"sir has no scripted expert for '{env_name}'; experts exist for {', '.join(EXPERTS)}."
        )
    return EXPERTS[env_name](noise=noise, rng=np.random.default_rng(seed))


__all__ = ["EXPERTS", "Expert", "ExpertNoise", "make_expert"]
