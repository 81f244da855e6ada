"""The rollout scheduler: waves of episodes stepped in lockstep, policy batched across a wave.

Why waves: a lerobot policy keeps per-episode state on its instance (ACT's and Diffusion's
action queues, Diffusion's observation history) and, given a batch, keeps it batched: the
queue holds (B, action_dim) actions, all refilled at the same step. So the envs that share
a policy instance must start their episodes together. A wave is a fixed group of episodes
(episode i always in the same wave, at the same row, whatever the number of workers, so
results do not depend on it); its envs step in lockstep; a finished env keeps its row with
its own last observation and its actions are dropped, so every env's actions come from
its own observations alone. The next wave starts after a ``reset()``.

Why lanes: a lane runs one wave after another with its own policy instance (weights
shared) on the same envs, each reset softly to its next episode's seed (a reused env starts
exactly where a new one would), so an evaluation builds one env per row of a lane and no
more: building a Robosuite env costs as much as a hundred steps. Lanes wider than one
worker's share are spread, their envs dealt out over the workers; narrower lanes keep all
their envs in one worker, and workers then never wait for each other (a worker that the
OS pauses holds up only its own lanes).
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sir.eval.batch import RngStream, clone_policy, features_to_batch, policy_device, wave_seed
from sir.eval.worker import (
    FAILURE_ACTION,
    Command,
    EnvKey,
    Event,
    Release,
    Start,
    Step,
    StepReport,
    WorkerError,
)

# A wave whose worker keeps dying is re-run this many times; then the episodes on that
# worker are failed, so one episode that crashes the simulator cannot stall an evaluation.
MAX_WAVE_RESTARTS = 2
# No answer from any worker for this long means something is stuck, not slow.
SILENCE_LIMIT_S = 600.0

_tokens = itertools.count(1)


@contextmanager
def _ctrl_c_noted() -> Iterator[Callable[[], bool]]:
    """Note Ctrl-C while the engine runs, so that its loop stops even if the KeyboardInterrupt
    the handler raises is lost: Python prints and swallows one raised inside a finalizer or a
    callback, and a policy or library may catch it; the evaluation would then run on, for
    minutes, with its workers. Only Python's default handler is replaced (a caller's own
    stays), and only from the main thread, where signal handlers live."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield lambda: False
        return
    seen: list[int] = []

    def on_sigint(signum: int, frame: Any) -> None:
        seen.append(signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield lambda: bool(seen)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass(frozen=True)
class PlannedEpisode:
    order: int  # position in the evaluation (and in its per_episode list)
    task: str
    instruction: str
    episode: int  # index within its task: it starts from the state of ``seed``
    seed: int
    max_steps: int
    key: EnvKey
    record: bool


@dataclass
class _Slot:
    plan: PlannedEpisode
    live: bool = True
    started: bool = False
    features: dict[str, np.ndarray] | None = None
    steps: int = 0
    reward: float = 0.0
    success: bool = False
    failure: str | None = None
    frames: list[np.ndarray] = field(default_factory=list)

    def finish(self, success: bool, failure: str | None) -> None:
        self.live = False
        self.success = success
        self.failure = failure

    def result(self) -> dict[str, Any]:
        p = self.plan
        return {"episode": p.episode, "seed": p.seed, "success": self.success, "reward": self.reward,
                "length": self.steps, "failure": self.failure, "task": p.task}


@dataclass
class _Lane:
    index: int
    policy: Any
    wave: int | None = None
    token: int = 0
    slots: list[_Slot] = field(default_factory=list)
    awaiting: set[int] = field(default_factory=set)
    restarts: int = 0
    doomed: dict[int, str] = field(default_factory=dict)
    rng: RngStream | None = None


@dataclass
class EngineResult:
    episodes: list[dict[str, Any]]
    frames: dict[int, list[np.ndarray]]
    worker_restarts: int
    rollout_time_s: float


class Engine:
    """Runs ``waves`` (lists of planned episodes) with ``lanes`` policy lanes on the first
    ``n_workers`` workers of ``workers``. Lane l lives on worker l % n_workers; with
    ``spread``, each lane's envs are dealt out over the workers instead (slot s on worker
    s % n_workers), so a wave wider than one worker's share needs fewer envs a worker."""

    def __init__(
        self,
        policy: Any,
        preprocessor: Callable,
        postprocessor: Callable,
        workers: Any,
        waves: list[list[PlannedEpisode]],
        lanes: int,
        seed: int,
        on_episodes: Callable[[int], None] | None = None,
        n_workers: int | None = None,
        spread: bool = False,
    ):
        self.preprocessor = preprocessor
        self.postprocessor = postprocessor
        self.workers = workers
        self.n_workers = min(n_workers or workers.size, workers.size)
        self.waves = waves
        self.spread = spread
        self.seed = seed
        self.on_episodes = on_episodes or (lambda n: None)
        self.width = max(len(w) for w in waves)
        self.device = policy_device(policy)
        policies = [policy]
        for _ in range(lanes - 1):
            try:
                policies.append(clone_policy(policy))
            except Exception:  # a policy that cannot be copied runs one lane: slower, still right
                break
        self.lanes = [_Lane(i, p) for i, p in enumerate(policies)]
        self.results: dict[int, dict[str, Any]] = {}
        self.frames: dict[int, list[np.ndarray]] = {}
        self.worker_restarts = 0

    # -- slots and workers -------------------------------------------------------------
    def _slot_id(self, lane: _Lane, pos: int) -> int:
        return lane.index * self.width + pos

    def _worker_of(self, lane: _Lane, pos: int) -> int:
        if self.spread:
            return self._slot_id(lane, pos) % self.n_workers
        return lane.index % self.n_workers

    def _send(self, lane: _Lane, commands: list[Command]) -> None:
        by_worker: dict[int, list[Command]] = {}
        for command in commands:
            by_worker.setdefault(self._worker_of(lane, command.slot % self.width), []).append(command)
        for worker, batch in by_worker.items():
            self.workers.send(worker, batch)

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> EngineResult:
        with _ctrl_c_noted() as interrupted:
            return self._run(interrupted)

    def _run(self, interrupted: Callable[[], bool]) -> EngineResult:
        start = time.perf_counter()
        for worker in range(self.n_workers):
            self.workers.send(worker, [Release()])
        pending = deque(range(len(self.waves)))
        for lane in self.lanes:
            self._assign(lane, pending)
        quiet_since = time.perf_counter()
        while any(lane.wave is not None for lane in self.lanes):
            if interrupted():
                raise KeyboardInterrupt
            for lane in self.lanes:
                # A lane whose answers are all in moves on at once; only then wait for workers.
                while lane.wave is not None and not lane.awaiting:
                    if any(slot.live for slot in lane.slots):
                        self._step(lane)
                    else:
                        self._finish_wave(lane)
                        self._assign(lane, pending)
            if not any(lane.wave is not None for lane in self.lanes):
                break
            events = self.workers.receive(timeout=1.0)
            if events:
                quiet_since = time.perf_counter()
            elif time.perf_counter() - quiet_since > SILENCE_LIMIT_S:
                raise RuntimeError(f"no answer from the evaluation workers in {SILENCE_LIMIT_S:.0f} s")
            for event in events:
                self._on_event(event)
        for lane in self.lanes:
            lane.policy.reset()
        episodes = [self.results[i] for i in sorted(self.results)]
        return EngineResult(episodes, self.frames, self.worker_restarts, time.perf_counter() - start)

    def _assign(self, lane: _Lane, pending: deque[int]) -> None:
        lane.wave = pending.popleft() if pending else None
        lane.restarts = 0
        lane.doomed = {}
        if lane.wave is not None:
            self._launch(lane)

    def _launch(self, lane: _Lane) -> None:
        """Start (or start again) the lane's wave from its episodes' initial states."""
        plans = self.waves[lane.wave]
        lane.token = next(_tokens)
        lane.policy.reset()
        lane.rng = RngStream(wave_seed(self.seed, lane.wave), self.device)
        lane.slots = [_Slot(plan) for plan in plans]
        commands: list[Command] = []
        lane.awaiting = set()
        for pos, slot in enumerate(lane.slots):
            if pos in lane.doomed:
                slot.finish(False, lane.doomed[pos])
                continue
            p = slot.plan
            commands.append(Start(self._slot_id(lane, pos), lane.token, p.key, p.seed, p.max_steps, p.record))
            lane.awaiting.add(pos)
        self._send(lane, commands)

    def _step(self, lane: _Lane) -> None:
        """One batched policy call for the lane's wave, and the step of every live env."""
        fallback = next(s.features for s in lane.slots if s.live)
        rows = [s.features if s.features is not None else fallback for s in lane.slots]
        batch = features_to_batch(rows, [s.plan.instruction for s in lane.slots])
        with torch.no_grad(), lane.rng.active():
            action = self.postprocessor(lane.policy.select_action(self.preprocessor(batch)))
        actions = action.detach().to("cpu", torch.float32).numpy()
        finite = np.isfinite(actions).all(axis=1)
        commands: list[Command] = []
        lane.awaiting = set()
        for pos, slot in enumerate(lane.slots):
            if not slot.live:
                continue
            if not finite[pos]:
                slot.finish(False, FAILURE_ACTION)
                continue
            commands.append(Step(self._slot_id(lane, pos), lane.token, actions[pos]))
            lane.awaiting.add(pos)
        self._send(lane, commands)

    def _finish_wave(self, lane: _Lane) -> None:
        for slot in lane.slots:
            self.results[slot.plan.order] = slot.result()
            if slot.plan.record:
                self.frames[slot.plan.order] = slot.frames
        self.on_episodes(len(lane.slots))

    # -- answers -----------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        if event.replies is None:
            self._on_death(event)
            return
        for reply in event.replies:
            lane_index = reply.slot // self.width
            if lane_index >= len(self.lanes) or reply.token != self.lanes[lane_index].token:
                continue  # an answer for a run of a wave that was started again
            report = reply.report
            if isinstance(report, WorkerError):
                raise report.exception()
            self._on_report(self.lanes[lane_index], reply.slot % self.width, report)

    def _on_report(self, lane: _Lane, pos: int, report: StepReport) -> None:
        slot = lane.slots[pos]
        lane.awaiting.discard(pos)
        if slot.started:
            slot.steps += 1
        slot.started = True
        slot.reward += report.reward
        if report.features is not None:
            slot.features = report.features
        if report.frame is not None:
            slot.frames.append(report.frame)
        if report.done:
            slot.finish(report.success, report.failure)

    def _on_death(self, event: Event) -> None:
        self.worker_restarts += 1
        if self.worker_restarts > 3 * self.n_workers + len(self.waves):
            raise RuntimeError(f"evaluation workers keep dying (last: {event.death()})")
        self.workers.replace(event.worker)
        for lane in self.lanes:
            if lane.wave is None:
                continue
            hit = [pos for pos, slot in enumerate(lane.slots)
                   if slot.live and self._worker_of(lane, pos) == event.worker]
            if not hit:
                continue
            lane.restarts += 1
            if lane.restarts > MAX_WAVE_RESTARTS:
                for pos in hit:
                    lane.doomed[pos] = f"worker process died ({event.death()})"
            self._launch(lane)
