"""Evaluation envs on a Ray cluster: each worker is a Ray actor holding a ``SlotEnvs``, built
from the EnvSpecs the commands carry, and answering the protocol of ``sir.eval.worker``
(the same messages as a local worker process; ``sir.eval.engine`` cannot tell them apart).
So waves, seeds and per-episode results are those of local workers; an actor that dies
(its node lost, its process killed) is replaced and its waves re-run, as a dead local
worker is.

sir's own code travels with the job (Ray's ``py_modules``): the nodes need the rest of the
stack only (``pip install -r requirements.lock``), the same on every node. Ray is imported
only here and only when the Ray backend is asked for.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sir.errors import UserError
from sir.eval.worker import Workers

if TYPE_CHECKING:
    from sir.eval.worker import Command, Event, Reply

EVAL_BACKENDS = ("local", "ray")
# A new actor that the cluster has not placed in this long waits for CPUs others hold.
ACTOR_START_LIMIT_S = 120.0
# Environment the actors need to build envs the way this machine does (offscreen GL).
_FORWARDED_ENV = ("MUJOCO_GL", "PYOPENGL_PLATFORM", "EGL_DEVICE_ID")


def resolve_address(address: str) -> str:
    """The head's host:port for ``--ray-address`` (auto: RAY_ADDRESS, else the cluster
    ``ray start`` began on this machine); refused in one sentence when no cluster answers."""
    from ray._private.services import canonicalize_bootstrap_address

    refusal = (f"--eval-backend ray found no Ray cluster at --ray-address {address}; start one (`ray start --head`, "
               "see docs/evaluation.md) or pass the head's HOST:PORT.")
    if address.startswith("ray://"):
        return address  # Ray Client: ray.init reports an unreachable server itself
    try:
        resolved = canonicalize_bootstrap_address(address)
    except Exception as err:  # no cluster recorded on this machine, or an address Ray cannot parse
        raise UserError(refusal) from err
    if not resolved:
        raise UserError(refusal)
    host, _, port = resolved.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as err:
        raise UserError(refusal) from err
    return resolved


def connect(address: str) -> None:
    """Join the cluster at ``address`` as a driver (once a process)."""
    import ray

    if ray.is_initialized():
        return
    resolved = resolve_address(address)
    import sir

    runtime_env = {"py_modules": [str(Path(sir.__file__).parent)],
                   "env_vars": {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}}
    try:
        ray.init(address=resolved, runtime_env=runtime_env, logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, RuntimeError) as err:
        raise UserError(f"--eval-backend ray could not join the Ray cluster at {resolved}: "
                        f"{str(err).strip().splitlines()[0]}") from err


def cluster_cpus(address: str) -> int:
    import ray

    connect(address)
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


class EnvActor:
    """The body of one Ray actor: a worker's envs, served one message at a time (a Ray
    actor runs its calls in the order one caller sent them)."""

    def __init__(self) -> None:
        from sir.eval.worker import SlotEnvs

        self.envs = SlotEnvs()

    def pid(self) -> int:
        return os.getpid()

    def handle(self, commands: list[Command]) -> list[Reply]:
        from sir.eval.worker import handle

        return handle(self.envs, commands)


class RayPool(Workers):
    """``size`` Ray actors numbered 0 to size - 1, one CPU each, answering as WorkerPool does."""

    def __init__(self, size: int, address: str):
        import ray

        connect(address)
        self._ray = ray
        self._remote = ray.remote(num_cpus=1, max_restarts=0)(EnvActor)
        self.size = size
        self.warm: set[Any] = set()  # EnvKeys its actors hold envs of
        self._address = address
        self._actors: list[Any] = [self._remote.remote() for _ in range(size)]
        self._pending: dict[Any, int] = {}  # reply reference -> actor
        self._pids = [self._started(actor) for actor in self._actors]

    def _started(self, actor: Any) -> int:
        """The pid of a new actor, once the cluster has placed it: refused in one sentence
        when no CPU frees up for it (other jobs hold the cluster's CPUs)."""
        try:
            return self._ray.get(actor.pid.remote(), timeout=ACTOR_START_LIMIT_S)
        except self._ray.exceptions.GetTimeoutError as err:
            self.close()
            free = self._ray.available_resources().get("CPU", 0)
            raise UserError(f"The Ray cluster at {self._address} gave no CPU to an env worker in "
                            f"{ACTOR_START_LIMIT_S:.0f} s ({free:g} free of "
                            f"{self._ray.cluster_resources().get('CPU', 0):g}); "
                            "free some, or ask for fewer workers.") from err

    @property
    def pids(self) -> list[int]:
        """The actors' process ids (on their own nodes)."""
        return list(self._pids)

    def send(self, index: int, commands: list[Command]) -> None:
        self._pending[self._actors[index].handle.remote(commands)] = index

    def receive(self, timeout: float | None = None) -> list[Event]:
        from sir.eval.worker import Event

        if not self._pending:
            time.sleep(timeout or 0)
            return []
        refs = list(self._pending)
        ready, _ = self._ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:  # and whatever else is in by now, in the order sent
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        events, dead = [], {}
        for ref in ready:
            index = self._pending.pop(ref, None)
            if index is None or index in dead:
                continue
            try:
                events.append(Event(index, self._ray.get(ref)))
            except self._ray.exceptions.RayActorError as err:
                dead[index] = _cause(err)
        for index, cause in dead.items():
            for ref in [r for r, i in self._pending.items() if i == index]:
                del self._pending[ref]  # the dead actor's other answers never come
            events.append(Event(index, None, cause=cause))
        return events

    def replace(self, index: int) -> None:
        self._ray.kill(self._actors[index], no_restart=True)
        for ref in [r for r, i in self._pending.items() if i == index]:
            del self._pending[ref]
        self._actors[index] = self._remote.remote()
        self._pids[index] = self._started(self._actors[index])

    def dead(self) -> list[int]:
        """The actors that died since the last evaluation (the living ones' pids refreshed)."""
        dead = []
        for index, actor in enumerate(self._actors):
            try:
                self._pids[index] = self._ray.get(actor.pid.remote(), timeout=60)
            except (self._ray.exceptions.RayActorError, self._ray.exceptions.GetTimeoutError):
                dead.append(index)
        return dead

    def stop(self, graceful: bool) -> None:
        self._pending.clear()
        for actor in self._actors:
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:  # the cluster may be gone already; nothing is left to stop
                pass


def _cause(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return "Ray actor died" + (f" ({text[0][:200]})" if text else "")
