"""The interface every scripted expert (and every DAgger corrector) follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class Expert(Protocol):
    """Drives one episode: ``reset(env)`` at its start, then ``act(obs)`` every step."""

    done: bool

    def reset(self, env: Any) -> None: ...

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


@dataclass
class ExpertNoise:
    """Diversity for recorded demos.

    ``action_std``: Gaussian noise on the arm's commanded deltas (in action units, [-1, 1]).
    ``target_jitter``: metres of uniform jitter on every waypoint, drawn once per episode.
    """

    action_std: float = 0.0
    target_jitter: float = 0.0


def move_towards(current: np.ndarray, target: np.ndarray, gain: float, max_step: float = 1.0) -> np.ndarray:
    """A proportional OSC delta command towards ``target``, clipped to the controller's range."""
    return np.clip(gain * (np.asarray(target) - np.asarray(current)), -max_step, max_step)
