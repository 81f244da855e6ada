"""Who corrects a policy while ``sir.dagger.record`` records: the ``Corrector`` protocol and
both correctors. ``ScriptedCorrector`` is a scripted expert playing a person who watches the
policy, takes over when failure is near, and hands back once the critical part is done, as
the people of Sirius (Liu et al. 2023) do: short corrections that grow rare as the policy
learns. ``HumanCorrector`` is a person at an input device, taking over and handing back with
a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from sir.data.record.runner import Frame
from sir.data.record.teleop import Operator
from sir.experts.base import ResumableExpert
from sir.experts.grasping import GRIPPING, PROGRESS


class Corrector(Protocol):
    """Watches a policy drive and corrects it: ``ScriptedCorrector`` (a scripted expert) and
    ``HumanCorrector`` (a person at an input device).

    While the policy drives, ``should_take_over`` sees each step's observation, the policy's
    action and the previous step's reward; on True, ``take_over`` and then ``act`` give the
    step's action. While it corrects, ``should_hand_back`` sees the policy's proposed action
    for the state first (a hand-back lets the policy act that step), and otherwise ``act``
    acts: its arguments are ``sir.data.record.runner.Actor.act``'s, and None discards the
    episode (``discarded``). After a takeover, ``reason`` says why it came, ``phase`` the phase
    of the task it came in and ``subgoal`` what it is for (None where the corrector does not
    say); after a hand-back, ``handed_back`` says why.
    """

    name: str
    discarded: bool
    reason: str | None
    phase: str | None
    subgoal: str | None
    handed_back: str | None

    def reset(self, env: Any) -> None: ...

    def should_take_over(self, obs: dict[str, np.ndarray], policy_action: np.ndarray, reward: float) -> bool: ...

    def take_over(self, env: Any) -> None: ...

    def act(self, obs: dict[str, np.ndarray], features: Frame, reward: float) -> np.ndarray | None: ...

    def should_hand_back(self, obs: dict[str, np.ndarray], policy_action: np.ndarray, reward: float) -> bool: ...


@dataclass
class TakeoverRule:
    """When the scripted corrector takes over from the policy, and when it hands back.

    It takes over, once the policy has had ``grace`` steps (at the episode's start and after
    each hand-back), when
    ``patience``: that many steps pass without progress, neither a new best shaped reward
    nor a step up the expert's measure of the task (``GraspingExpert.progress``: nearer the
    grasp point, the object higher, nearer its place point or lower over it, by
    ``progress_step`` metres at least), or
    ``deviation`` / ``deviation_steps``: the policy's arm command differs from the expert's by
    more than ``deviation`` (L2, action units) for that many steps in a row;
    and at once, grace or not, when the object is dropped: held off where it rested (being
    lifted or carried) a step ago, it is held no more and does not rest at its target. (Not
    a fall of the shaped reward: robosuite's PickPlaceCan and Stack rewards fall when the
    object is let go over its target.)

    It hands back, unless ``hand_back`` is off, when the correction has reached its
    sub-goal (the expert's next milestone after the phase it took over in: grasp secured,
    object lifted, object over the target, ...), when the policy's own proposed action has
    agreed with the expert's for ``agree_steps`` steps in a row (arm commands within
    ``agree``, L2, and the same gripper command: ThriftyDAgger's switch-back rule), or after
    ``max_correction`` steps.
    """

    patience: int = 15
    progress_step: float = 0.005
    deviation: float = 1.0
    deviation_steps: int = 8
    grace: int = 5
    agree: float = 0.15
    agree_steps: int = 5
    max_correction: int = 50
    hand_back: bool = True


def agrees(policy_action: np.ndarray, expert_action: np.ndarray, tolerance: float) -> bool:
    """ThriftyDAgger's switch back to the robot (Hoque et al. 2021; thriftydagger.py in
    github.com/ryanhoque/thriftydagger: ``sum((a - a_expert) ** 2) < switch2robot_thresh``,
    that threshold the policy's mean discrepancy on its training data), here over the arm's
    translation in action units, with the gripper's command (open or closed) the same."""
    policy_action, expert_action = np.asarray(policy_action), np.asarray(expert_action)
    close = float(np.linalg.norm(policy_action[:3] - expert_action[:3])) <= tolerance
    return close and bool((policy_action[-1] > 0) == (expert_action[-1] > 0))


class ScriptedCorrector:
    """A scripted expert playing a watching person: takes over when failure is near, goes on
    from the state it finds (an object the policy holds stays held), and hands back once the
    critical part is done (see ``TakeoverRule``); the policy may be taken over again later.
    It implements ``Corrector``, as ``HumanCorrector`` does.

    While the policy drives, the expert re-plans every step from the state (``resume``), so
    its command is what it would do now were it to take over; while it corrects, it follows
    its own plan. ``reason``, ``phase`` and ``handed_back`` tell the last takeover's why and
    where, and why it ended.
    """

    name = "expert"
    discarded = False  # a script never throws an episode away

    def __init__(self, expert: ResumableExpert, rule: TakeoverRule | None = None):
        self.expert = expert
        self.rule = rule or TakeoverRule()

    def reset(self, env: Any) -> None:
        self.expert.reset(env)
        self.best_reward = -np.inf
        self.best_progress: tuple[int, float] = (-1, -np.inf)
        self.correcting = False
        self.reached = 0  # the last sub-goal a correction reached
        self.reason: str | None = None
        self.phase: str | None = None
        self.subgoal: str | None = None
        self.handed_back: str | None = None
        self._planned_for: Any = None
        self._fresh = False
        self._last_seen: str | None = None
        self._watch()

    def _watch(self) -> None:
        """The policy drives (again): its grace period and the stall and deviation counts start afresh."""
        self.steps = 0
        self.since_progress = 0
        self.deviating = 0

    def _plan(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The expert's command for this step, planned once however often it is asked."""
        if obs is not self._planned_for:
            if not self.correcting or self._fresh:
                self.expert.resume()
            self._planned = np.asarray(self.expert.act(obs), dtype=np.float32)
            self._planned_for = obs
        return self._planned

    def _progressed(self, reward: float) -> bool:
        rewarded = reward > self.best_reward + 1e-3
        self.best_reward = max(self.best_reward, reward)
        level, value = self.expert.progress
        best_level, best_value = self.best_progress
        moved = level > best_level or (level == best_level and value > best_value + self.rule.progress_step)
        if moved:
            self.best_progress = (level, value)
        return rewarded or moved

    def should_take_over(self, obs: dict[str, np.ndarray], policy_action: np.ndarray, reward: float) -> bool:
        expert_action = self._plan(obs)
        self.steps += 1
        self.reason = None
        self.since_progress = 0 if self._progressed(reward) else self.since_progress + 1
        gap = float(np.linalg.norm(np.asarray(policy_action)[:3] - expert_action[:3]))
        self.deviating = self.deviating + 1 if gap > self.rule.deviation else 0
        # Held off where it rested (being lifted or carried) a step ago, and now not held:
        # it fell (let go over its target, in "lower", or resting there, it is placed).
        seen, last = self.expert.resumed_phase, self._last_seen
        self._last_seen = seen
        if last in ("lift", "carry") and seen not in (*GRIPPING, "retreat"):
            self.reason = "object dropped"
        elif self.steps <= self.rule.grace:
            return False
        elif self.since_progress >= self.rule.patience:
            self.reason = "no progress"
        elif self.deviating >= self.rule.deviation_steps:
            self.reason = "actions strayed from the expert's"
        return self.reason is not None

    def take_over(self, env: Any) -> None:
        self.correcting, self._fresh = True, True
        self.corrected = 0
        self.agreeing = 0
        self.phase = self.subgoal = self.handed_back = None

    def act(self, obs: dict[str, np.ndarray], features: Frame, reward: float) -> np.ndarray:
        action = self._plan(obs)
        self._fresh = False
        if self.corrected == 0:
            self.phase = self.expert.resumed_phase or self.expert.phase
            # Handed back at a sub-goal, the policy failed before getting further (it stalled
            # there, or dropped the object): this correction goes on to the next sub-goal,
            # as a person would take the robot past the part it keeps failing.
            self.subgoal_level = self.expert.next_subgoal(max(PROGRESS[self.phase], self.reached))
            self.subgoal = self.expert.subgoals.get(self.subgoal_level) if self.subgoal_level else None
        self.corrected += 1
        return action

    def should_hand_back(self, obs: dict[str, np.ndarray], policy_action: np.ndarray, reward: float) -> bool:
        expert_action = self._plan(obs)
        self._progressed(reward)  # what the expert achieves is the bar the policy's progress is measured by
        self.agreeing = self.agreeing + 1 if agrees(policy_action, expert_action, self.rule.agree) else 0
        if not self.rule.hand_back:
            return False
        if self.subgoal_level is not None and self.expert.reached(self.subgoal_level):
            self.handed_back = "subgoal"
            self.reached = self.subgoal_level
        elif self.agreeing >= self.rule.agree_steps:
            self.handed_back, self.reached = "agreement", 0
        elif self.corrected >= self.rule.max_correction:
            self.handed_back, self.reached = "cap", 0
        else:
            return False
        self.correcting = False
        self._planned_for = None  # watching again: the next plan starts from the state
        self._last_seen = None
        self._watch()
        return True


class HumanCorrector(Operator):
    """An operator watching a policy (``sir.data.record.teleop.Operator``): the takeover key
    hands control to the operator and, pressed again, back to the policy.

    ``phases``, a scripted expert of the task (``sir.experts.base.ResumableExpert``), only
    names the phase each takeover came in for the recording's log; it never acts.
    """

    name = "operator"
    keys_used = ("discard", "takeover")

    def __init__(self, device: str, env: Any, phases: Any = None):
        super().__init__(device, env)
        self.phases = phases
        self.reason: str | None = None
        self.phase: str | None = None
        self.subgoal: str | None = None  # an operator's own
        self.handed_back: str | None = None

    def reset(self, env: Any) -> None:
        self.start_episode(env, "the policy drives (Enter takes over and hands back; q discards the episode).")
        if self.phases is not None:
            self.phases.reset(env)
        self.seen: str | None = None

    def should_take_over(self, obs: dict[str, np.ndarray], policy_action: np.ndarray, reward: float) -> bool:
        self.clock.wait(self.env)
        # Read the device while the policy drives too: keys pressed meanwhile would otherwise
        # pile up into a jump at the takeover, and its reset key must still discard.
        self.read()
        self.policy_action = policy_action
        if self.phases is not None:
            self.seen = self.phases.read_phase(obs)
        return self.keys.take("takeover")

    def take_over(self, env: Any) -> None:
        self.reason, self.phase, self.handed_back = "operator", self.seen, None
        self.teleop.start()
        self.teleop.hold_grippers_of(self.policy_action)

    def act(self, obs: dict[str, np.ndarray], features: Frame, reward: float) -> np.ndarray | None:
        self.clock.wait(self.env)
        return self.read()

    def should_hand_back(self, obs: dict[str, np.ndarray], policy_action: np.ndarray, reward: float) -> bool:
        if self.keys.take("takeover"):
            self.handed_back = "operator"
            return True
        return False
