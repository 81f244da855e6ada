"""The interface every scripted expert (and every DAgger corrector) follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class Expert(Protocol):
    """Drives one episode: ``reset(env)`` at its start, then ``act(obs)`` every step."""

    def reset(self, env: Any) -> None: ...

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray: ...


class ResumableExpert(Expert, Protocol):
    """An expert that can take over mid-episode (``sir.dagger.corrector.ScriptedCorrector``).

    ``resume()``: the next ``act`` plans from the state it sees, not the expert's last phase;
    ``resumed_phase`` is the phase it found there and ``phase`` the one it is in now.
    ``next_subgoal(level)``: the first sub-goal (a key of ``subgoals``, which names each)
    above a phase's PROGRESS ``level``; ``reached(subgoal)``: whether the expert is past it.
    ``read_phase(obs)``: the phase the state shows, without touching the expert's plan.
    ``progress``: after each ``act``, how far the task has come, as (the phase's level, a
    distance within it in metres, larger further on), for telling a stall.
    ``intended``: after each ``act``, its action without the noise (``ExpertNoise``): what
    the expert steers for, which a corrector compares a policy's proposals with.
    """

    phase: str
    resumed_phase: str | None
    subgoals: dict[int, str]
    progress: tuple[int, float]
    intended: np.ndarray

    def resume(self) -> None: ...

    def next_subgoal(self, level: int) -> int | None: ...

    def reached(self, subgoal: int) -> bool: ...

    def read_phase(self, obs: dict[str, np.ndarray]) -> str: ...


@dataclass(frozen=True)
class ExpertNoise:
    """Diversity for recorded demos.

    ``action_std``: Gaussian noise on the arm's commanded deltas (in action units, [-1, 1]).
    ``target_jitter``: metres of uniform jitter on every waypoint, drawn once per episode.
    """

    action_std: float = 0.0
    target_jitter: float = 0.0


# What sir's demos are recorded with (``sir.data.collect``'s defaults), and so what the scripted
# DAgger corrector acts with: its labels should be no cleaner than the demos they join.
RECORDING_NOISE = ExpertNoise(action_std=0.1, target_jitter=0.01)


def move_towards(current: np.ndarray, target: np.ndarray, gain: float, max_step: float = 1.0) -> np.ndarray:
    """A proportional OSC delta command towards ``target``, clipped to the controller's range."""
    return np.clip(gain * (np.asarray(target) - np.asarray(current)), -max_step, max_step)


# -- orientation ------------------------------------------------------------------------
# The BASIC controller maps a rotation command of 1.0 to 0.5 rad about a base-frame axis.
ROTATION_PER_UNIT = 0.5

# The Panda's eef frame when its gripper points straight down with its fingers closing along
# world y (robosuite's home pose): its x axis along world x, its y (finger) axis along -y.
_GRIPPER_DOWN = np.diag([1.0, -1.0, -1.0])


def quat_to_mat(quat_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrix of a robosuite quaternion (x, y, z, w)."""
    from robosuite.utils import transform_utils

    return transform_utils.quat2mat(np.asarray(quat_xyzw, dtype=float))


def yaw_of(mat: np.ndarray) -> float:
    """Heading of a frame's x axis in the horizontal plane."""
    return float(np.arctan2(mat[1, 0], mat[0, 0]))


def wrap_angle(angle: float, period: float = 2 * np.pi) -> float:
    """``angle`` folded into [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)


def gripper_down(yaw: float) -> np.ndarray:
    """The eef orientation pointing straight down, turned by ``yaw`` about world z.

    At yaw 0 the fingers close along world y; in general along (sin yaw, -cos yaw, 0).
    """
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ _GRIPPER_DOWN


def rotate_towards(
    current: np.ndarray, target: np.ndarray, gain: float, max_step: float = 1.0
) -> np.ndarray:
    """A proportional OSC rotation command from orientation ``current`` to ``target`` (matrices)."""
    from robosuite.utils import transform_utils

    rotvec = transform_utils.quat2axisangle(transform_utils.mat2quat(target @ current.T))
    return np.clip(gain * rotvec / ROTATION_PER_UNIT, -max_step, max_step)


class YawTracker:
    """An angle followed through its wraps, so turns of more than half a revolution add up."""

    def __init__(self) -> None:
        self.value: float | None = None

    def update(self, angle: float) -> float:
        self.value = angle if self.value is None else self.value + wrap_angle(angle - self.value)
        return self.value


def finger_gap(obs: dict[str, np.ndarray]) -> float:
    """Distance between the Panda's fingers (about 0.08 m open, 0 closed on nothing)."""
    qpos = obs["robot0_gripper_qpos"]
    return float(qpos[0] - qpos[1])
