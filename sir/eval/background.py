"""Evaluations beside training: a model folder (a snapshot of the weights and processors)
rolled out in a process of its own while the trainer goes on.

A process, not a thread: rollouts swap torch's global RNG state around each policy call
and run torch on one thread (``sir.eval.rollout``); in a thread of the trainer both would
reach into the training's own state. The process loads the snapshot with the loader every
model folder is read with, so it scores exactly what ``sir.eval.evaluate`` would, keeps its
env workers (local or Ray) between evaluations, and answers each job with its metrics or
with the ``WorkerError`` that ended it.

``BackgroundEvaluator`` runs one evaluation at a time and keeps at most one waiting behind
it: a newer job replaces a waiting older one (what a run that evaluates faster than it
can roll out needs is the newest model's score, not a backlog).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import multiprocessing
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any, NamedTuple

from sir.eval.worker import WorkerError, describe_exit


class EvalJob(NamedTuple):
    """Roll out the model folder ``model`` (written at training step ``step``); ``settings``
    are ``evaluate_policy``'s keyword arguments (seed, workers, backend, video_path, ...)."""

    step: int
    model: str
    device: str
    episodes: int
    max_steps: int | None
    settings: dict[str, Any]


class Outcome(NamedTuple):
    step: int
    model: str
    metrics: dict[str, Any] | None
    error: WorkerError | None = None


def _serve(conn: Any, parent: int) -> None:
    """The evaluation process: answer jobs until told to stop or the trainer is gone."""
    # Ctrl-C reaches the whole process group: the trainer decides how this process stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # runs atexit: the env workers close
    _die_with_parent()
    import torch

    from sir.eval.rollout import evaluate_policy
    from sir.policies.checkpoint import load_checkpoint
    from sir.runtime import quiet_libraries

    quiet_libraries()
    torch.set_num_threads(1)  # as evaluate_policy does: the cores are for training and simulators
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None or os.getppid() != parent:
            return
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # lerobot prints where it loads from
                policy, pre, post, spec, _ = load_checkpoint(job.model, device=job.device)
            metrics = evaluate_policy(policy, pre, post, spec, job.episodes, job.max_steps, **job.settings)
            outcome = Outcome(job.step, job.model, metrics)
            del policy, pre, post
        except Exception as err:
            outcome = Outcome(job.step, job.model, None, WorkerError.of(err))
        try:
            conn.send(outcome)
        except (BrokenPipeError, OSError):
            return


def _die_with_parent() -> None:
    """Linux: have the kernel send SIGTERM when the trainer dies (a SIGKILL included), so a
    killed run leaves no evaluation rolling on for minutes."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (AttributeError, OSError):
        pass


@dataclass
class BackgroundEvaluator:
    """One evaluation process; ``submit`` jobs, ``poll`` or ``wait`` for their outcomes (in
    the order they were submitted, skipped ones left out)."""

    running: EvalJob | None = None
    waiting: EvalJob | None = None
    _proc: Any = None
    _conn: Any = None

    def start(self) -> BackgroundEvaluator:
        ctx = multiprocessing.get_context("spawn")  # torch and CUDA do not survive a fork
        parent, child = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(target=_serve, args=(child, os.getpid()), name="sir-evaluator", daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        return self

    @property
    def pending(self) -> list[EvalJob]:
        """The jobs whose outcome has not come back: the running one, then the waiting one."""
        return [job for job in (self.running, self.waiting) if job is not None]

    def submit(self, job: EvalJob) -> EvalJob | None:
        """Run ``job`` now if nothing runs, else keep it waiting; returns the waiting job it
        replaced (whose model folder the caller may now remove), if any."""
        if self._proc is None:
            self.start()
        if self.running is None:
            self._send(job)
            return None
        replaced, self.waiting = self.waiting, job
        return replaced

    def _send(self, job: EvalJob) -> None:
        self.running = job
        try:
            self._conn.send(job)
        except (BrokenPipeError, OSError):
            pass  # the process is dead: the next poll reports it

    def poll(self, timeout: float = 0.0) -> list[Outcome]:
        """Outcomes that are in (within ``timeout`` seconds for the first). After a failed
        one nothing more runs: the caller ends the run."""
        outcomes: list[Outcome] = []
        while self.running is not None:
            if self._conn.poll(timeout):
                try:
                    outcome = self._conn.recv()
                except (EOFError, OSError):
                    outcome = self._death()
            elif not self._proc.is_alive():
                outcome = self._death()
            else:
                break
            outcomes.append(outcome)
            timeout = 0.0
            self.running = None
            if outcome.error is not None:
                break
            if self.waiting is not None:
                job, self.waiting = self.waiting, None
                self._send(job)
        return outcomes

    def wait(self) -> list[Outcome]:
        """Every pending job's outcome (stops at the first that failed)."""
        outcomes: list[Outcome] = []
        while self.running is not None:
            outcomes += self.poll(timeout=1.0)
            if outcomes and outcomes[-1].error is not None:
                break
        return outcomes

    def _death(self) -> Outcome:

        self._proc.join(timeout=5)
        job = self.running
        message = f"the evaluation process died ({describe_exit(self._proc.exitcode)})"
        return Outcome(job.step, job.model, None, WorkerError(False, "RuntimeError", message, ""))

    def close(self) -> None:
        """Stop the process without waiting for its evaluation (its outcome is dropped)."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        if proc.is_alive():
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            if self.running is not None:  # mid-evaluation: it would only see the stop afterwards
                proc.terminate()
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
        self._conn.close()
        self.running = self.waiting = None


_kept: list[BackgroundEvaluator] = []


def kept_evaluator() -> BackgroundEvaluator:
    """The evaluation process kept for this process's runs: started once, so the training
    runs of one program (DAgger rounds, sequential stages) share its start and its envs."""
    if not _kept:
        _kept.append(BackgroundEvaluator())
    return _kept[0]


def discard_evaluator(evaluator: BackgroundEvaluator) -> None:
    """Stop ``evaluator`` (after a run that ended abnormally: it may be mid-evaluation)."""
    evaluator.close()
    if evaluator in _kept:
        _kept.remove(evaluator)


def discard_kept_evaluator() -> None:
    """Stop the kept evaluation process, if one runs, so the next run starts one that sees
    this process's environment as it is then (``RAY_AUTH_MODE``, say)."""
    for evaluator in list(_kept):
        discard_evaluator(evaluator)


@atexit.register
def _close_kept() -> None:
    for evaluator in _kept:
        evaluator.close()
    _kept.clear()


def spare_cores(device: str, dataloader_workers: int) -> int:
    """Cores this process may run on beyond those training keeps busy: torch's threads on a
    CPU (one on an accelerator, for the Python loop) and the DataLoader's workers."""
    import torch

    from sir.eval.pool import default_workers

    training = (torch.get_num_threads() if device == "cpu" else 1) + dataloader_workers
    return default_workers() - training
