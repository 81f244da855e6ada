"""Scripted NutAssemblySquare expert: grasp the nut by its handle, square it over the peg, lower."""

from __future__ import annotations

import itertools
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

# Where to grasp, in the nut's frame. The handle spans x 0.029..0.079 (square-nut.xml), but
# the ring's wall next to it spans x 0.023..0.044 and is wider than the open fingers: a
# finger pad (about 2 cm wide) that strays over it lands on the wall and the nut flips up.
# So the grasp sits 1 cm out from the handle's centre.
GRASP_OFFSET = np.array([0.064, 0.0, 0.0])
# How the nut may sit on the peg, as (nut yaw, gripper yaw mod 2 pi) with a penalty in
# radians of extra turning. Any quarter turn of the nut fits the square peg, but the pose
# holding it must stay comfortably inside the Panda's reach: with the handle towards the
# robot and the wrist back at its starting angle the elbow is well bent; the other poses
# here work but straighten the elbow or park the wrist near its limit; the rest (handle
# away from the robot, or towards -y) leave the elbow at its limit, where the controller
# can no longer hold the nut still over the peg.
FINAL_POSES = {(np.pi, 0.0): 0.0, (np.pi / 2, np.pi / 2): 1.0, (np.pi, np.pi): 2.0}
# The Panda's last joint turns the gripper about its axis, opposite to yaw, within +-2.9 rad.
WRIST_LIMIT = 2.6


class YawTracker:
    """An angle followed through its wraps, so turns of more than half a revolution add up."""

    def __init__(self) -> None:
        self.value: float | None = None

    def update(self, angle: float) -> float:
        self.value = angle if self.value is None else self.value + wrap_angle(angle - self.value)
        return self.value


class SquareExpert:
    """A state machine over the nut and peg poses driving OSC position and yaw deltas.

    Phases: hover over the handle with the fingers turned across it, descend, close, carry
    the nut's centre over the peg, clear of its top, while turning it square to the peg (its
    hole leaves ~7 mm of play round the peg), lower it down the peg, open. Both turns are
    planned together before the grasp (see FINAL_POSES). The carry and the lowering steer by
    the nut's observed pose, not the gripper's, so slip in the grasp is corrected for. A
    missed, lost or tipped grasp starts over; a nut caught on the peg's top is lifted and
    lined up again.

    Near the peg the arm noise is scaled by ``precise_noise_scale``: the full recording
    noise (0.1) there turns most episodes into retries.
    """

    hover_height = 0.08
    carry_height = 0.145  # nut centre above the peg's origin
    peg_height = 0.10  # the peg's top above its origin (pegs_arena.xml)
    peg_clearance_radius = 0.09  # nut centre to peg axis beyond which the nut cannot touch it
    nut_half_thickness = 0.01
    min_close_steps = 4
    open_steps = 6
    settle_steps = 2
    descend_tolerance = 0.008
    # The finger pads span 4 mm below to 12 mm above the eef site: this low, they cover
    # most of the handle's 2 cm thickness and only the fingertips come near the table.
    grasp_depth = -0.004
    max_tilt_cos = 0.97  # a nut tipped over ~14 degrees is left to settle, then grasped again
    empty_gap = 0.01  # fingers this close have missed the 3 cm handle
    handle_gap = 0.045  # fingers stopped wider than this are caught on top of something
    gain = 20.0
    min_push = 0.3
    precise_noise_scale = 0.5
    rot_gain = 1.0
    # Yaw asked for at once: keeps the turn's direction unambiguous and its command near 0.6,
    # beyond which turning the wrist drags the gripper centimetres off its position.
    max_yaw_step = 0.3
    # Until the nut's hole is round the peg, lower gently and only while centred: a fast
    # drop lets the hanging nut swing off centre and jam tilted on the peg's top.
    entry_speed = 0.25
    entry_tolerance = 0.008

    def __init__(self, noise: ExpertNoise | None = None, rng: np.random.Generator | None = None):
        self.noise = noise or ExpertNoise()
        self.rng = rng or np.random.default_rng()
        self.done = False

    def reset(self, env: Any) -> None:
        self.done = False
        self.eef_yaw = YawTracker()
        self.nut_yaw = YawTracker()
        self._start_grasp()
        sim = env.sim
        # The square nut belongs on peg1; the pegs are fixed to the arena, so read them once.
        self.peg = np.array(sim.data.body_xpos[sim.model.body_name2id("peg1")])
        self.table_z = float(env.table_offset[2])
        self.jitter = self.rng.uniform(-1, 1, size=3) * self.noise.target_jitter
        self.jitter[2] = abs(self.jitter[2])

    def _start_grasp(self, phase: str = "hover") -> None:
        self.phase = phase
        self.counter = 0
        self.grasp_yaw: float | None = None
        self.nut_yaw_goal: float | None = None
        self.last_gap = np.inf
        self.nut_heights: list[float] = []

    def _plan_turns(self, nut_yaw: float, eef_yaw: float, wrist: float) -> tuple[float, float]:
        """The gripper's turn before the grasp and the nut's turn after it.

        The fingers must lie across the handle (gripper yaw = nut yaw, mod pi), and the nut
        must end in one of FINAL_POSES; both turns load the same wrist joint. Pick the
        quickest pair, counting the poses' penalties, that keeps that joint inside its range.
        """
        best, best_cost = (0.0, 0.0), np.inf
        for k, m, ((goal, final_eef_yaw), penalty) in itertools.product(
            range(-2, 3), range(-1, 2), FINAL_POSES.items()
        ):
            grasp_turn = wrap_angle(nut_yaw - eef_yaw) + k * np.pi
            carry_turn = wrap_angle(goal - nut_yaw) + 2 * m * np.pi
            if abs(wrap_angle(eef_yaw + grasp_turn + carry_turn - final_eef_yaw)) > 0.5:
                continue
            if max(abs(wrist - grasp_turn), abs(wrist - grasp_turn - carry_turn)) > WRIST_LIMIT:
                continue
            cost = abs(grasp_turn) + abs(carry_turn) + penalty
            if cost < best_cost:
                best, best_cost = (grasp_turn, carry_turn), cost
        return best

    def _stalled(self, nut_z: float, steps: int) -> bool:
        heights = self.nut_heights[-steps:]
        return len(heights) == steps and heights[0] - nut_z < 0.001

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        eef = obs["robot0_eef_pos"]
        eef_rot = quat_to_mat(obs["robot0_eef_quat"])
        eef_yaw = self.eef_yaw.update(yaw_of(eef_rot))
        nut = obs["SquareNut_pos"]
        nut_rot = quat_to_mat(obs["SquareNut_quat"])
        nut_yaw = self.nut_yaw.update(yaw_of(nut_rot))
        grasp_point = nut + nut_rot @ GRASP_OFFSET
        wrist = float(obs["robot0_joint_pos"][6])
        gap = finger_gap(obs)
        peg_top = self.peg[2] + self.peg_height
        gripper = GRIPPER_OPEN
        yaw_err = 0.0
        max_down = 1.0
        offset, off_centre = np.zeros(2), np.inf  # the nut's centre to the peg's axis

        if self.phase in ("carry", "lower") and gap < self.empty_gap:
            # The nut slipped out: start over from wherever it fell.
            self._start_grasp("regrasp")
        if self.phase in ("hover", "descend", "close"):
            if self.grasp_yaw is None:
                grasp_turn, carry_turn = self._plan_turns(nut_yaw, eef_yaw, wrist)
                self.grasp_yaw = eef_yaw + grasp_turn
                self.nut_yaw_goal = nut_yaw + carry_turn
            yaw_err = self.grasp_yaw - eef_yaw

        if self.phase == "hover":
            target = grasp_point + np.array([0.0, 0.0, self.hover_height]) + self.jitter
            if (
                np.linalg.norm((target - eef)[:2]) < 0.01
                and abs(target[2] - eef[2]) < 0.02
                and abs(yaw_err) < 0.05
            ):
                self.phase = "descend"
        if self.phase == "descend":
            target = grasp_point + np.array([0.0, 0.0, self.grasp_depth])
            target[:2] += self.jitter[:2] * 0.3
            if np.linalg.norm((target - eef)[:2]) > self.descend_tolerance:
                # A finger coming down off the handle lands on the ring and tips the nut up;
                # fingertips on the table drag too much to recentre, so realign above it.
                target[2] = max(eef[2], target[2] + 0.025)
            elif eef[2] - target[2] < 0.006:
                self.phase = "close"
        if self.phase in ("descend", "close") and nut_rot[2, 2] < self.max_tilt_cos:
            self._start_grasp("regrasp")
        if self.phase == "close":
            target = np.array([*(grasp_point[:2] + self.jitter[:2] * 0.3), eef[2]])
            gripper = GRIPPER_CLOSED
            self.counter += 1
            # Lift only once the fingers have stopped: lifting while they close drags the nut.
            if self.counter >= self.min_close_steps and abs(gap - self.last_gap) < 5e-4:
                if self.empty_gap < gap < self.handle_gap:
                    self.phase = "carry"
                    self.counter = 0
                else:
                    self._start_grasp("regrasp")
        if self.phase == "regrasp":
            target = eef + np.array([0.0, 0.0, self.hover_height])
            self.counter += 1
            if self.counter >= self.open_steps:
                self._start_grasp()
        if self.phase in ("carry", "lower"):
            gripper = GRIPPER_CLOSED
            yaw_err = self.nut_yaw_goal - nut_yaw
            # Steer the nut's centre, which the grasp holds 6 cm from the fingers.
            offset = (self.peg - nut)[:2]
            target = eef.copy()
            target[:2] += offset
            off_centre = float(np.linalg.norm(offset))
        if self.phase == "carry":
            if (
                nut[2] < peg_top + 0.015
                and self.entry_tolerance < off_centre < self.peg_clearance_radius
            ):
                # Too low to clear the peg's top: rise before going on over it.
                target[:2] = eef[:2]
            target[2] = eef[2] + (self.peg[2] + self.carry_height + self.jitter[2] - nut[2])
            settled = off_centre < 0.004 and abs(yaw_err) < 0.04
            self.counter = self.counter + 1 if settled else 0
            if self.counter >= self.settle_steps:
                self.phase = "lower"
                self.nut_heights = []
                self.counter = 0
        if self.phase == "lower":
            target[2] = eef[2] - (nut[2] - self.table_z - self.nut_half_thickness)
            self.nut_heights.append(float(nut[2]))
            engaged = nut[2] - self.nut_half_thickness < peg_top - 0.005
            if not engaged:
                max_down = self.entry_speed
                if off_centre > self.entry_tolerance:
                    # Drifted off the peg's axis: back off a little while the xy servo recentres.
                    target[2] = eef[2] + 0.01
                if nut_rot[2, 2] < self.max_tilt_cos or (
                    self._stalled(nut[2], 10) and off_centre <= self.entry_tolerance
                ):
                    # Caught on the peg's top: back up and line up again.
                    self.phase = "carry"
                    self.counter = 0
            # Once round the peg the nut needs no help: let go at the bottom, or where it sticks.
            elif nut[2] < self.table_z + 0.035 or self._stalled(nut[2], 5):
                self.phase = "release"
                self.counter = 0
        if self.phase == "release":
            target = eef
            self.counter += 1
            if self.counter >= self.open_steps:
                self.phase = "retreat"
        if self.phase == "retreat":
            target = eef + np.array([0.0, 0.0, 0.1])

        self.last_gap = gap
        translation = move_towards(eef, target, self.gain)
        near_peg = self.phase == "lower" or (self.phase == "carry" and off_centre < 0.03)
        if near_peg:
            # The arm's joint friction swallows the small commands that fine alignment needs.
            short = np.abs(offset) > 0.002
            translation[:2][short] = np.sign(offset[short]) * np.maximum(
                np.abs(translation[:2][short]), self.min_push
            )
        translation[2] = max(translation[2], -max_down)
        yaw_step = np.clip(yaw_err, -self.max_yaw_step, self.max_yaw_step)
        arm = np.concatenate(
            [translation, rotate_towards(eef_rot, gripper_down(eef_yaw + yaw_step), self.rot_gain)]
        )
        if self.noise.action_std > 0:
            # Fitting the nut leaves ~5 mm of slack: full noise there costs many retries.
            std = self.noise.action_std * (self.precise_noise_scale if near_peg else 1.0)
            arm = np.clip(arm + self.rng.normal(0, std, size=6), -1, 1)
        return np.concatenate([arm, [gripper]]).astype(np.float32)
