"""Scripted Stack expert: grasp the red cube square to its faces, set it on the green cube."""

from __future__ import annotations

import numpy as np

from sir.experts.base import quat_to_mat, wrap_angle, yaw_of
from sir.experts.grasping import GraspingExpert, Step

# Half-sizes of robosuite Stack's cubes: cubeA (red, picked) and cubeB (green, the base).
CUBE_A_HALF = 0.02
CUBE_B_HALF = 0.025


class StackExpert(GraspingExpert):
    """Grasps cubeA with the fingers square to its faces, lifts it clear of cubeB, carries
    it over cubeB and lowers it until it rests there. Squaring up matters: closing on a
    cube's corners spins it in the grasp.
    """

    hover_height = 0.05
    hover_yaw_tolerance = 0.1
    descend_tolerance = 0.01
    reach_tolerance = 0.008
    held_gap = 0.05  # the cube is 4 cm across its faces
    carry_tolerance = 0.006
    place_tolerance = 0.004
    open_steps = 5
    clearance = 0.02  # cubeA's bottom above cubeB's top while carrying
    place_gap = 0.006  # cubeA's bottom above cubeB's top when opening
    crowded_distance = 0.1  # cube centres closer than this leave no room for a finger between

    subgoals = {**GraspingExpert.subgoals, 3: "red cube over the green one"}
    placed_tolerance = 0.02

    def object_position(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return obs["cubeA_pos"]

    def _stacked_z(self, obs: dict[str, np.ndarray]) -> float:
        """cubeA's centre resting on cubeB."""
        return obs["cubeB_pos"][2] + CUBE_B_HALF + CUBE_A_HALF

    def carry_height(self, s: Step) -> float:
        return self._stacked_z(s.obs) + self.clearance + self.jitter[2]

    def place_point(self, s: Step) -> np.ndarray:
        return np.array([*s.obs["cubeB_pos"][:2], self._stacked_z(s.obs) + self.place_gap])

    def plan_grasp_yaw(self, s: Step) -> float:
        # Square to the faces: the cube looks the same every quarter turn, so two headings
        # (mod pi) fit. Take the shorter turn unless cubeB stands close by, where a finger
        # reaching out towards it would land on it: then close across that direction.
        cube_yaw = yaw_of(quat_to_mat(s.obs["cubeA_quat"]))
        turn = wrap_angle(cube_yaw - s.eef_yaw, np.pi / 2)
        options = [turn, turn - np.pi / 2 if turn >= 0 else turn + np.pi / 2]
        towards_b = (s.obs["cubeB_pos"] - s.obs["cubeA_pos"])[:2]
        if np.linalg.norm(towards_b) < self.crowded_distance:
            direction = towards_b / np.linalg.norm(towards_b)

            def reach_towards_b(t: float) -> float:
                yaw = s.eef_yaw + t
                return abs(np.dot([np.sin(yaw), -np.cos(yaw)], direction))

            options.sort(key=reach_towards_b)
        return s.eef_yaw + options[0]
