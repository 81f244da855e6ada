"""Scripted experts, one module per task, behind the common ``Expert`` interface."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sir.errors import UserError
from sir.experts.base import RECORDING_NOISE, Expert, ExpertNoise
from sir.experts.lift import LiftExpert
from sir.experts.pick_place_can import PickPlaceCanExpert
from sir.experts.square import SquareExpert
from sir.experts.stack import StackExpert

EXPERTS: dict[str, Callable[..., Expert]] = {
    "Lift": LiftExpert,
    "PickPlaceCan": PickPlaceCanExpert,
    "NutAssemblySquare": SquareExpert,
    "Stack": StackExpert,
}


def make_expert(env_name: str, noise: ExpertNoise | None = None, seed: int | None = None) -> Expert:
    if env_name not in EXPERTS:
        raise UserError(
            f"sir has no scripted expert for '{env_name}'; experts exist for {', '.join(EXPERTS)}."
        )
    return EXPERTS[env_name](noise=noise, rng=np.random.default_rng(seed))


__all__ = ["EXPERTS", "RECORDING_NOISE", "Expert", "ExpertNoise", "make_expert"]
