"""Scripted Stack expert: grasp the red cube square to its faces, set it on the green cube."""

from __future__ import annotations

from typing import Any

import numpy as np

from sir.experts.base import (
    ExpertNoise,
    finger_gap,
    gripper_down,
    move_towards,
    quat_to_mat,
    rotate_towards,
    wrap_angle,
    yaw_of,
)

GRIPPER_OPEN = -1.0
GRIPPER_CLOSED = 1.0

# Half-sizes of robosuite Stack's cubes: cubeA (red, picked) and cubeB (green, the base).
CUBE_A_HALF = 0.02
CUBE_B_HALF = 0.025


class StackExpert:
    """A state machine over both cubes' poses driving OSC position and yaw deltas.

    Phases: hover above cubeA with the fingers square to its faces, descend, close, lift
    clear of cubeB, carry cubeA over cubeB, lower it until it rests there, open, rise.
    Squaring up matters: closing on a cube's corners spins it in the grasp. A missed or
    lost grasp starts over from wherever cubeA lies.
    """

    hover_height = 0.05
    grasp_depth = 0.0  # eef height above cubeA's centre when closing
    clearance = 0.02  # cubeA's bottom above cubeB's top while carrying
    place_gap = 0.006  # cubeA's bottom above cubeB's top when opening
    min_close_steps = 4
    open_steps = 5
    descend_tolerance = 0.01
    crowded_distance = 0.1  # cube centres closer than this leave no room for a finger between
    empty_gap = 0.01  # fingers this close hold nothing
    held_gap = 0.05  # the cube is 4 cm across its faces
    max_close_steps = 20
    gain = 20.0
    rot_gain = 1.0
    max_yaw_step = 0.3  # keeps the yaw command near 0.6; faster turns drag the gripper off position

    def __init__(self, noise: ExpertNoise | None = None, rng: np.random.Generator | None = None):
        self.noise = noise or ExpertNoise()
        self.rng = rng or np.random.default_rng()
        self.done = False

    def reset(self, env: Any) -> None:
        self.done = False
        self.phase = "hover"
        self.counter = 0
        self.last_gap = np.inf
        self.grasp_yaw: float | None = None
        self.jitter = self.rng.uniform(-1, 1, size=3) * self.noise.target_jitter
        self.jitter[2] = abs(self.jitter[2])

    def _choose_grasp_yaw(self, obs: dict[str, np.ndarray], eef_yaw: float) -> float:
        # Square to the faces: the cube looks the same every quarter turn, so two headings
        # (mod pi) fit. Take the shorter turn unless cubeB stands close by, where a finger
        # reaching out towards it would land on it: then close across that direction.
        cube_yaw = yaw_of(quat_to_mat(obs["cubeA_quat"]))
        turn = wrap_angle(cube_yaw - eef_yaw, np.pi / 2)
        options = [turn, turn - np.pi / 2 if turn >= 0 else turn + np.pi / 2]
        towards_b = (obs["cubeB_pos"] - obs["cubeA_pos"])[:2]
        if np.linalg.norm(towards_b) < self.crowded_distance:
            direction = towards_b / np.linalg.norm(towards_b)

            def reach_towards_b(t: float) -> float:
                yaw = eef_yaw + t
                return abs(np.dot([np.sin(yaw), -np.cos(yaw)], direction))

            options.sort(key=reach_towards_b)
        return eef_yaw + options[0]

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        eef = obs["robot0_eef_pos"]
        eef_rot = quat_to_mat(obs["robot0_eef_quat"])
        eef_yaw = yaw_of(eef_rot)
        cube_a, cube_b = obs["cubeA_pos"], obs["cubeB_pos"]
        gap = finger_gap(obs)
        gripper = GRIPPER_OPEN
        if self.grasp_yaw is None:
            self.grasp_yaw = self._choose_grasp_yaw(obs, eef_yaw)
        yaw_target = self.grasp_yaw
        stack_z = cube_b[2] + CUBE_B_HALF + CUBE_A_HALF  # cubeA's centre resting on cubeB

        if self.phase in ("lift", "carry", "lower") and gap < self.empty_gap:
            self.phase, self.counter, self.grasp_yaw = "regrasp", 0, None
        if self.phase == "hover":
            target = cube_a + np.array([0.0, 0.0, self.hover_height]) + self.jitter
            yaw_err = abs(wrap_angle(self.grasp_yaw - eef_yaw))
            if (
                np.linalg.norm((target - eef)[:2]) < 0.01
                and abs(target[2] - eef[2]) < 0.02
                and yaw_err < 0.1
            ):
                self.phase = "descend"
        if self.phase == "descend":
            target = cube_a + np.array([0.0, 0.0, self.grasp_depth])
            target[:2] += self.jitter[:2] * 0.3
            if np.linalg.norm((target - eef)[:2]) > self.descend_tolerance:
                # Realign above the cube: a finger coming down off-centre lands on it.
                target[2] = max(eef[2], target[2] + 0.03)
            elif abs(target[2] - eef[2]) < 0.008:
                self.phase, self.counter = "close", 0
        if self.phase == "close":
            target = np.array([cube_a[0], cube_a[1], eef[2]])
            gripper = GRIPPER_CLOSED
            self.counter += 1
            # Lift only once the fingers have stopped on the cube: lifting while they close
            # drags it, and fingers stopped wider than it are caught on an edge.
            if self.counter >= self.min_close_steps and abs(gap - self.last_gap) < 5e-4:
                if self.empty_gap < gap < self.held_gap:
                    self.phase, self.counter = "lift", 0
                elif gap <= self.empty_gap or self.counter >= self.max_close_steps:
                    self.phase, self.counter = "regrasp", 0
        if self.phase == "regrasp":
            target = eef + np.array([0.0, 0.0, self.hover_height])
            self.counter += 1
            if self.counter >= self.open_steps:
                self.phase, self.counter, self.grasp_yaw = "hover", 0, None
        carry_z = stack_z + self.clearance + self.jitter[2]
        if self.phase == "lift":
            gripper = GRIPPER_CLOSED
            target = eef.copy()
            target[2] += carry_z - cube_a[2]
            if cube_a[2] > carry_z - 0.01:
                self.phase = "carry"
        if self.phase == "carry":
            gripper = GRIPPER_CLOSED
            target = eef.copy()
            target += np.array([cube_b[0], cube_b[1], carry_z]) - cube_a
            if np.linalg.norm((cube_b - cube_a)[:2]) < 0.006:
                self.phase = "lower"
        if self.phase == "lower":
            gripper = GRIPPER_CLOSED
            target = eef.copy()
            target += np.array([cube_b[0], cube_b[1], stack_z + self.place_gap]) - cube_a
            if cube_a[2] < stack_z + self.place_gap + 0.004:
                self.phase, self.counter = "release", 0
        if self.phase == "release":
            target = eef
            self.counter += 1
            if self.counter >= self.open_steps:
                self.phase = "retreat"
        if self.phase == "retreat":
            target = eef + np.array([0.0, 0.0, 0.1])

        self.last_gap = gap
        yaw_step = np.clip(wrap_angle(yaw_target - eef_yaw), -self.max_yaw_step, self.max_yaw_step)
        arm = np.concatenate(
            [
                move_towards(eef, target, self.gain),
                rotate_towards(eef_rot, gripper_down(eef_yaw + yaw_step), self.rot_gain),
            ]
        )
        if self.noise.action_std > 0:
            arm = np.clip(arm + self.rng.normal(0, self.noise.action_std, size=6), -1, 1)
        return np.concatenate([arm, [gripper]]).astype(np.float32)
