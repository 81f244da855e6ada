"""A training run's folder: the name of every file in it, and the one reader and writer of each.

    <checkpoint-dir>/<run name>/
        train_config.json        the settings (``--config`` loads them again) and what they resolved to
        metrics.jsonl            a JSON record per logged step (train/*, eval/*); ``records`` reads it
        eval_history.csv         a row per evaluation during training; loss_history.csv, eval_history.png
        checkpoint_<step>/       resumable: a model folder and training_state/ (sir.training.state)
        best_model/ final_model/ model folders (sir.policies.checkpoint; their record is ``read_info``)
        candidates/step_<N>/     best_model's candidates until the choice (sir.training.selection)
        eval_snapshots/          models whose background evaluations are not recorded yet
        videos/                  eval_step_<N>.mp4

Every file is replaced whole (written to a temporary name, renamed), so a kill at any
instant leaves the old version or the new one.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sir import atomic
from sir.errors import UserError

CONFIG_FILENAME = "train_config.json"
METRICS_FILENAME = "metrics.jsonl"
EVAL_CSV = "eval_history.csv"
LOSS_CSV = "loss_history.csv"
PLOT = "eval_history.png"
BEST_MODEL = "best_model"
FINAL_MODEL = "final_model"
CANDIDATES_DIR = "candidates"
SNAPSHOT_DIR = "eval_snapshots"
VIDEO_DIR = "videos"

_COLUMNS = ["step", "success_rate", "success_ci_low", "success_ci_high", "avg_reward", "avg_length",
            "episodes", "failed_episodes", "wall_time_s", "env_steps_per_s", "train_loss", "last_k_success",
            "first_seed", "episode_successes"]


def records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Each whole JSON object line of a metrics log; a line a killed run left half-written is
    skipped."""
    for _, record in _lines(Path(path)):
        yield record


def _lines(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            yield line, record


class RunFolder:
    """The files of the run at ``path``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.config_file = self.path / CONFIG_FILENAME
        self.metrics_file = self.path / METRICS_FILENAME
        self.best_model = self.path / BEST_MODEL
        self.final_model = self.path / FINAL_MODEL
        self.candidates = self.path / CANDIDATES_DIR
        self.snapshots = self.path / SNAPSHOT_DIR  # models whose background evaluations are not recorded yet
        self.videos = self.path / VIDEO_DIR

    def prepare(self, resume: bool, overwrite: bool) -> str | None:
        """Make the folder ready for a run (a line saying what was cleaned, or None). What a killed
        run was writing (.<name>.tmp-PID, .old-PID) is not a run: removed first, so a run killed
        before its first file can be restarted without --overwrite. A new run does not replace
        another unless asked to."""
        leftovers = atomic.remove_leftovers(self.path)
        if not resume and self.path.exists() and any(self.path.iterdir()):
            if not overwrite:
                raise UserError(f"{self.path} already holds a run; pass --run-name to start another, --resume "
                                f"{self.path}/checkpoint_<step> to continue it, or --overwrite to replace it.")
            shutil.rmtree(self.path)
        return leftovers

    def write_config(self, settings: dict[str, Any]) -> dict[str, Any]:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic.write_json(self.config_file, settings)
        return settings

    def checkpoint(self, step: int) -> Path:
        return self.path / f"checkpoint_{step}"

    def checkpoints(self) -> list[Path]:
        """The resumable checkpoint_<step> folders, oldest first."""
        found = [p for p in self.path.glob("checkpoint_*") if p.name.rsplit("_", 1)[1].isdigit()]
        return sorted(found, key=lambda p: int(p.name.rsplit("_", 1)[1]))

    # -- metrics.jsonl ---------------------------------------------------------------------
    def metrics(self) -> Iterator[dict[str, Any]]:
        return records(self.metrics_file)

    def logged_losses(self, after: int, upto: int) -> list[tuple[int, float]]:
        """The (step, train/loss) points of the log for steps in (after, upto]."""
        return [(int(r["step"]), float(r["train/loss"])) for r in self.metrics()
                if "train/loss" in r and after < r.get("step", -1) <= upto]

    def drop_metrics_after(self, step: int) -> None:
        """Keep the records of steps up to ``step`` (a resumed run logs the later ones again);
        a line a killed run left half-written goes too. The file is replaced whole."""
        if not self.metrics_file.is_file():
            return
        kept = [line + "\n" for line, r in _lines(self.metrics_file)
                if isinstance(r.get("step"), int) and r["step"] <= step]
        atomic.write_text(self.metrics_file, "".join(kept))

    # -- the evaluation history ------------------------------------------------------------
    def record_evaluation(self, step: int, metrics: Mapping[str, Any],
                          losses: Iterable[tuple[int, float]] | Mapping[int, float] | None = None,
                          last_k: int = 3) -> dict[str, Path]:
        """Append the evaluation at ``step`` to the run's history and redraw its plot.

        ``losses``: the (step, loss) points of training since the previous call (points already
        recorded are replaced, so passing the whole history works too). The CSV row holds
        their mean as ``train_loss``, and ``last_k_success`` the mean success of the last
        ``last_k`` evaluations up to its step. Returns the paths written.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        points = losses.items() if isinstance(losses, Mapping) else losses or ()
        new_losses = sorted((int(s), float(v)) for s, v in points)
        loss_points = {int(r["step"]): float(r["loss"]) for r in _read_csv(self.path / LOSS_CSV)}
        loss_points.update(new_losses)
        loss_rows = [{"step": s, "loss": loss_points[s]} for s in sorted(loss_points)]
        atomic.write_csv(self.path / LOSS_CSV, loss_rows, ["step", "loss"])

        row = _eval_row(step, metrics, [v for _, v in new_losses])
        rows = [r for r in _read_csv(self.path / EVAL_CSV) if int(float(r["step"])) != int(step)]
        rows.append(row)
        rows.sort(key=lambda r: int(float(r["step"])))
        for i, r in enumerate(rows):
            r["last_k_success"] = _mean_success(rows[max(0, i - last_k + 1):i + 1])
        columns = list(_COLUMNS)
        for r in rows:
            columns += [k for k in r if k not in columns]
        atomic.write_csv(self.path / EVAL_CSV, rows, columns)

        _plot(self.path / PLOT, rows, loss_rows)
        return {"csv": self.path / EVAL_CSV, "losses": self.path / LOSS_CSV, "plot": self.path / PLOT}

    def last_k(self, k: int) -> dict[str, Any] | None:
        """The mean success of the run's last ``k`` evaluations and, pooling their episodes, a
        Wilson interval (approximate: the evaluations share their seeds); each one's rate; and,
        where they all ran the same episodes, per episode how many of them succeeded in it
        (``episode_successes``, from ``first_seed`` on), which pairs two runs episode by
        episode. None before any evaluation."""
        from sir.eval.metrics import wilson_interval

        rows = _read_csv(self.path / EVAL_CSV)[-k:]
        if not rows:
            return None
        episodes = [int(float(r["episodes"])) for r in rows]
        successes = sum(round(float(r["success_rate"]) * n) for r, n in zip(rows, episodes, strict=True))
        out = {"k": k, "steps": [int(float(r["step"])) for r in rows], "success_mean": _mean_success(rows),
               "ci95": list(wilson_interval(successes, sum(episodes))),
               "rates": [float(r["success_rate"]) for r in rows]}
        outcomes = [_outcomes(r.get("episode_successes")) for r in rows]
        if all(outcomes) and len({r["first_seed"] for r in rows}) == 1 and len({len(o) for o in outcomes}) == 1:
            out["first_seed"] = int(rows[0]["first_seed"])
            out["episode_successes"] = [sum(column) for column in zip(*outcomes, strict=True)]
        return out

    def recorded_steps(self) -> list[int]:
        """The steps whose evaluations the run's history holds."""
        return [int(float(r["step"])) for r in _read_csv(self.path / EVAL_CSV)]

    # -- background evaluations' snapshots -------------------------------------------------
    def snapshot(self, step: int) -> Path:
        return self.snapshots / f"step_{step}"

    def snapshot_result(self, step: int) -> Path:
        """Where a background evaluation's summary is kept from its recording until a checkpoint
        holds it (a run resumed from an earlier checkpoint takes it from there)."""
        return self.snapshots / f"step_{step}.json"

    def keep_result(self, step: int, summary: dict[str, Any]) -> None:
        atomic.write_json(self.snapshot_result(step), summary)

    def resume_evaluations(self, pending: list[int]) -> tuple[list[int], list[tuple[int, dict]], list[str]]:
        """For a run resumed from a checkpoint that had not recorded the evaluations of the
        steps ``pending``: (the steps to evaluate again from their snapshots, the (step,
        summary) of those recorded after the checkpoint was written, lines to print). Every
        other snapshot and result is removed."""
        lines = [line for line in [atomic.remove_leftovers(self.snapshots)] if line]
        again, recorded = [], []
        for step in sorted(int(s) for s in pending):
            if self.snapshot_result(step).is_file():
                recorded.append((step, json.loads(self.snapshot_result(step).read_text())))
            elif (self.snapshot(step) / "config.json").is_file():
                again.append(step)
            else:
                lines.append(f"note: the evaluation of step {step} was not recorded and its snapshot is gone; "
                             "it is not run again.")
        keep = {self.snapshot(s).name for s in again} | {self.snapshot_result(s).name for s, _ in recorded}
        for entry in self.snapshots.glob("step_*") if self.snapshots.is_dir() else []:
            if entry.name in keep:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        if again:
            lines.append(f"Evaluating again what the checkpoint had not recorded: step {', '.join(map(str, again))}.")
        return again, recorded, lines

    def forget_recorded(self, pending: list[int]) -> None:
        """After a checkpoint is written: the results it holds need no keeping beside it."""
        for entry in self.snapshots.glob("step_*.json") if self.snapshots.is_dir() else []:
            if int(entry.stem.split("_")[1]) not in pending:
                entry.unlink(missing_ok=True)

    def drop_snapshots(self) -> None:
        shutil.rmtree(self.snapshots, ignore_errors=True)


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
    # Each episode's outcome, in the evaluation's order (episode i from first_seed + i): what
    # pairs two models on the same episodes (sir.eval.paired). Spaces, so no reader takes it for a number.
    episodes = metrics.get("per_episode") or []
    if episodes:
        row["first_seed"] = int(episodes[0]["seed"])
        row["episode_successes"] = " ".join("1" if e["success"] else "0" for e in episodes)
    for name, task in (metrics.get("per_task") or {}).items():
        t_low, t_high = task["success_ci95"]
        row[f"{name}/success_rate"] = task["success_rate"]
        row[f"{name}/success_ci_low"] = t_low
        row[f"{name}/success_ci_high"] = t_high
    return row


def _outcomes(text: str | None) -> list[int]:
    """An ``episode_successes`` cell as 0/1 per episode (empty when the row has none)."""
    return [int(word) for word in (text or "").split()]


def _mean_success(rows: list[Mapping[str, Any]]) -> float:
    return sum(float(r["success_rate"]) for r in rows) / len(rows)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


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
