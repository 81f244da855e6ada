"""Scripted PickPlaceCan expert: grasp the can from above, carry it over the walls into its bin."""

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
    yaw_of,
)

GRIPPER_OPEN = -1.0
GRIPPER_CLOSED = 1.0

# The bins' floors are 0.02 m and their walls 0.1 m above the bins' origins (bins_arena.xml).
FLOOR_HEIGHT = 0.02
WALL_HEIGHT = 0.10
# The can's collision mesh is 0.08 m tall (its ``bottom_site`` at -0.06 is not its bottom).
CAN_HALF_HEIGHT = 0.04


class PickPlaceCanExpert:
    """A state machine over the can's pose driving OSC position deltas, gripper pointing down.

    Phases: hover above the can, descend round it, close, lift until the can clears the
    walls, carry it over its quarter of the target bin, lower it to just above the floor,
    open, rise. A missed or lost grasp starts over from wherever the can lies.

    The drop point is the corner of the can's quarter nearest the robot, not its centre:
    the centre is at the edge of the Panda's reach at a height that clears the walls.
    """

    hover_height = 0.06
    grasp_depth = 0.0  # eef height above the can's centre when closing
    wall_clearance = 0.04  # can bottom above the walls' tops while carrying
    drop_height = 0.015  # can bottom above the bin floor when opening
    # Drop point inside the quarter's near corner: the fingers reach 4 cm from the can's axis
    # and must clear the 2 cm dividers, with room for the waypoint jitter.
    edge_margin = 0.075
    min_close_steps = 4
    open_steps = 6
    descend_tolerance = 0.01
    empty_gap = 0.01  # fingers this close hold nothing
    held_gap = 0.06  # the can is 5 cm across
    max_close_steps = 20
    gain = 20.0
    rot_gain = 2.5

    def __init__(self, noise: ExpertNoise | None = None, rng: np.random.Generator | None = None):
        self.noise = noise or ExpertNoise()
        self.rng = rng or np.random.default_rng()
        self.done = False

    def reset(self, env: Any) -> None:
        self.done = False
        self.phase = "hover"
        self.counter = 0
        self.last_gap = np.inf
        self.yaw: float | None = None
        # The can's quarter of bin 2, as robosuite's PickPlace.not_in_bin computes it.
        bin_pos, bin_size = np.asarray(env.bin2_pos), np.asarray(env.bin_size)
        low = bin_pos[:2].copy()
        if env.object_id in (0, 2):
            low[0] -= bin_size[0] / 2
        if env.object_id < 2:
            low[1] -= bin_size[1] / 2
        self.drop_xy = low + self.edge_margin
        self.floor_z = float(bin_pos[2]) + FLOOR_HEIGHT
        self.carry_z = float(bin_pos[2]) + WALL_HEIGHT + self.wall_clearance + CAN_HALF_HEIGHT
        self.jitter = self.rng.uniform(-1, 1, size=3) * self.noise.target_jitter
        self.jitter[2] = abs(self.jitter[2])

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        eef = obs["robot0_eef_pos"]
        eef_rot = quat_to_mat(obs["robot0_eef_quat"])
        if self.yaw is None:
            # Keep the starting heading: the can is round, so any yaw grasps it.
            self.yaw = yaw_of(eef_rot)
        can = obs["Can_pos"]
        gap = finger_gap(obs)
        gripper = GRIPPER_OPEN

        if self.phase in ("lift", "carry", "lower") and gap < self.empty_gap:
            self.phase, self.counter = "regrasp", 0
        if self.phase == "hover":
            target = can + np.array([0.0, 0.0, self.hover_height]) + self.jitter
            if np.linalg.norm((target - eef)[:2]) < 0.015 and abs(target[2] - eef[2]) < 0.02:
                self.phase = "descend"
        if self.phase == "descend":
            target = can + np.array([0.0, 0.0, self.grasp_depth])
            target[:2] += self.jitter[:2] * 0.3
            rim = can[2] + CAN_HALF_HEIGHT + 0.01
            if np.linalg.norm((target - eef)[:2]) > self.descend_tolerance:
                # The open fingers clear the can by 1.5 cm a side: coming down further off
                # centre puts a fingertip on its rim and tips it, so realign above the rim
                # (or, with the fingers already round the can, where they are).
                target[2] = max(eef[2], rim) if eef[2] > rim - 0.01 else eef[2]
            elif abs(target[2] - eef[2]) < 0.01:
                self.phase, self.counter = "close", 0
        if self.phase == "close":
            target = np.array([can[0], can[1], eef[2]])
            gripper = GRIPPER_CLOSED
            self.counter += 1
            # Lift only once the fingers have stopped on the can: lifting while they close
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
                self.phase, self.counter = "hover", 0
        if self.phase == "lift":
            gripper = GRIPPER_CLOSED
            target = eef.copy()
            target[2] += self.carry_z + self.jitter[2] - can[2]
            if can[2] > self.carry_z - 0.02:
                self.phase = "carry"
        if self.phase == "carry":
            gripper = GRIPPER_CLOSED
            target = eef.copy()
            target[:2] += self.drop_xy + self.jitter[:2] - can[:2]
            target[2] += self.carry_z + self.jitter[2] - can[2]
            if np.linalg.norm(self.drop_xy + self.jitter[:2] - can[:2]) < 0.03:
                self.phase = "lower"
        if self.phase == "lower":
            gripper = GRIPPER_CLOSED
            target = eef.copy()
            target[:2] += self.drop_xy + self.jitter[:2] - can[:2]
            target[2] += self.floor_z + CAN_HALF_HEIGHT + self.drop_height - can[2]
            if can[2] < self.floor_z + CAN_HALF_HEIGHT + self.drop_height + 0.01:
                self.phase, self.counter = "release", 0
        if self.phase == "release":
            target = eef
            self.counter += 1
            if self.counter >= self.open_steps:
                self.phase = "retreat"
        if self.phase == "retreat":
            target = eef + np.array([0.0, 0.0, 0.1])

        self.last_gap = gap
        arm = np.concatenate(
            [
                move_towards(eef, target, self.gain),
                rotate_towards(eef_rot, gripper_down(self.yaw), self.rot_gain),
            ]
        )
        if self.noise.action_std > 0:
            arm = np.clip(arm + self.rng.normal(0, self.noise.action_std, size=6), -1, 1)
        return np.concatenate([arm, [gripper]]).astype(np.float32)
