"""Who corrects a policy while ``sir.dagger.record`` records: the ``Corrector`` protocol and
both correctors. ``ScriptedCorrector`` is a scripted expert playing a person who watches the
policy, takes over on what they can see (no progress, the object dropped, the gripper heading
away), a moment after seeing it, and hands back once the critical part is done, as the people
of Sirius (Liu et al. 2023) do: corrections that grow rare as the policy learns; a
correction stuck on one part of the task resets the episode as a failure.
``HumanCorrector`` is a person at an input device, taking over and handing back with a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from sir.data.record.runner import RESET, Frame, Reset
from sir.data.record.teleop import Operator
from sir.experts.base import ResumableExpert
from sir.experts.grasping import GRIPPING, PROGRESS

# robosuite's control rate, and Sirius's (collect_hitl_demos.py makes its envs with
# control_freq=20): the rule's step counts are seconds times this.
STEPS_PER_SECOND = 20


class Corrector(Protocol):
    """Watches a policy drive and corrects it: ``ScriptedCorrector`` (a scripted expert) and
    ``HumanCorrector`` (a person at an input device).

    While the policy drives, ``should_take_over`` sees each step's observation, the policy's
    action and the previous step's reward; on True, ``take_over`` and then ``act`` give the
    step's action. While it corrects, ``should_hand_back`` sees the policy's proposed action
    for the state first (a hand-back lets the policy act that step), and otherwise ``act``
    acts: its arguments are ``sir.data.record.runner.Actor.act``'s, None discards the episode
    (``discarded``) and ``RESET`` ends it as a failure that is kept like any other (a
    correction that could not recover). After a takeover, ``reason`` says why it came,
    ``phase`` the phase of the task it came in and ``subgoal`` what it is for (None where the
    corrector does not say); after a hand-back (or a reset), ``handed_back`` says why.
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

    def act(self, obs: dict[str, np.ndarray], features: Frame, reward: float) -> np.ndarray | Reset | None: ...

    def should_hand_back(self, obs: dict[str, np.ndarray], policy_action: np.ndarray, reward: float) -> bool: ...


# Why the scripted corrector took over, as the corrections log names it.
NO_PROGRESS = "no progress"
DROPPED = "object dropped"
MOVING_AWAY = "moving away from the sub-goal"
ORACLE_DEVIATION = "oracle: actions strayed from the expert's"


# The sources (docs/dagger.md, "The scripted corrector's rule"), and where sir departs:
# - Sirius, robomimic/scripts/hitl/collect_hitl_demos.py in github.com/UT-Austin-RPL/sirius: the
#   operator's SpaceMouse decides each step (is_empty_input_spacemouse(action): no input, the
#   policy's action), so a person takes over by moving it, when they see the robot fail, and
#   hands back by letting go; a trial past MAX_EPISODE_LENGTH (Lift 300, NutAssemblySquare 400
#   steps) or reset by its key is discarded. sir gives a correction a step budget instead and
#   records the reset as a failure, which the loop's --drop-failures then drops as Sirius does.
# - ThriftyDAgger, thrifty/algos/thriftydagger.py in github.com/ryanhoque/thriftydagger: back to
#   the robot when sum((a - a_expert) ** 2) < switch2robot_thresh and, with its safety critic,
#   ac.safety(o, a) > switch2robot_thresh2 (0.495 a priori): agreement counts only in a safe
#   state. sir has no critic: it counts agreement once the correction is past the critical part.
@dataclass
class TakeoverRule:
    """When the scripted corrector takes over from the policy, and when it hands back.

    **Taking over, on what a person watching sees** (Sirius's operator takes over "when the
    robot fails to make progress"; docs/dagger.md cites the sources). Once the policy has had
    ``grace`` steps (at the episode's start and after each hand-back), a trigger is

    - ``patience``: that many steps without progress, neither a new best shaped reward nor a
      step of ``progress_step`` metres up the task's visible measure (``GraspingExpert.progress``,
      read from the state: the gripper nearer the grasp point, the object higher, nearer its
      place point or lower over it), 1.5 s at 20 Hz;
    - ``away_steps``: that many steps in a row in which that measure fell, by ``away_speed``
      metres a step at least: the gripper (or the object) heading away from the sub-goal,
      about a second (0: never);
    - and, grace or not, the object dropped: held off where it rested (being lifted or
      carried) a step ago, it is held no more and does not rest at its target. (Not a fall of
      the shaped reward: robosuite's PickPlaceCan and Stack rewards fall when the object is
      let go over its target.)

    The takeover comes ``reaction_delay`` steps after a trigger is first seen, if one still
    holds then (a person's reaction time, about 0.2 s). ``oracle_deviation`` (off unless
    set) is a trigger no person has: the policy's arm command differing from the expert's
    hidden one by more than that (L2, action units) for ``oracle_deviation_steps`` steps in a
    row, for oracle studies; ACT approaching along another curve is no failure.

    **Handing back, never mid-recovery** (unless ``hand_back`` is off): when the correction
    has reached its sub-goal (the expert's next milestone after the phase it took over in:
    grasp secured, object lifted, object over the target, ...), or, once it is past the phase
    it took over in (``agree_mid_recovery``: at any point, the old rule), when the policy's own
    proposed action has agreed with the expert's for ``agree_steps`` steps in a row (arm
    commands within ``agree``, L2, and the same gripper command: ThriftyDAgger's switch back,
    which also waits for its safety critic to find the state safe).

    **Resetting a correction that is stuck**: one that spends ``reset_after`` steps on one part
    of the task, no step up its phases (the grasp made, the object lifted, carried over the
    target, ...), ends the episode as a failure (``reset``), as Sirius's operator resets a run
    gone wrong; a long correction that keeps getting further is not cut. ``max_correction``
    (off unless set: the old rule's ``cap``) instead hands back after that many steps of a
    correction in all, leaving the policy a half-recovered state.
    """

    patience: int = int(1.5 * STEPS_PER_SECOND)  # 30: a stall a person watching calls one
    progress_step: float = 0.005
    away_steps: int = STEPS_PER_SECOND  # 20: a second heading the wrong way
    away_speed: float = 0.001  # 2 cm/s, at 20 Hz
    reaction_delay: int = 4  # 0.2 s, a person's simple reaction time to what they see
    grace: int = 5
    oracle_deviation: float | None = None  # an oracle's: off
    oracle_deviation_steps: int = 8
    agree: float = 0.15
    agree_steps: int = 5
    agree_mid_recovery: bool = False
    reset_after: int = 5 * STEPS_PER_SECOND  # 100: stuck on one part for 5 s
    max_correction: int | None = None  # the old rule's cap: off
    hand_back: bool = True


def agrees(policy_action: np.ndarray, expert_action: np.ndarray, tolerance: float) -> bool:
    """ThriftyDAgger's switch back to the robot (Hoque et al. 2021; thrifty/algos/thriftydagger.py
    in github.com/ryanhoque/thriftydagger: ``sum((a - a_expert) ** 2) < switch2robot_thresh``,
    that threshold the policy's mean discrepancy on its training data), here over the arm's
    translation in action units, with the gripper's command (open or closed) the same."""
    policy_action, expert_action = np.asarray(policy_action), np.asarray(expert_action)
    close = float(np.linalg.norm(policy_action[:3] - expert_action[:3])) <= tolerance
    return close and bool((policy_action[-1] > 0) == (expert_action[-1] > 0))


class ScriptedCorrector:
    """A scripted expert playing a watching person: takes over on what a person sees, goes on
    from the state it finds (an object the policy holds stays held), and hands back once the
    critical part is done, or resets the episode when it cannot get there (see
    ``TakeoverRule``); the policy may be taken over again later. It implements ``Corrector``,
    as ``HumanCorrector`` does.

    Its actions are the expert's, with the expert's ``ExpertNoise`` (``sir.dagger.record``
    gives it the demos' recording noise): a person's corrections are no cleaner than their
    demos. It compares the policy's proposals with the expert's command without that noise
    (``ResumableExpert.intended``), what the person steers for.

    While the policy drives, the expert re-plans every step from the state (``resume``), so
    its command is what it would do now were it to take over, and its measure of progress is
    the state's; while it corrects, it follows its own plan. ``reason``, ``phase`` and
    ``handed_back`` tell the last takeover's why and where, and why it ended.
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
        self._watch()

    def _watch(self) -> None:
        """The policy drives (again): its grace period and every trigger's count start afresh."""
        self.steps = 0
        self.since_progress = 0
        self.receding = 0
        self.deviating = 0
        self.dropped = False
        self.noticed: str | None = None  # the trigger a person has seen and is reacting to
        self.waited = 0  # steps since they saw it
        self._last_seen: str | None = None
        self._last_progress: tuple[int, float] | None = None

    def _plan(self, obs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The expert's action for this step and what it intends (the action without its
        noise), planned once however often it is asked."""
        if obs is not self._planned_for:
            if not self.correcting or self._fresh:
                self.expert.resume()
            self._action = np.asarray(self.expert.act(obs), dtype=np.float32)
            self._intended = np.asarray(self.expert.intended, dtype=np.float32)
            self._planned_for = obs
        return self._action, self._intended

    def _progressed(self, reward: float) -> bool:
        rewarded = reward > self.best_reward + 1e-3
        self.best_reward = max(self.best_reward, reward)
        level, value = self.expert.progress
        best_level, best_value = self.best_progress
        moved = level > best_level or (level == best_level and value > best_value + self.rule.progress_step)
        if moved:
            self.best_progress = (level, value)
        return rewarded or moved

    def _triggers(self, policy_action: np.ndarray, intended: np.ndarray) -> list[str]:
        """What is wrong in this step's state, as a person watching would tell it (and, with
        ``oracle_deviation``, what only an oracle could), most telling first."""
        rule = self.rule
        # Held off where it rested (being lifted or carried) a step ago, and now not held:
        # it fell (let go over its target, in "lower", or resting there, it is placed). It
        # stays dropped until the state shows it held again.
        seen, last = self.expert.resumed_phase, self._last_seen
        self._last_seen = seen
        if last in ("lift", "carry") and seen not in (*GRIPPING, "retreat"):
            self.dropped = True
        elif seen in (*GRIPPING, "retreat"):
            self.dropped = False
        level, value = self.expert.progress
        last_progress, self._last_progress = self._last_progress, (level, value)
        falling = last_progress is not None and level == last_progress[0] and value < last_progress[1] - rule.away_speed
        self.receding = self.receding + 1 if falling else 0
        gap = float(np.linalg.norm(np.asarray(policy_action)[:3] - intended[:3]))
        self.deviating = self.deviating + 1 if rule.oracle_deviation is not None and gap > rule.oracle_deviation else 0

        triggers = [DROPPED] if self.dropped else []
        if self.steps > rule.grace:
            if self.since_progress >= rule.patience:
                triggers.append(NO_PROGRESS)
            if rule.away_steps and self.receding >= rule.away_steps:
                triggers.append(MOVING_AWAY)
            if self.deviating >= rule.oracle_deviation_steps:
                triggers.append(ORACLE_DEVIATION)
        return triggers

    def should_take_over(self, obs: dict[str, np.ndarray], policy_action: np.ndarray, reward: float) -> bool:
        _, intended = self._plan(obs)
        self.steps += 1
        self.reason = None
        self.since_progress = 0 if self._progressed(reward) else self.since_progress + 1
        triggers = self._triggers(policy_action, intended)
        if not triggers:
            self.noticed, self.waited = None, 0
            return False
        if self.noticed is None:
            self.noticed, self.waited = triggers[0], 0
        else:
            self.waited += 1
        if self.waited < self.rule.reaction_delay:
            return False
        # What they saw first, if it still holds; else what holds now.
        self.reason = self.noticed if self.noticed in triggers else triggers[0]
        return True

    def take_over(self, env: Any) -> None:
        self.correcting, self._fresh = True, True
        self.corrected = 0
        self.agreeing = 0
        self.furthest = -1  # the highest PROGRESS level this correction has reached
        self.stuck = 0  # steps it has acted since it last got further
        self.phase = self.subgoal = self.handed_back = None

    def act(self, obs: dict[str, np.ndarray], features: Frame, reward: float) -> np.ndarray | Reset:
        if self.rule.hand_back and self.stuck >= self.rule.reset_after:
            # Stuck on one part: a person resets the run rather than hand a half-recovered
            # state back (Sirius's operator resets runs gone wrong).
            self.handed_back = "reset"
            return RESET
        action, _ = self._plan(obs)
        self._fresh = False
        level = PROGRESS[self.expert.phase]
        if level > self.furthest:
            self.furthest, self.stuck = level, 0
        self.stuck += 1
        if self.corrected == 0:
            self.phase = self.expert.resumed_phase or self.expert.phase
            # Handed back at a sub-goal, the policy failed before getting further (it stalled
            # there, or dropped the object): this correction goes on to the next sub-goal,
            # as a person would take the robot past the part it keeps failing.
            self.subgoal_level = self.expert.next_subgoal(max(PROGRESS[self.phase], self.reached))
            self.subgoal = self.expert.subgoals.get(self.subgoal_level) if self.subgoal_level else None
        self.corrected += 1
        return action

    def past_critical_part(self) -> bool:
        """Whether this correction has taken the task past the phase it took over in (the
        grasp made again after a drop, say): from there, agreement may hand back."""
        return PROGRESS[self.expert.phase] > PROGRESS[self.phase]

    def should_hand_back(self, obs: dict[str, np.ndarray], policy_action: np.ndarray, reward: float) -> bool:
        rule = self.rule
        _, intended = self._plan(obs)
        self._progressed(reward)  # what the expert achieves is the bar the policy's progress is measured by
        self.agreeing = self.agreeing + 1 if agrees(policy_action, intended, rule.agree) else 0
        if not rule.hand_back:
            return False
        if self.subgoal_level is not None and self.expert.reached(self.subgoal_level):
            self.handed_back = "subgoal"
            self.reached = self.subgoal_level
        elif self.agreeing >= rule.agree_steps and (rule.agree_mid_recovery or self.past_critical_part()):
            self.handed_back, self.reached = "agreement", 0
        elif rule.max_correction is not None and self.corrected >= rule.max_correction:
            self.handed_back, self.reached = "cap", 0
        else:
            return False
        self.correcting = False
        self._planned_for = None  # watching again: the next plan starts from the state
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
