"""The pick-and-place state machine every scripted expert is a tuning of."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from sir.experts.base import (
    ExpertNoise,
    YawTracker,
    finger_gap,
    gripper_down,
    move_towards,
    quat_to_mat,
    rotate_towards,
    yaw_of,
)

GRIPPER_OPEN = -1.0
GRIPPER_CLOSED = 1.0

# Within a step the phases run in this order: a phase entered from an earlier one acts in
# the same step, one entered from a later one acts from the next.
PHASES = ("hover", "descend", "close", "regrasp", "lift", "carry", "lower", "release", "retreat")
APPROACH = ("hover", "descend", "close")  # turning to the grasp heading
HELD = ("lift", "carry", "lower")  # the fingers should be round the object
GRIPPING = ("close", *HELD)
# How far along the task each phase is; a corrector's sub-goals are the steps up this scale.
PROGRESS = {"hover": 0, "descend": 0, "close": 0, "regrasp": 0, "lift": 1, "carry": 2, "lower": 3, "release": 4,
            "retreat": 5}


@dataclass
class Step:
    """What one ``act`` call sees and the command its phases build."""

    obs: dict[str, np.ndarray]
    eef: np.ndarray
    eef_rot: np.ndarray
    eef_yaw: float  # followed through its wraps since the episode began
    gap: float
    target: np.ndarray  # where the eef should go
    grip: bool = False
    yaw_error: float = 0.0  # radians to turn the gripper about world z
    max_descent: float = 1.0  # cap on the downward command


class GraspingExpert:
    """Picks an object from above and places it, driving the Panda's OSC deltas.

    Phases: hover above the grasp point at the grasp heading, descend to it, close until the
    fingers stop, lift the object to its carry height, carry it over its place point, lower
    it there, release, retreat. Fingers that stop on nothing or on something wider than the
    object, or that come together while holding it, go to regrasp: open and rise, then hover
    again over wherever the object lies. The carry steers by the object's observed position,
    not the gripper's, so slip in the grasp is corrected for.

    A task gives the object's position (and a grasp point, if not its centre), the carry
    height and the place point, and may plan the grasp heading; class attributes tune the
    rest.

    ``resume()`` makes the next ``act`` find its phase in the state it sees rather than in
    its own memory (``infer_phase``): a DAgger corrector taking over from a policy that holds
    the object goes on lifting or carrying it, and never opens the gripper to start again.
    """

    gain = 20.0
    hover_height = 0.06
    hover_tolerance = 0.01  # eef xy within this of the hover point starts the descent
    hover_yaw_tolerance = np.inf  # and its heading within this of the grasp heading
    grasp_depth = 0.0  # eef height above the grasp point when closing
    descend_jitter = 0.3  # share of the waypoint jitter kept on the grasp point
    descend_tolerance = np.inf  # eef xy further than this off the grasp point realigns above it
    realign_clearance = 0.03  # above the grasp point while realigning
    reach_tolerance = 0.01  # eef at most this above the grasp point closes
    min_close_steps = 4
    max_close_steps = 20  # fingers still moving, or stopped too wide, by now regrasp
    empty_gap = 0.01  # fingers this close hold nothing
    held_gap = 0.06  # fingers stopped wider than this are caught on an edge
    lift_tolerance = 0.01  # object this close below its carry height moves on over
    carry_tolerance = 0.01  # object xy this close to its place point is lowered
    place_tolerance = 0.01  # object this close above its place point is let go
    open_steps = 6
    retreat_height = 0.1
    # Reading the phase from the state (``infer_phase``): the fingers hold the object when
    # they stopped between empty_gap and held_gap with the eef this close to the grasp point
    # (the experts' own grasps sit within 1 cm of it); held this far above where it rested,
    # the object is lifted; an open gripper this close above the grasp point goes on down.
    hold_radius = 0.025
    lifted_height = 0.01
    resume_radius = 0.02
    # The corrector's sub-goals, by PROGRESS: the one after the phase it took over in.
    # Past the last, a correction goes on to the end: letting go over the target and
    # clearing away are one short motion.
    subgoals = {1: "grasp secured", 2: "object lifted", 3: "object over the target"}
    placed_tolerance = 0.03  # object xy this close to its place point, resting, is placed
    yaw_weight = 0.05  # metres of progress a radian of turning towards the planned heading is worth
    turns = True  # command the gripper's orientation (else send no rotation at all)
    rot_gain = 1.0
    # Yaw asked for at once: keeps a turn's direction unambiguous and its command near 0.6,
    # beyond which turning the wrist drags the gripper centimetres off its position.
    max_yaw_step = 0.3

    def __init__(self, noise: ExpertNoise | None = None, rng: np.random.Generator | None = None):
        self.noise = noise or ExpertNoise()
        self.rng = rng or np.random.default_rng()

    def reset(self, env: Any) -> None:
        self.eef_yaw = YawTracker()
        self.last_gap = np.inf
        self.rest_z = np.inf  # the lowest the object has been: where it rests
        self.resuming = False
        self.resumed_phase: str | None = None  # the phase the last resume found
        self.progress: tuple[int, float] = (0, -np.inf)  # see progress_in
        self.start_over("hover")
        self.jitter = self.rng.uniform(-1, 1, size=3) * self.noise.target_jitter
        self.jitter[2] = abs(self.jitter[2])

    def start_over(self, phase: str = "regrasp") -> None:
        self.phase = phase
        self.counter = 0
        self.grasp_yaw: float | None = None

    def resume(self) -> None:
        """Plan the next step from the state it sees, not from the phase this expert was in."""
        self.resuming = True

    def next_subgoal(self, level: int) -> int | None:
        """The first sub-goal (a PROGRESS level in ``subgoals``) above ``level``; None past the last."""
        return next((goal for goal in sorted(self.subgoals) if goal > level), None)

    def reached(self, subgoal: int) -> bool:
        return PROGRESS[self.phase] >= subgoal

    # -- what each task gives ------------------------------------------------------------

    def object_position(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def grasp_point(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.object_position(obs)

    def carry_height(self, s: Step) -> float:
        """The object's height while it is carried."""
        raise NotImplementedError

    def place_point(self, s: Step) -> np.ndarray:
        """Where the object's centre is let go."""
        raise NotImplementedError

    def plan_grasp_yaw(self, s: Step) -> float:
        """The heading to grasp at, planned as each approach begins (default: the current one)."""
        return s.eef_yaw

    def carry_yaw_error(self, s: Step) -> float:
        """The turn still to make while holding the object (default: keep the grasp heading)."""
        return self.grasp_yaw - s.eef_yaw

    def upset(self, s: Step) -> bool:
        """Whether the approach has knocked the object out of a graspable pose."""
        return False

    def realign_height(self, s: Step, grasp: np.ndarray) -> float:
        """The eef's height while it recentres over the grasp point during the descent."""
        return max(s.eef[2], grasp[2] + self.realign_clearance)

    # -- the phase a state shows ---------------------------------------------------------

    def holds(self, s: Step) -> bool:
        """Whether the fingers have stopped round the object."""
        if not self.empty_gap < s.gap < self.held_gap:
            return False
        offset = s.eef - (self.grasp_point(s.obs) + np.array([0.0, 0.0, self.grasp_depth]))
        return bool(np.linalg.norm(offset[:2]) < self.hold_radius and abs(offset[2]) < self.hold_radius)

    def over_target(self, s: Step) -> bool:
        """Whether the held object is over its place point, ready to be lowered."""
        place, obj = self.place_point(s), self.object_position(s.obs)
        return bool(np.linalg.norm((place - obj)[:2]) < self.carry_tolerance
                    and obj[2] > place[2] - self.place_tolerance)

    def progress_in(self, s: Step) -> float:
        """How far the state has come within the expert's phase, in metres (more is further):
        the eef nearer the grasp point, the object higher, nearer its place point, lower over
        it; ``progress`` pairs it with the phase's PROGRESS level after each ``act``."""
        level, obj = PROGRESS[self.phase], self.object_position(s.obs)
        turn = self.yaw_weight * abs(s.yaw_error)  # turning the wrist is progress too
        if level == 0:
            return -float(np.linalg.norm(s.eef - self.grasp_point(s.obs))) - turn
        if level == 1:
            return float(obj[2])
        if level == 2:
            return -float(np.linalg.norm((self.place_point(s) - obj)[:2])) - turn
        if level == 3:
            return -float(obj[2])
        return float(s.gap if level == 4 else s.eef[2])

    def near_target(self, s: Step) -> bool:
        """Whether the object is over its place point or by it (within ``placed_tolerance``)."""
        return bool(np.linalg.norm((self.place_point(s) - self.object_position(s.obs))[:2]) < self.placed_tolerance)

    def placed(self, s: Step) -> bool:
        """Whether the object rests at its place point (let go, or about to be)."""
        return self.near_target(s) and self.object_position(s.obs)[2] < self.place_point(s)[2]

    def plan_held(self, s: Step) -> None:
        """Plan the carry for an object found held (default: keep the heading it is held at)."""
        self.grasp_yaw = s.eef_yaw

    def infer_phase(self, s: Step) -> str:
        """The phase to go on in from this state: an object held stays held (closing on it
        until the fingers stop, lifting, carrying or lowering it, by where it is); otherwise
        the approach goes on down from just above the grasp point, backs off upwards (opening)
        from anywhere else low, or starts above the object. An object resting at its place
        point, or let go over it, is left there."""
        obj = self.object_position(s.obs)
        held = self.holds(s)
        if self.placed(s) or (not held and self.near_target(s)):
            return "retreat"  # at its target, or let go there and falling onto it
        if held:
            self.plan_held(s)
            if obj[2] < self.rest_z + self.lifted_height:
                return "close"
            if self.over_target(s):
                return "lower"
            return "lift" if obj[2] < self.carry_height(s) - self.lift_tolerance else "carry"
        grasp = self.grasp_point(s.obs) + np.array([0.0, 0.0, self.grasp_depth])
        if s.eef[2] > grasp[2] + self.hover_height - 0.01:
            return "hover"
        if np.linalg.norm((s.eef - grasp)[:2]) < self.resume_radius and s.gap >= self.held_gap:
            return "descend"
        return "regrasp"

    # -- the phases ----------------------------------------------------------------------

    def hover(self, s: Step) -> None:
        s.target = self.grasp_point(s.obs) + np.array([0.0, 0.0, self.hover_height]) + self.jitter
        if (
            np.linalg.norm((s.target - s.eef)[:2]) < self.hover_tolerance
            and abs(s.target[2] - s.eef[2]) < 0.02
            and abs(s.yaw_error) < self.hover_yaw_tolerance
        ):
            self.phase = "descend"

    def _grasp_target(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        target = self.grasp_point(obs) + np.array([0.0, 0.0, self.grasp_depth])
        target[:2] += self.jitter[:2] * self.descend_jitter
        return target

    def descend(self, s: Step) -> None:
        if self.upset(s):
            return self.start_over()
        s.target = self._grasp_target(s.obs)
        if np.linalg.norm((s.target - s.eef)[:2]) > self.descend_tolerance:
            # A finger coming down off centre lands on the object and tips it.
            s.target[2] = self.realign_height(s, s.target)
        elif s.eef[2] - s.target[2] < self.reach_tolerance:
            self.phase, self.counter = "close", 0

    def close(self, s: Step) -> None:
        if self.upset(s):
            return self.start_over()
        s.target = np.array([*self._grasp_target(s.obs)[:2], s.eef[2]])
        self.counter += 1
        # Lift only once the fingers have stopped: lifting while they close drags the object.
        if self.counter >= self.min_close_steps and abs(s.gap - self.last_gap) < 5e-4:
            if self.empty_gap < s.gap < self.held_gap:
                self.phase, self.counter = "lift", 0
            elif s.gap <= self.empty_gap or self.counter >= self.max_close_steps:
                self.start_over()

    def regrasp(self, s: Step) -> None:
        s.target = s.eef + np.array([0.0, 0.0, self.hover_height])
        self.counter += 1
        if self.counter >= self.open_steps:
            self.start_over("hover")

    def _steer_object(self, s: Step, waypoint: np.ndarray) -> np.ndarray:
        """The eef target that moves the held object's centre to ``waypoint``."""
        return s.eef + (waypoint - self.object_position(s.obs))

    def lift(self, s: Step) -> None:
        obj = self.object_position(s.obs)
        height = self.carry_height(s)
        s.target = self._steer_object(s, np.array([obj[0], obj[1], height]))
        if obj[2] > height - self.lift_tolerance:
            self.phase = "carry"

    def carry(self, s: Step) -> None:
        place = self.place_point(s)
        s.target = self._steer_object(s, np.array([place[0], place[1], self.carry_height(s)]))
        if np.linalg.norm((place - self.object_position(s.obs))[:2]) < self.carry_tolerance:
            self.phase = "lower"

    def lower(self, s: Step) -> None:
        place = self.place_point(s)
        s.target = self._steer_object(s, place)
        if self.object_position(s.obs)[2] < place[2] + self.place_tolerance:
            self.phase, self.counter = "release", 0

    def release(self, s: Step) -> None:
        s.target = s.eef
        self.counter += 1
        if self.counter >= self.open_steps:
            self.phase = "retreat"

    def retreat(self, s: Step) -> None:
        s.target = s.eef + np.array([0.0, 0.0, self.retreat_height])

    # -- the command ---------------------------------------------------------------------

    def translation(self, s: Step) -> np.ndarray:
        translation = move_towards(s.eef, s.target, self.gain)
        translation[2] = max(translation[2], -s.max_descent)
        return translation

    def noise_std(self, s: Step) -> float:
        return self.noise.action_std

    def observe(self, obs: dict[str, np.ndarray]) -> Step:
        """What this step sees (the same however often it is called for one observation)."""
        eef = obs["robot0_eef_pos"]
        eef_rot = quat_to_mat(obs["robot0_eef_quat"])
        s = Step(obs, eef, eef_rot, self.eef_yaw.update(yaw_of(eef_rot)), finger_gap(obs), eef)
        self.rest_z = min(self.rest_z, float(self.object_position(obs)[2]))
        return s

    def read_phase(self, obs: dict[str, np.ndarray]) -> str:
        """The phase the state shows, for a log; the expert's own plan is left as it is."""
        phase, grasp_yaw = self.phase, self.grasp_yaw
        try:
            return self.infer_phase(self.observe(obs))
        finally:
            self.phase, self.grasp_yaw = phase, grasp_yaw

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        s = self.observe(obs)
        if self.resuming:
            self.resuming = False
            phase = self.infer_phase(s)  # plans the heading to hold an object already held
            grasp_yaw = self.grasp_yaw if phase in GRIPPING else None
            self.start_over(phase)
            self.grasp_yaw, self.resumed_phase = grasp_yaw, phase
        if self.phase in HELD and s.gap < self.empty_gap:
            self.start_over()  # it slipped out: start over from wherever it fell
        if self.phase in APPROACH:
            if self.grasp_yaw is None:
                self.grasp_yaw = self.plan_grasp_yaw(s)
            s.yaw_error = self.grasp_yaw - s.eef_yaw
        for phase in PHASES:
            if self.phase == phase:
                s.grip = s.grip or phase in GRIPPING
                if phase in HELD:
                    s.yaw_error = self.carry_yaw_error(s)
                getattr(self, phase)(s)
        self.last_gap = s.gap
        self.progress = (PROGRESS[self.phase], self.progress_in(s))

        arm = self.translation(s)
        if self.turns:
            yaw_step = np.clip(s.yaw_error, -self.max_yaw_step, self.max_yaw_step)
            rotation = rotate_towards(s.eef_rot, gripper_down(s.eef_yaw + yaw_step), self.rot_gain)
            arm = np.concatenate([arm, rotation])
        gripper = GRIPPER_CLOSED if s.grip else GRIPPER_OPEN
        self.intended = np.concatenate([arm, np.zeros(6 - arm.size), [gripper]]).astype(np.float32)
        if self.noise.action_std > 0:
            arm = np.clip(arm + self.rng.normal(0, self.noise_std(s), size=arm.size), -1, 1)
        return np.concatenate([arm, np.zeros(6 - arm.size), [gripper]]).astype(np.float32)
