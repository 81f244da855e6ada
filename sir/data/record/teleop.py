"""Human operators as actors: demonstrations driven with an input device, and interventions in
which the operator takes over from a policy and hands back.

The operator drives in real time at the env's control rate, watching robosuite's MuJoCo
window. Beside the device's own keys (robosuite prints them), sir listens for two:

- ``q`` (robosuite's reset key; a SpaceMouse's right button too) discards the episode under way;
- ``Enter`` takes over from the policy, and hands control back, as often as the operator likes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from sir.data.labels import label_demo
from sir.data.record.runner import Episode, Frame
from sir.envs.devices import Teleoperator, open_window

# sir's keys: name -> (pynput key, as the console shows it, what it does)
KEYS = {
    "discard": ("q", "q", "discard the episode under way"),
    "takeover": ("enter", "Enter", "take over from the policy / hand control back"),
}


class RealTime:
    """Holds a loop to the simulation clock, as robosuite's demonstration script holds it to
    its frame rate, so the operator drives at the speed the data is recorded at. A loop that
    falls behind (a slow window) goes on from where it is rather than rushing to catch up."""

    def __init__(self) -> None:
        self.origin: float | None = None

    def reset(self) -> None:
        self.origin = None

    def wait(self, env: Any) -> None:
        """Sleep until the wall clock reaches the env's simulated time (one control step a call)."""
        now = time.monotonic()
        if self.origin is None or now - self.origin > env.cur_time + env.control_timestep:
            self.origin = now - env.cur_time
        time.sleep(max(0.0, self.origin + env.cur_time - now))


class _Operator:
    """What both roles share: the device (one of ``sir.envs.devices.DEVICES``) with sir's
    keys, the real-time clock, and the episode count."""

    keys_used: tuple[str, ...] = ()

    def __init__(self, device: str, env: Any):
        self.teleop = Teleoperator(device, env, {name: KEYS[name][0] for name in self.keys_used})
        self.keys = self.teleop.keys
        # in the layout of the table robosuite's device has just printed
        for shown, info in [*(KEYS[name][1:] for name in self.keys_used), ("Ctrl+c", "stop, keeping the episodes recorded")]:
            print(f"{shown:<30}\t{info}")
        print(flush=True)
        self.clock = RealTime()
        self.episodes = 0
        self.discarded = False

    def start_episode(self, env: Any, what: str) -> None:
        self.env = env
        open_window(env)
        self.teleop.start()
        self.keys.clear()
        self.clock.reset()
        self.discarded = False
        self.episodes += 1
        print(f"Episode {self.episodes}: {what}", flush=True)

    def read(self) -> np.ndarray | None:
        """The operator's command this step, or None (and ``discarded``) when they discard the episode."""
        action = self.teleop.action()
        if action is None or self.keys.take("discard"):
            self.discarded = True
            return None
        return action

    def close(self) -> None:
        self.teleop.close()


class HumanActor(_Operator):
    """An operator recording a demonstration: every action is theirs."""

    name = "operator"
    keys_used = ("discard",)

    def reset(self, env: Any) -> None:
        self.start_episode(env, "drive the robot (q discards the episode).")

    def act(self, obs: dict[str, np.ndarray], features: Frame, reward: float) -> np.ndarray | None:
        self.clock.wait(self.env)
        return self.read()

    def finish(self, episode: Episode) -> None:
        label_demo(episode.frames, episode.success)


class HumanCorrector(_Operator):
    """An operator watching a policy (a ``sir.data.record.runner.Corrector`` for ``sir.dagger.record``):
    the takeover key hands control to the operator and, pressed again, back to the policy.

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
