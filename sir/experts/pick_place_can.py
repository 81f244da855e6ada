"""Scripted PickPlaceCan expert: grasp the can from above, carry it over the walls into its bin."""

from __future__ import annotations

from typing import Any

import numpy as np

from sir.experts.grasping import GraspingExpert, Step

# The bins' floors are 0.02 m and their walls 0.1 m above the bins' origins (bins_arena.xml).
FLOOR_HEIGHT = 0.02
WALL_HEIGHT = 0.10
# The can's collision mesh is 0.08 m tall (its ``bottom_site`` at -0.06 is not its bottom).
CAN_HALF_HEIGHT = 0.04


class PickPlaceCanExpert(GraspingExpert):
    """Grasps the can at the heading the gripper has (the can is round), lifts it until it
    clears the walls, carries it over its quarter of the target bin and lowers it to just
    above the floor.

    The drop point is the corner of the can's quarter nearest the robot, not its centre:
    the centre is at the edge of the Panda's reach at a height that clears the walls.
    """

    hover_tolerance = 0.015
    descend_tolerance = 0.01
    held_gap = 0.06  # the can is 5 cm across
    lift_tolerance = 0.02
    carry_tolerance = 0.03
    rot_gain = 2.5
    max_yaw_step = np.inf
    wall_clearance = 0.04  # can bottom above the walls' tops while carrying
    drop_height = 0.015  # can bottom above the bin floor when opening
    # Drop point inside the quarter's near corner: the fingers reach 4 cm from the can's axis
    # and must clear the 2 cm dividers, with room for the waypoint jitter.
    edge_margin = 0.075
    placed_tolerance = 0.05  # still well inside the quarter round the drop point

    def reset(self, env: Any) -> None:
        super().reset(env)
        # The can's quarter of bin 2, as robosuite's PickPlace.not_in_bin computes it.
        bin_pos, bin_size = np.asarray(env.bin2_pos), np.asarray(env.bin_size)
        low = bin_pos[:2].copy()
        if env.object_id in (0, 2):
            low[0] -= bin_size[0] / 2
        if env.object_id < 2:
            low[1] -= bin_size[1] / 2
        self.drop = np.array([
            *(low + self.edge_margin + self.jitter[:2]),
            bin_pos[2] + FLOOR_HEIGHT + CAN_HALF_HEIGHT + self.drop_height,
        ])
        self.carry_z = bin_pos[2] + WALL_HEIGHT + self.wall_clearance + CAN_HALF_HEIGHT + self.jitter[2]

    subgoals = {**GraspingExpert.subgoals, 3: "can over its bin"}

    def object_position(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return obs["Can_pos"]

    def carry_height(self, s: Step) -> float:
        return self.carry_z

    def place_point(self, s: Step) -> np.ndarray:
        return self.drop

    def realign_height(self, s: Step, grasp: np.ndarray) -> float:
        # The open fingers clear the can by 1.5 cm a side: coming down further off centre
        # puts a fingertip on its rim and tips it, so realign above the rim (or, with the
        # fingers already round the can, where they are).
        rim = self.object_position(s.obs)[2] + CAN_HALF_HEIGHT + 0.01
        return max(s.eef[2], rim) if s.eef[2] > rim - 0.01 else s.eef[2]
