"""Scripted Lift expert: above the cube, down, close, up."""

from __future__ import annotations

from typing import Any

import numpy as np

from sir.experts.base import ExpertNoise, move_towards

GRIPPER_OPEN = -1.0
GRIPPER_CLOSED = 1.0


class LiftExpert:
    """A state machine over the cube pose driving the Panda's OSC position deltas.

    Phases: hover above the cube, descend around it, close the gripper for a few steps,
    then lift until robosuite reports success. Orientation is held (rotation deltas 0):
    the Panda's open gripper is wide enough for the cube at any yaw.
    """

    hover_height = 0.06
    grasp_depth = 0.0
    lift_height = 0.15
    close_steps = 6
    gain = 12.0

    def __init__(self, noise: ExpertNoise | None = None, rng: np.random.Generator | None = None):
        self.noise = noise or ExpertNoise()
        self.rng = rng or np.random.default_rng()
        self.done = False

    def reset(self, env: Any) -> None:
        self.phase = "hover"
        self.closing = 0
        self.done = False
        self.jitter = self.rng.uniform(-1, 1, size=3) * self.noise.target_jitter
        self.jitter[2] = abs(self.jitter[2])

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        eef = obs["robot0_eef_pos"]
        cube = obs["cube_pos"]
        gripper = GRIPPER_OPEN
        if self.phase == "hover":
            target = cube + np.array([0.0, 0.0, self.hover_height]) + self.jitter
            if np.linalg.norm((target - eef)[:2]) < 0.01 and abs(target[2] - eef[2]) < 0.02:
                self.phase = "descend"
        if self.phase == "descend":
            target = cube + np.array([0.0, 0.0, self.grasp_depth])
            target[:2] += self.jitter[:2] * 0.2
            if abs(target[2] - eef[2]) < 0.01:
                self.phase = "close"
        if self.phase == "close":
            target = eef
            gripper = GRIPPER_CLOSED
            self.closing += 1
            if self.closing >= self.close_steps:
                self.phase = "lift"
        if self.phase == "lift":
            target = cube.copy()
            target[2] = cube[2] + self.lift_height
            target[:2] = eef[:2]
            gripper = GRIPPER_CLOSED
        arm = move_towards(eef, target, self.gain)
        if self.noise.action_std > 0:
            arm = np.clip(arm + self.rng.normal(0, self.noise.action_std, size=3), -1, 1)
        return np.concatenate([arm, np.zeros(3), [gripper]]).astype(np.float32)
