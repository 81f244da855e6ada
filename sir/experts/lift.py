"""Scripted Lift expert: above the cube, down, close, up."""

from __future__ import annotations

import numpy as np

from sir.experts.grasping import GraspingExpert, Step


class LiftExpert(GraspingExpert):
    """Grasps the cube and raises it until robosuite reports success, which ends the episode.

    It sends no rotation: the Panda's open gripper is wide enough for the cube at any yaw.
    """

    gain = 12.0
    descend_jitter = 0.2
    held_gap = 0.07  # the cube is up to 4.4 cm across, 6.2 cm corner to corner
    turns = False
    lift_height = 0.15

    def object_position(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return obs["cube_pos"]

    subgoals = {1: "grasp secured"}  # the lift that follows is the task: it ends the episode

    def carry_height(self, s: Step) -> float:
        # Always above the cube, so the lift goes on until the episode ends.
        return self.object_position(s.obs)[2] + self.lift_height

    def over_target(self, s: Step) -> bool:
        return False  # nowhere to carry the cube to

    def near_target(self, s: Step) -> bool:
        return False
