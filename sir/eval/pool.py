"""Where evaluation envs live: worker processes (one per core by default) or the main process.

Both answer the same protocol (see ``sir.eval.worker``). A pool of worker processes is kept
between evaluations, since starting one (importing robosuite, building envs) takes seconds
and training evaluates many times; it is closed when the program exits.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import time
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from sir.eval.worker import Command, Event, SlotEnvs, Workers, handle, worker_main


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def _context() -> Any:
    # Fork would copy the main process's torch threads and any GL context into the workers,
    # neither of which survives it. A fork server preloads robosuite once, so each worker
    # (and each replacement of a dead one) starts without paying for that import again.
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["sir.eval.worker", "robosuite"])
        return ctx
    return multiprocessing.get_context("spawn")


class WorkerPool(Workers):
    """``size`` worker processes, numbered 0 to size - 1. A worker serves whatever slots the
    commands sent to it name (the engine keeps each lane's slots on one worker, lane l on
    worker l % the workers it uses); it holds their envs."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.size = size
        self.warm: set[Any] = set()  # EnvKeys its workers hold envs of (see rollout.plan_lanes)
        self._ctx = _context()
        self._procs: list[Any] = [None] * size
        self._conns: list[Any] = [None] * size
        for index in range(size):
            self._start(index)

    def _start(self, index: int) -> None:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=worker_main, args=(child,), name=f"sir-eval-worker-{index}", daemon=True)
        proc.start()
        child.close()
        self._procs[index], self._conns[index] = proc, parent

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs]

    def send(self, index: int, commands: list[Command]) -> None:
        try:
            self._conns[index].send(commands)
        except (BrokenPipeError, OSError):
            pass  # the worker is dead; receive() reports it through its sentinel

    def receive(self, timeout: float | None = None) -> list[Event]:
        conns = {conn: i for i, conn in enumerate(self._conns)}
        sentinels = {proc.sentinel: i for i, proc in enumerate(self._procs)}
        events: list[Event] = []
        dead: set[int] = set()
        for ready in wait([*conns, *sentinels], timeout):
            if ready in sentinels:
                dead.add(sentinels[ready])
                continue
            index = conns[ready]
            try:
                while True:
                    events.append(Event(index, ready.recv()))
                    if not ready.poll():
                        break
            except (EOFError, OSError):
                dead.add(index)
        for index in sorted(dead):
            proc = self._procs[index]
            proc.join(timeout=5)
            if proc.is_alive():  # closed its pipe yet lingers: not a worker to trust
                proc.kill()
                proc.join(timeout=5)
            events.append(Event(index, None, proc.exitcode))
        return events

    def replace(self, index: int) -> None:
        """Start a fresh worker in place of a dead one; it builds its envs on first need."""
        proc = self._procs[index]
        if proc.is_alive():
            proc.kill()
        proc.join()
        self._conns[index].close()
        self._start(index)

    def dead(self) -> list[int]:
        return [i for i, proc in enumerate(self._procs) if not proc.is_alive()]

    def stop(self, graceful: bool) -> None:
        """Stop every worker and wait for it, so none is left an orphan."""
        if graceful:
            for conn in self._conns:
                try:
                    conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
            _join_all(self._procs, 3)
        # Every worker is signalled before any is waited for, and no wait is unbounded: a
        # Ctrl-C must end the program in seconds, whatever state a worker is in.
        for stop, patience in ((lambda p: p.terminate(), 2), (lambda p: p.kill(), 5)):
            alive = [proc for proc in self._procs if proc.is_alive()]
            for proc in alive:
                stop(proc)
            _join_all(alive, patience)
        for conn in self._conns:
            conn.close()


def _join_all(procs: list[Any], timeout: float) -> None:
    """Wait up to ``timeout`` seconds in all for ``procs`` to exit."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.join(timeout=max(0.0, deadline - time.monotonic()))


class InProcess:
    """The slots run in the calling process, one after another (``workers=1``)."""

    size = 1
    pids: list[int] = []
    closed = False

    def __init__(self) -> None:
        self.envs = SlotEnvs()
        self.warm: set[Any] = set()
        self._pending: list[Event] = []

    def send(self, index: int, commands: list[Command]) -> None:
        # Resets seed NumPy's global RNG; the caller's (e.g. the trainer's) stream is put back.
        saved = np.random.get_state()
        try:
            self._pending.append(Event(0, handle(self.envs, commands)))
        finally:
            np.random.set_state(saved)

    def receive(self, timeout: float | None = None) -> list[Event]:
        events, self._pending = self._pending, []
        return events

    def replace(self, index: int) -> None:
        raise RuntimeError("the in-process evaluator has no worker to replace")

    def revive(self) -> int:
        return 0

    def close(self, graceful: bool = True) -> None:
        self.envs.close()


_shared: dict[str, Any] = {}


def shared_workers(workers: int, backend: str = "local", ray_address: str | None = None) -> Any:
    """The pool kept for this process's evaluations: in-process for ``workers`` <= 1, else
    a pool of at least ``workers`` processes (a larger one is kept and partly used, so
    evaluations of different sizes do not restart workers; a smaller one is replaced).
    ``backend`` "ray": at least ``workers`` Ray actors on the cluster at ``ray_address``."""
    if backend == "ray":
        from sir.eval.cluster import RayPool

        pool = _shared.get("ray")
        if pool is not None and (pool.closed or pool.size < workers):
            pool.close()
            pool = None
        if pool is None:
            pool = _shared["ray"] = RayPool(workers, ray_address or "auto")
        else:
            pool.revive()
        return pool
    if workers <= 1:
        if "local" not in _shared:
            _shared["local"] = InProcess()
        return _shared["local"]
    pool = _shared.get("pool")
    if pool is not None and (pool.closed or pool.size < workers):
        pool.close()
        pool = None
    if pool is None:
        pool = _shared["pool"] = WorkerPool(workers)
    else:
        pool.revive()
    return pool


def discard(pool: WorkerPool | InProcess, graceful: bool = False) -> None:
    """Close ``pool`` after an evaluation that ended abnormally; its workers may still be
    busy with commands nobody will read, so the next evaluation starts fresh ones."""
    pool.close(graceful=graceful)
    for name, shared in list(_shared.items()):
        if shared is pool:
            del _shared[name]


def discard_ray_pool() -> None:
    """Close this process's Ray actors, if it keeps any, so the next Ray evaluation starts
    fresh ones: before the cluster they run on goes."""
    pool = _shared.get("ray")
    if pool is not None:
        discard(pool)


@atexit.register
def close_shared() -> None:
    for pool in list(_shared.values()):
        pool.close()
    _shared.clear()
