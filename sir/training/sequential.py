"""Sequential (continual) training: one stage per dataset, each starting from the previous
stage's final model, and a forgetting matrix of every stage on every task seen so far."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from sir import atomic
from sir.errors import UserError
from sir.hub import check_push
from sir.training.config import TrainConfig
from sir.training.trainer import RunResult, run_name_for, train

FORGETTING_CSV = "forgetting_matrix.csv"
FORGETTING_PNG = "forgetting_matrix.png"


def stage_name(k: int, repo_id: str) -> str:
    return f"stage_{k}_{repo_id.replace('/', '_')}"


@dataclass
class SequentialResult:
    base_dir: Path
    stages: list[RunResult] = field(default_factory=list)
    # success_rates[k][j]: success on task j after stage k (None for tasks not yet seen)
    success_rates: list[list[float | None]] = field(default_factory=list)


def run_sequential(args: TrainConfig) -> SequentialResult:
    from sir.data import parse_repo_ids
    from sir.eval.rollout import DEFAULT_EVAL_SEED, evaluate_tasks
    from sir.policies.checkpoint import load_checkpoint
    from sir.runtime import pick_device

    repo_ids = parse_repo_ids(args.repo_ids)
    if len(repo_ids) < 2:
        raise UserError("--sequential trains one stage per dataset; give at least two --repo-ids.")
    base = Path(args.checkpoint_dir) / (args.run_name or run_name_for(args.policy or "act", repo_ids) + "_sequential")
    if base.exists() and any(base.iterdir()) and not args.overwrite:
        raise UserError(f"{base} already holds a run; pass --run-name to start another or --overwrite to replace it.")
    if args.push_to_hub:
        check_push(args.push_to_hub)  # before the first stage
    steps = args.steps_per_stage or args.training_steps
    eval_seed = DEFAULT_EVAL_SEED if args.eval_seed is None else args.eval_seed
    device = pick_device(args.device)
    previous = args.policy_path
    tasks: list[tuple[str, object]] = []
    result = SequentialResult(base)
    rows = result.success_rates
    for k, repo_id in enumerate(repo_ids, start=1):
        print(f"\n##### Stage {k}/{len(repo_ids)}: {repo_id}" + (f" (from {previous})" if previous else ""))
        stage = train(dataclasses.replace(
            args, sequential=False, steps_per_stage=None, repo_ids=[repo_id],
            policy_path=str(previous) if previous else None, training_steps=steps, checkpoint_dir=str(base),
            run_name=stage_name(k, repo_id), overwrite=True,
            push_to_hub=args.push_to_hub if k == len(repo_ids) else None))  # the last stage's model
        result.stages.append(stage)
        previous = stage.final_model
        tasks.append((repo_id, stage.env_spec))

        policy, pre, post, _, _ = load_checkpoint(previous, device=device)
        # One evaluation over every task seen so far: one worker pool, metrics per task.
        metrics = evaluate_tasks(policy, pre, post, [(t, s, args.eval_episodes) for t, s in tasks],
                                 max_steps=args.max_steps, seed=eval_seed, workers=args.eval_workers)
        per_task = metrics.get("per_task", {tasks[0][0]: metrics})
        row = []
        for task_id, _ in tasks:
            print(f"  after stage {k}, task {task_id}: success {100 * per_task[task_id]['success_rate']:.1f}%")
            row.append(per_task[task_id]["success_rate"])
        rows.append(row + [None] * (len(repo_ids) - len(row)))
        write_forgetting_matrix(base, repo_ids, rows)
    print(f"\nForgetting matrix: {base / FORGETTING_CSV}")
    return result


def write_forgetting_matrix(base: Path, repo_ids: list[str], rows: list[list[float | None]]) -> None:
    """CSV (stage × task success rate; empty for tasks not yet seen) and a heatmap PNG."""
    atomic.write_csv(base / FORGETTING_CSV, [
        {"stage": stage_name(k, repo_ids[k - 1]),
         **{r: "" if v is None else f"{v:.4f}" for r, v in zip(repo_ids, row, strict=True)}}
        for k, row in enumerate(rows, start=1)
    ], ["stage", *repo_ids])

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    data = np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(1.6 + 1.2 * len(repo_ids), 1.2 + 0.8 * len(rows)))
    im = ax.imshow(data, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(repo_ids)), repo_ids, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), [f"after stage {k}" for k in range(1, len(rows) + 1)])
    for (i, j), v in np.ndenumerate(data):
        if not np.isnan(v):
            ax.text(j, i, f"{100 * v:.0f}%", ha="center", va="center", color="w" if v < 0.6 else "k")
    ax.set_title("success rate per task")
    fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    atomic.save_figure(fig, base / FORGETTING_PNG)
    plt.close(fig)
