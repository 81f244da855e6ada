"""The evaluation history of a training run: a CSV row per evaluation and a plot of success
rate (with its 95% interval) and training loss against step, redrawn after each evaluation.

Files in the run directory, each replaced atomically (written to a temporary file, renamed):
``eval_history.csv``, ``loss_history.csv`` and ``eval_history.png``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sir import atomic

EVAL_CSV = "eval_history.csv"
LOSS_CSV = "loss_history.csv"
PLOT = "eval_history.png"

_COLUMNS = ["step", "success_rate", "success_ci_low", "success_ci_high", "avg_reward", "avg_length",
            "episodes", "failed_episodes", "wall_time_s", "env_steps_per_s", "train_loss"]


def record_evaluation(
    run_dir: str | Path,
    step: int,
    metrics: Mapping[str, Any],
    losses: Iterable[tuple[int, float]] | Mapping[int, float] | None = None,
) -> dict[str, Path]:
    """Append the evaluation at ``step`` to the run's history and redraw its plot.

    ``losses``: the (step, loss) points of training since the previous call (points already
    recorded are replaced, so passing the whole history works too). The CSV row holds
    their mean as ``train_loss``. Returns the paths written.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    new_losses = sorted((int(s), float(v)) for s, v in (losses.items() if isinstance(losses, Mapping) else losses or ()))
    loss_points = {s: v for s, v in _read_losses(run_dir / LOSS_CSV)}
    loss_points.update(new_losses)
    loss_rows = [{"step": s, "loss": loss_points[s]} for s in sorted(loss_points)]
    atomic.write_csv(run_dir / LOSS_CSV, loss_rows, ["step", "loss"])

    row = _eval_row(step, metrics, [v for _, v in new_losses])
    rows = [r for r in _read_csv(run_dir / EVAL_CSV) if int(float(r["step"])) != int(step)]
    rows.append(row)
    rows.sort(key=lambda r: int(float(r["step"])))
    columns = list(_COLUMNS)
    for r in rows:
        columns += [k for k in r if k not in columns]
    atomic.write_csv(run_dir / EVAL_CSV, rows, columns)

    _plot(run_dir / PLOT, rows, loss_rows)
    return {"csv": run_dir / EVAL_CSV, "losses": run_dir / LOSS_CSV, "plot": run_dir / PLOT}


def recorded_steps(run_dir: str | Path) -> list[int]:
    """The steps whose evaluations the run's history holds."""
    return [int(float(r["step"])) for r in _read_csv(Path(run_dir) / EVAL_CSV)]


def _eval_row(step: int, metrics: Mapping[str, Any], losses: list[float]) -> dict[str, Any]:
    low, high = metrics["success_ci95"]
    row: dict[str, Any] = {
        "step": int(step),
        "success_rate": metrics["success_rate"],
        "success_ci_low": low,
        "success_ci_high": high,
        "avg_reward": metrics["avg_reward"],
        "avg_length": metrics["avg_length"],
        "episodes": metrics["episodes"],
        "failed_episodes": sum((metrics.get("failures") or {}).values()),
        "wall_time_s": metrics.get("wall_time_s", ""),
        "env_steps_per_s": metrics.get("env_steps_per_s", ""),
        "train_loss": sum(losses) / len(losses) if losses else "",
    }
    for name, task in (metrics.get("per_task") or {}).items():
        t_low, t_high = task["success_ci95"]
        row[f"{name}/success_rate"] = task["success_rate"]
        row[f"{name}/success_ci_low"] = t_low
        row[f"{name}/success_ci_high"] = t_high
    return row


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _read_losses(path: Path) -> list[tuple[int, float]]:
    return [(int(r["step"]), float(r["loss"])) for r in _read_csv(path)]


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _plot(path: Path, rows: list[Mapping[str, Any]], loss_rows: list[Mapping[str, Any]]) -> None:
    # The object-oriented Figure API with an Agg canvas: no pyplot, so no global backend
    # switch and no state shared with whoever else in the process draws.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    steps = [int(float(r["step"])) for r in rows]
    rate = [100 * float(r["success_rate"]) for r in rows]
    low = [100 * float(r["success_ci_low"]) for r in rows]
    high = [100 * float(r["success_ci_high"]) for r in rows]
    top.fill_between(steps, low, high, alpha=0.25, color="tab:blue", label="95% Wilson interval")
    top.plot(steps, rate, "o-", color="tab:blue", label="success rate (all tasks)")
    tasks = sorted({k.split("/")[0] for r in rows for k in r if k.endswith("/success_rate")})
    for task in tasks:
        points = [(s, _number(r.get(f"{task}/success_rate"))) for s, r in zip(steps, rows, strict=True)]
        points = [(s, 100 * v) for s, v in points if v is not None]
        top.plot([s for s, _ in points], [v for _, v in points], ".--", label=task)
    top.set_ylim(-2, 102)
    top.set_ylabel("success rate (%)")
    top.grid(alpha=0.3)
    top.legend(loc="best", fontsize="small")

    loss_steps = [int(r["step"]) for r in loss_rows]
    loss = [float(r["loss"]) for r in loss_rows]
    if loss:
        bottom.plot(loss_steps, loss, color="tab:orange", linewidth=1)
        if min(loss) > 0:
            bottom.set_yscale("log")
    bottom.set_ylabel("training loss")
    bottom.set_xlabel("training step")
    bottom.grid(alpha=0.3)

    atomic.save_figure(fig, path)
