"""Human operators at an input device: ``Operator`` (the device, sir's keys, the real-time
clock) and ``HumanActor``, recording demonstrations. The operator who takes over from a
policy and hands back, ``sir.dagger.corrector.HumanCorrector``, builds on ``Operator``.

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


class Operator:
    """What a demonstrating and a correcting operator share: the device (one of
    ``sir.envs.devices.DEVICES``) with sir's keys, the real-time clock, and the episode count."""

    keys_used: tuple[str, ...] = ()

    def __init__(self, device: str, env: Any):
        self.teleop = Teleoperator(device, env, {name: KEYS[name][0] for name in self.keys_used})
        self.keys = self.teleop.keys
        # in the layout of the table robosuite's device has just printed
        shown_keys = [*(KEYS[name][1:] for name in self.keys_used), ("Ctrl+c", "stop, keeping the episodes recorded")]
        for shown, info in shown_keys:
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


class HumanActor(Operator):
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
