"""Scripted NutAssemblySquare expert: grasp the nut by its handle, square it over the peg, lower."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from sir.experts.base import YawTracker, quat_to_mat, wrap_angle, yaw_of
from sir.experts.grasping import GraspingExpert, Step

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


class SquareExpert(GraspingExpert):
    """Grasps the nut by its handle with the fingers across it, carries the nut's centre
    over the peg, clear of its top, while turning it square to the peg (its hole leaves
    ~7 mm of play round the peg), and lowers it down the peg. Both turns are planned
    together before the grasp (see FINAL_POSES). A tipped nut is grasped again; one caught
    on the peg's top is lifted and lined up again.

    Near the peg the arm noise is scaled by ``precise_noise_scale``: the full recording
    noise (0.1) there turns most episodes into retries.
    """

    hover_height = 0.08
    hover_yaw_tolerance = 0.05
    # The finger pads span 4 mm below to 12 mm above the eef site: this low, they cover
    # most of the handle's 2 cm thickness and only the fingertips come near the table.
    grasp_depth = -0.004
    descend_tolerance = 0.008
    # A finger coming down off the handle lands on the ring and tips the nut up; fingertips
    # on the table drag too much to recentre, so realign above it.
    realign_clearance = 0.025
    reach_tolerance = 0.006
    max_close_steps = GraspingExpert.min_close_steps  # fingers stopped off the handle regrasp at once
    held_gap = 0.045  # fingers stopped wider than this are caught on top of something
    lift_tolerance = np.inf  # no straight lift: the carry rises as it goes over the peg
    carry_above_peg = 0.145  # nut centre above the peg's origin
    peg_height = 0.10  # the peg's top above its origin (pegs_arena.xml)
    peg_clearance_radius = 0.09  # nut centre to peg axis beyond which the nut cannot touch it
    nut_half_thickness = 0.01
    settle_steps = 2
    max_tilt_cos = 0.97  # a nut tipped over ~14 degrees is left to settle, then grasped again
    min_push = 0.3
    precise_noise_scale = 0.5
    # Until the nut's hole is round the peg, lower gently and only while centred: a fast
    # drop lets the hanging nut swing off centre and jam tilted on the peg's top.
    entry_speed = 0.25
    entry_tolerance = 0.008

    def reset(self, env: Any) -> None:
        super().reset(env)
        self.nut_yaw_tracker = YawTracker()
        sim = env.sim
        # The square nut belongs on peg1; the pegs are fixed to the arena, so read them once.
        self.peg = np.array(sim.data.body_xpos[sim.model.body_name2id("peg1")])
        self.table_z = float(env.table_offset[2])

    def observe(self, obs: dict[str, np.ndarray]) -> Step:
        self.nut = obs["SquareNut_pos"]
        self.nut_rot = quat_to_mat(obs["SquareNut_quat"])
        self.nut_yaw = self.nut_yaw_tracker.update(yaw_of(self.nut_rot))
        return super().observe(obs)

    subgoals = {**GraspingExpert.subgoals, 3: "nut aligned over the peg"}

    def object_position(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.nut

    def grasp_point(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.nut + self.nut_rot @ GRASP_OFFSET

    def upset(self, s: Step) -> bool:
        return self.nut_rot[2, 2] < self.max_tilt_cos

    def plan_turns(self, nut_yaw: float, eef_yaw: float, wrist: float, held: bool = False) -> tuple[float, float]:
        """The gripper's turn before the grasp and the nut's turn after it.

        The fingers must lie across the handle (gripper yaw = nut yaw, mod pi), and the nut
        must end in one of FINAL_POSES; both turns load the same wrist joint. Pick the
        quickest pair, counting the poses' penalties, that keeps that joint inside its range.
        A nut already ``held`` (grasped by someone else, perhaps at another heading) makes no
        grasp turn, and takes any square pose on the peg where none of FINAL_POSES fits.
        """
        best, best_cost = (0.0, 0.0), np.inf
        goals = FINAL_POSES.items()
        if held:
            goals = [*goals, *(((quarter * np.pi / 2, None), 4.0) for quarter in range(4))]
        for k, m, ((goal, final_eef_yaw), penalty) in itertools.product(
            (0,) if held else range(-2, 3), range(-1, 2), goals
        ):
            grasp_turn = 0.0 if held else wrap_angle(nut_yaw - eef_yaw) + k * np.pi
            carry_turn = wrap_angle(goal - nut_yaw) + 2 * m * np.pi
            if final_eef_yaw is not None and abs(wrap_angle(eef_yaw + grasp_turn + carry_turn - final_eef_yaw)) > 0.5:
                continue
            if max(abs(wrist - grasp_turn), abs(wrist - grasp_turn - carry_turn)) > WRIST_LIMIT:
                continue
            cost = abs(grasp_turn) + abs(carry_turn) + penalty
            if cost < best_cost:
                best, best_cost = (grasp_turn, carry_turn), cost
        return best

    def plan_grasp_yaw(self, s: Step) -> float:
        wrist = float(s.obs["robot0_joint_pos"][6])
        grasp_turn, carry_turn = self.plan_turns(self.nut_yaw, s.eef_yaw, wrist)
        self.nut_yaw_goal = self.nut_yaw + carry_turn
        return s.eef_yaw + grasp_turn

    def carry_yaw_error(self, s: Step) -> float:
        return self.nut_yaw_goal - self.nut_yaw

    def plan_held(self, s: Step) -> None:
        super().plan_held(s)
        wrist = float(s.obs["robot0_joint_pos"][6])
        self.nut_yaw_goal = self.nut_yaw + self.plan_turns(self.nut_yaw, s.eef_yaw, wrist, held=True)[1]
        self.nut_heights = []

    def near_target(self, s: Step) -> bool:
        return self._off_peg()[1] < 2 * self.entry_tolerance

    def placed(self, s: Step) -> bool:
        # Down the peg as far as the lowering lets go of it.
        return self.near_target(s) and self.nut[2] < self.table_z + 0.035

    def over_target(self, s: Step) -> bool:
        # Lined up as the carry leaves it for the lowering: centred on the peg and square to it.
        return self._off_peg()[1] < self.entry_tolerance and abs(self.carry_yaw_error(s)) < 0.04

    def carry_height(self, s: Step) -> float:
        return self.peg[2] + self.carry_above_peg + self.jitter[2]

    def place_point(self, s: Step) -> np.ndarray:
        """The nut's centre at the foot of the peg."""
        return np.array([*self.peg[:2], self.table_z + self.nut_half_thickness])

    def _off_peg(self) -> tuple[np.ndarray, float]:
        """The nut centre's offset to the peg's axis, and its length."""
        offset = (self.peg - self.nut)[:2]
        return offset, float(np.linalg.norm(offset))

    def _over_peg(self, s: Step) -> np.ndarray:
        """The eef target that puts the nut's centre, held 6 cm from the fingers, over the peg."""
        target = s.eef.copy()
        target[:2] += self._off_peg()[0]
        return target

    def _stalled(self, steps: int) -> bool:
        heights = self.nut_heights[-steps:]
        return len(heights) == steps and heights[0] - self.nut[2] < 0.001

    def carry(self, s: Step) -> None:
        off_centre = self._off_peg()[1]
        s.target = self._over_peg(s)
        peg_top = self.peg[2] + self.peg_height
        if self.nut[2] < peg_top + 0.015 and self.entry_tolerance < off_centre < self.peg_clearance_radius:
            # Too low to clear the peg's top: rise before going on over it.
            s.target[:2] = s.eef[:2]
        s.target[2] = s.eef[2] + (self.carry_height(s) - self.nut[2])
        settled = off_centre < 0.004 and abs(s.yaw_error) < 0.04
        self.counter = self.counter + 1 if settled else 0
        if self.counter >= self.settle_steps:
            self.phase, self.counter = "lower", 0
            self.nut_heights: list[float] = []

    def lower(self, s: Step) -> None:
        off_centre = self._off_peg()[1]
        s.target = self._over_peg(s)
        nut_z = self.nut[2]
        s.target[2] = s.eef[2] - (nut_z - self.table_z - self.nut_half_thickness)
        self.nut_heights.append(float(nut_z))
        if nut_z - self.nut_half_thickness >= self.peg[2] + self.peg_height - 0.005:
            # Not yet round the peg.
            s.max_descent = self.entry_speed
            if off_centre > self.entry_tolerance:
                # Drifted off the peg's axis: back off a little while the xy servo recentres.
                s.target[2] = s.eef[2] + 0.01
            if self.upset(s) or (self._stalled(10) and off_centre <= self.entry_tolerance):
                # Caught on the peg's top: back up and line up again.
                self.phase, self.counter = "carry", 0
        # Once round the peg the nut needs no help: let go at the bottom, or where it sticks.
        elif nut_z < self.table_z + 0.035 or self._stalled(5):
            self.phase, self.counter = "release", 0

    def _near_peg(self) -> bool:
        return self.phase == "lower" or (self.phase == "carry" and self._off_peg()[1] < 0.03)

    def translation(self, s: Step) -> np.ndarray:
        translation = super().translation(s)
        if self._near_peg():
            # The arm's joint friction swallows the small commands that fine alignment needs.
            offset = self._off_peg()[0]
            short = np.abs(offset) > 0.002
            translation[:2][short] = np.sign(offset[short]) * np.maximum(
                np.abs(translation[:2][short]), self.min_push
            )
        return translation

    def noise_std(self, s: Step) -> float:
        # Fitting the nut leaves ~5 mm of slack: full noise there costs many retries.
        return self.noise.action_std * (self.precise_noise_scale if self._near_peg() else 1.0)
