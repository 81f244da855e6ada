"""The env side of an evaluation: Robosuite envs held per slot, reset to a seed, stepped, judged.

This module runs inside the worker processes (and in the main process when an evaluation
runs in-process). It imports no torch: workers stay light to start and keep every core
for the simulator.
"""

from __future__ import annotations

import json
import signal
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from sir.envs.factory import (
    check_success,
    make_env,
    observation_to_features,
    render_frame,
    reset_env,
)
from sir.envs.spec import EnvSpec
from sir.errors import UserError

FAILURE_ACTION = "non-finite action"
# NumPy's seed while robosuite builds an env. Fixed, not the evaluation seed, so that an
# episode's initial state is a function of its reset seed alone: seed s starts the same
# whatever evaluation (or --eval-seed) it belongs to.
ENV_BUILD_SEED = 0
FAILURE_OBSERVATION = "non-finite observation"

# MuJoCo answers a diverging simulation by resetting mjData and counting one of these
# warnings, so the state silently jumps back to the model's default pose: a failed episode.
_INSTABILITY_WARNINGS = ("mjWARN_BADQACC", "mjWARN_BADQPOS", "mjWARN_BADQVEL")


class EnvKey(NamedTuple):
    """What env a slot needs: the spec (as canonical JSON, so it hashes), the render camera
    for videos, and the seed NumPy's RNG holds while robosuite builds the model."""

    spec_json: str
    render_camera: str | None
    render_size: int
    build_seed: int

    @classmethod
    def make(cls, spec: EnvSpec | dict, render_camera: str | None, render_size: int, build_seed: int) -> EnvKey:
        data = spec.to_dict() if isinstance(spec, EnvSpec) else dict(spec)
        return cls(json.dumps(data, sort_keys=True), render_camera, int(render_size), int(build_seed))

    def spec(self) -> EnvSpec:
        return EnvSpec.from_dict(json.loads(self.spec_json))

    def served_by(self, other: EnvKey) -> bool:
        """Whether an env built for ``other`` can run this key's episodes: the same env, or
        this key renders nothing and ``other`` is the same env with a renderer."""
        if other == self:
            return True
        return self.render_camera is None and (other.spec_json, other.build_seed) == (self.spec_json, self.build_seed)


class StepReport(NamedTuple):
    """What the main process needs after a reset or a step: the policy's next features,
    the step's reward, whether the episode ended and why."""

    features: dict[str, np.ndarray] | None
    reward: float
    success: bool
    done: bool
    failure: str | None
    frame: np.ndarray | None


class WorkerError(NamedTuple):
    """An exception inside a worker that no episode outcome can absorb (e.g. the env cannot
    be built); the main process re-raises it, a UserError as the same one sentence."""

    user_error: bool
    kind: str  # the exception's type name
    message: str  # str() of the exception
    traceback: str

    @classmethod
    def of(cls, err: BaseException) -> WorkerError:
        return cls(isinstance(err, UserError), type(err).__name__, str(err), traceback.format_exc())

    def exception(self, what: str = "an evaluation worker") -> Exception:
        """The error to raise in the main process: a UserError as its one sentence."""
        if self.user_error:
            return UserError(self.message)
        return RuntimeError(f"{what} failed: {self.kind}: {self.message}\n{self.traceback}".rstrip())


# -- the protocol ------------------------------------------------------------------------
# Main -> worker: one list of commands a message; None ends the worker. Worker -> main: one
# list of Reply a message, one per Start or Step. The token names one run of a wave, so the
# main process can drop answers that belong to a run it has abandoned. Local worker
# processes and Ray actors answer the same messages (see sir.eval.pool).


class Start(NamedTuple):
    """Reset ``slot``'s env (bound on first need: a free one of the key, or a new one) to
    the initial state of ``seed``."""

    slot: int
    token: int
    key: EnvKey
    seed: int
    max_steps: int
    record: bool


class Step(NamedTuple):
    slot: int
    token: int
    action: np.ndarray


class Release(NamedTuple):
    """Unbind every slot's env (see ``SlotEnvs.release``); answers nothing."""


Command = Start | Step | Release


class Reply(NamedTuple):
    slot: int
    token: int
    report: StepReport | WorkerError


def build_env(key: EnvKey) -> Any:
    """An env for ``key``. Robosuite draws some model properties (Lift's cube size) from
    NumPy's global RNG when it builds the model, and soft resets keep them; seeding here
    makes every env of a key the same model, so seed + i means one initial state."""
    return make_env(key.spec(), render_camera=key.render_camera, render_size=key.render_size,
                    build_seed=key.build_seed)


@dataclass
class _Episode:
    key: EnvKey
    spec: EnvSpec
    max_steps: int
    record: bool
    rng: Any
    warnings: np.ndarray
    steps: int = 0


@dataclass
class SlotEnvs:
    """The envs of the slots one worker hosts. Envs are built on first need, kept between
    episodes and evaluations (building one takes seconds), and shared out by EnvKey."""

    _bound: dict[int, tuple[EnvKey, Any]] = field(default_factory=dict)
    _free: dict[EnvKey, list[Any]] = field(default_factory=dict)
    _episodes: dict[int, _Episode] = field(default_factory=dict)
    _specs: dict[str, EnvSpec] = field(default_factory=dict)

    def start(self, slot: int, key: EnvKey, seed: int, max_steps: int, record: bool) -> StepReport:
        env = self._env_for(slot, key)
        spec = self._specs.setdefault(key.spec_json, key.spec())
        obs = reset_env(env, seed)
        # Each episode keeps its own stream of NumPy's global RNG, so envs that share a
        # process (and take turns stepping) never draw from each other's sequence.
        episode = _Episode(key, spec, max_steps, record, np.random.get_state(), _warning_counts(env))
        self._episodes[slot] = episode
        return self._report(env, episode, obs, reward=0.0, env_done=False)

    def step(self, slot: int, action: np.ndarray) -> StepReport:
        episode = self._episodes[slot]
        key, env = self._bound[slot]
        np.random.set_state(episode.rng)
        try:
            obs, reward, env_done, _ = env.step(np.asarray(action, dtype=np.float64))
        except Exception as err:  # MuJoCo and robosuite raise assorted types on a broken state
            self._discard(slot)
            episode.steps += 1
            return StepReport(None, 0.0, False, True, f"simulation error: {type(err).__name__}: {err}", None)
        episode.rng = np.random.get_state()
        episode.steps += 1
        unstable = _instability(env, episode.warnings)
        if unstable is not None:
            self._discard(slot)
            return StepReport(None, float(reward), False, True, f"unstable simulation: {unstable}", None)
        return self._report(env, episode, obs, float(reward), bool(env_done))

    def _report(self, env: Any, episode: _Episode, obs: dict, reward: float, env_done: bool) -> StepReport:
        features = observation_to_features(obs, episode.spec)
        if not all(np.all(np.isfinite(v)) for v in features.values() if v.dtype.kind == "f"):
            return StepReport(None, reward, False, True, FAILURE_OBSERVATION, None)
        success = check_success(env)
        done = success or env_done or episode.steps >= episode.max_steps
        frame = render_frame(env, episode.key.render_camera, episode.key.render_size) if episode.record else None
        return StepReport(features, reward, success, done, None, frame)

    def env_of(self, slot: int) -> Any:
        """The robosuite env bound to ``slot`` (started and not released)."""
        return self._bound[slot][1]

    def _env_for(self, slot: int, key: EnvKey) -> Any:
        bound = self._bound.get(slot)
        if bound is not None:
            if key.served_by(bound[0]):
                return bound[1]
            self._free.setdefault(bound[0], []).append(bound[1])
        have = next((k for k in (key, *self._free) if self._free.get(k) and key.served_by(k)), None)
        if have is None:
            have, env = key, build_env(key)
        else:
            env = self._free[have].pop()
        self._bound[slot] = (have, env)
        return env

    def release(self) -> None:
        """Unbind every slot's env (kept for reuse): a new evaluation may number its slots
        differently, and its slots should reuse these envs rather than build more."""
        for key, env in self._bound.values():
            self._free.setdefault(key, []).append(env)
        self._bound.clear()
        self._episodes.clear()

    def _discard(self, slot: int) -> None:
        """Drop a slot's env after a simulation fault: its state is not to be trusted again."""
        key, env = self._bound.pop(slot)
        _close(env)

    def close(self) -> None:
        for _, env in self._bound.values():
            _close(env)
        for envs in self._free.values():
            for env in envs:
                _close(env)
        self._bound.clear()
        self._free.clear()


def _warning_counts(env: Any) -> np.ndarray:
    import mujoco

    data = env.sim.data._data
    return np.array([data.warning[getattr(mujoco.mjtWarning, w)].number for w in _INSTABILITY_WARNINGS])


def _instability(env: Any, baseline: np.ndarray) -> str | None:
    data = env.sim.data._data
    if not (np.all(np.isfinite(data.qpos)) and np.all(np.isfinite(data.qvel))):
        return "NaN or inf in the MuJoCo state"
    grown = _warning_counts(env) > baseline
    if grown.any():
        return f"MuJoCo warning {_INSTABILITY_WARNINGS[int(np.argmax(grown))]}"
    return None


def _close(env: Any) -> None:
    try:
        env.close()
    except Exception:  # a broken env may fail to close; it is being thrown away anyway
        pass


class Event(NamedTuple):
    """Replies from a worker, or (``replies`` None) the news that it died."""

    worker: int
    replies: list[Reply] | None
    exitcode: int | None = None
    cause: str | None = None  # how it died, where an exit code does not say (a Ray actor)

    def death(self) -> str:
        return self.cause or describe_exit(self.exitcode)


class Workers(ABC):
    """What the pools answering this protocol share (``sir.eval.pool.WorkerPool``'s processes,
    ``sir.eval.cluster.RayPool``'s Ray actors): workers that died are replaced between
    evaluations, and a pool is stopped once."""

    closed = False

    @abstractmethod
    def dead(self) -> list[int]: ...  # the workers that are gone

    @abstractmethod
    def replace(self, index: int) -> None: ...

    @abstractmethod
    def stop(self, graceful: bool) -> None: ...

    def revive(self) -> int:
        """Replace the workers that died while the pool sat idle; how many were replaced."""
        dead = self.dead()
        for index in dead:
            self.replace(index)
        return len(dead)

    def close(self, graceful: bool = True) -> None:
        """Stop every worker, so none outlives the evaluation (a second call does nothing)."""
        if self.closed:
            return
        self.closed = True
        self.stop(graceful)


def describe_exit(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def handle(envs: SlotEnvs, commands: list[Command]) -> list[Reply]:
    replies = []
    for command in commands:
        if isinstance(command, Release):
            envs.release()
            continue
        try:
            if isinstance(command, Start):
                report = envs.start(command.slot, command.key, command.seed, command.max_steps, command.record)
            elif isinstance(command, Step):
                report = envs.step(command.slot, command.action)
            else:
                raise TypeError(f"unknown command {command!r}")
        except Exception as err:
            report = WorkerError.of(err)
        replies.append(Reply(command.slot, command.token, report))
    return replies


def worker_main(conn: Any) -> None:
    """A worker process: serve commands until told to stop or the main process goes away."""
    # Ctrl-C reaches the whole process group; the main process decides how workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    envs = SlotEnvs()
    try:
        while True:
            try:
                commands = conn.recv()
            except (EOFError, OSError):
                break  # the main process is gone: exit rather than linger as an orphan
            if commands is None:
                break
            try:
                conn.send(handle(envs, commands))
            except (BrokenPipeError, OSError):
                break
    finally:
        envs.close()
