"""Roll a policy out in the Robosuite envs its EnvSpecs describe, and measure it.

``evaluate_policy`` scores one env; ``evaluate_tasks`` several (EnvSpecs that differ), with
metrics per task and overall. Episodes run in worker processes (one per core by default)
and the policy is batched across them in this process; see ``sir.eval.engine``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sir import seeds
from sir.envs.spec import EnvSpec
from sir.eval import pool as pools
from sir.eval.batch import features_to_batch, to_policy_batch
from sir.eval.engine import Engine, PlannedEpisode
from sir.eval.metrics import format_metrics, summarize, wilson_interval
from sir.eval.worker import ENV_BUILD_SEED, EnvKey

__all__ = [
    "DEFAULT_EVAL_SEED",
    "EvalTask",
    "evaluate_policy",
    "evaluate_tasks",
    "features_to_batch",
    "format_metrics",
    "to_policy_batch",
    "wilson_interval",
]

# Lanes a warm pool runs per worker's share (see plan_lanes).
LANES_PER_WORKER = 2
# The default batch width leaves every core this many waves. It fixes how episodes are
# grouped, and so their results (batched float maths differ in the last bits): unchanged.
WAVES_PER_CORE = 2
# Envs a policy batch holds at most by default: a batch saves the main process a policy call
# a row (lerobot's processors alone cost milliseconds a call), but its envs step in lockstep.
MAX_DEFAULT_BATCH_WIDTH = 4

# Evaluation seeds live far from the recording seeds (0, 1, 2, ...), so a policy is never
# scored on the exact initial states of its training demos.
DEFAULT_EVAL_SEED = seeds.CHOOSING.start  # a training run's evaluations; sir.eval.evaluate uses seeds.TEST


@dataclass
class EvalTask:
    """``episodes`` episodes of the env ``spec`` describes, reported under ``name``.
    ``max_steps`` defaults to the evaluation's, then to the spec's horizon."""

    name: str
    spec: EnvSpec
    episodes: int
    max_steps: int | None = None

    @classmethod
    def of(cls, task: EvalTask | Sequence[Any]) -> EvalTask:
        if isinstance(task, EvalTask):
            return task
        name, spec, episodes, *rest = task
        spec = spec if isinstance(spec, EnvSpec) else EnvSpec.from_dict(spec)
        return cls(str(name), spec, int(episodes), *rest)


def default_batch_width(episodes: int, cores: int) -> int:
    """Envs a policy batch holds: as many as leave every core two waves to run, at most
    ``MAX_DEFAULT_BATCH_WIDTH``. It depends on the episodes and the machine, never on the
    ``workers`` asked for, so per-episode results do not either."""
    return max(1, min(MAX_DEFAULT_BATCH_WIDTH, episodes // (WAVES_PER_CORE * cores)))


def plan_lanes(waves: int, width: int, workers: int, warm: bool) -> tuple[int, bool]:
    """(lanes, whether their envs are spread over the workers). Lanes do not change results
    (the waves fix them), only which envs exist and what overlaps: a fresh pool builds as
    few envs as keep every worker busy (about one a worker: building one costs as much as a
    hundred steps); a warm one (its workers hold envs of the spec) runs two lanes a worker's
    share, so one lane's envs step while the policy computes the other's actions, and
    builds the envs that needs once."""
    if workers <= 1:
        return 1, False
    share = max(1, workers // width)  # lanes that give every worker about one env
    return min(waves, LANES_PER_WORKER * share if warm else share), width > 1


def plan_waves(
    tasks: list[EvalTask],
    max_steps: int | None,
    seed: int,
    width: int,
    video_episodes: int,
    render_camera: str | None,
    render_size: int,
) -> list[list[PlannedEpisode]]:
    """Episode i of a task starts from ``seed + i``; episodes go in order into waves of
    ``width`` (a task's last wave may be narrower); the first ``video_episodes`` record."""
    waves: list[list[PlannedEpisode]] = []
    order = 0
    for task in tasks:
        # Only a recorded episode needs an env that can render (building its GL context
        # costs more than the rest of the env); one that can may serve any episode.
        plain = EnvKey.make(task.spec, None, render_size, ENV_BUILD_SEED)
        rendering = EnvKey.make(task.spec, render_camera, render_size, ENV_BUILD_SEED)
        steps = task.max_steps or max_steps or task.spec.horizon
        plans = []
        for i in range(task.episodes):
            record = order < video_episodes
            plans.append(PlannedEpisode(order, task.name, task.spec.task, i, seed + i, steps,
                                        rendering if record else plain, record=record))
            order += 1
        waves.extend(plans[j:j + width] for j in range(0, len(plans), width))
    return waves


@torch.no_grad()
def evaluate_tasks(
    policy: Any,
    preprocessor: Any,
    postprocessor: Any,
    tasks: Sequence[EvalTask | Sequence[Any]],
    max_steps: int | None = None,
    seed: int = DEFAULT_EVAL_SEED,
    workers: int | None = None,
    video_path: str | Path | None = None,
    video_episodes: int = 4,
    render_camera: str = "agentview",
    render_size: int = 256,
    progress: bool = False,
    batch_width: int | None = None,
    backend: str = "local",
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Evaluate on several tasks: ``tasks`` are EvalTask or (name, spec, episodes[, max_steps]).

    Returns the metrics of all episodes (see ``evaluate_policy``) and, under ``per_task``,
    each task's own. ``workers``: None for one process per core (capped by the waves of
    episodes), 1 to run in this process. ``batch_width`` (default: ``default_batch_width``)
    fixes how episodes are grouped into waves for the batched policy; per-episode results
    depend on it (batched float maths can differ in the last bits), never on ``workers``.
    ``backend`` "ray" runs the envs as Ray actors on the cluster at ``ray_address`` (see
    ``sir.eval.cluster``; ``workers`` None: one per CPU of the cluster), with the same results.
    """
    from sir.progress import Progress

    start = time.perf_counter()
    tasks = [EvalTask.of(t) for t in tasks]
    if not tasks or any(t.episodes < 1 for t in tasks):
        raise ValueError("every evaluation task needs at least one episode")
    total = sum(t.episodes for t in tasks)
    cores = pools.default_workers()
    width = batch_width or default_batch_width(max(t.episodes for t in tasks), cores)
    record = video_path is not None and video_episodes > 0
    waves = plan_waves(tasks, max_steps, seed, width, video_episodes if record else 0,
                       render_camera if record else None, render_size)
    if workers is None:
        workers = cores
        if backend == "ray":
            from sir.eval.cluster import cluster_cpus

            workers = cluster_cpus(ray_address or "auto")
    n_workers = min(max(1, workers), len(waves))

    workers_ready = time.perf_counter()
    pool = pools.shared_workers(n_workers, backend, ray_address)
    startup = time.perf_counter() - workers_ready
    keys = {p.key for wave in waves for p in wave}
    lanes, spread = plan_lanes(len(waves), width, n_workers, warm=keys <= pool.warm)
    was_training = policy.training
    threads = torch.get_num_threads()
    # Batches here are a few rows: one thread computes them fastest, leaves the cores to the
    # simulators, and keeps the float maths the same however many workers run.
    torch.set_num_threads(1)
    policy.eval()
    bar = Progress(total, "Evaluating", "ep", leave=False, enabled=progress)
    try:
        engine = Engine(policy, preprocessor, postprocessor, pool, waves, lanes, seed,
                        on_episodes=bar.update, n_workers=n_workers, spread=spread)
        result = engine.run()
        pool.warm |= keys
    except BaseException:
        # Ctrl-C or an error mid-evaluation: the workers hold half-run episodes; stop them all.
        pools.discard(pool)
        raise
    finally:
        bar.close()
        torch.set_num_threads(threads)
        policy.train(was_training)

    video = None
    if record and result.frames:
        from sir.eval.video import write_episode_grid

        recorded = [(result.episodes[i], result.frames[i]) for i in sorted(result.frames)]
        video = write_episode_grid(video_path, recorded, fps=tasks[0].spec.control_freq)
    wall = time.perf_counter() - start
    metrics = summarize(result.episodes, result.rollout_time_s, wall)
    metrics.update(startup_s=startup, workers=n_workers,
                   worker_restarts=result.worker_restarts)
    if len(tasks) > 1:
        metrics["per_task"] = {
            t.name: summarize([e for e in result.episodes if e["task"] == t.name], result.rollout_time_s, wall)
            for t in tasks
        }
    if video is not None:
        metrics["video"] = str(video)
    return metrics


def evaluate_policy(
    policy: Any,
    preprocessor: Any,
    postprocessor: Any,
    spec: EnvSpec,
    episodes: int,
    max_steps: int | None,
    seed: int = DEFAULT_EVAL_SEED,
    video_path: str | Path | None = None,
    video_episodes: int = 4,
    render_camera: str = "agentview",
    render_size: int = 256,
    progress: bool = False,
    workers: int | None = None,
    batch_width: int | None = None,
    backend: str = "local",
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Run ``episodes`` rollouts of at most ``max_steps`` steps (None: the spec's horizon);
    episode i always starts from the state of ``seed + i``.

    Success is the task's own check at any step; the episode stops there. An unstable
    simulation or a non-finite action fails its episode (``failure`` says why). Returns
    success_rate, success_ci95 [low, high], avg_reward, avg_length, episodes, wall_time_s,
    env_steps_per_s, per_episode (episode, seed, success, reward, length, failure), the
    failures by reason, and 'video' (a path) when one was written. ``workers``,
    ``batch_width``, ``backend`` and ``ray_address``: see ``evaluate_tasks``.
    """
    return evaluate_tasks(
        policy, preprocessor, postprocessor, [EvalTask(spec.env_name, spec, episodes, max_steps)],
        seed=seed, workers=workers, video_path=video_path, video_episodes=video_episodes,
        render_camera=render_camera, render_size=render_size, progress=progress, batch_width=batch_width,
        backend=backend, ray_address=ray_address,
    )
