"""Run logging: a JSON-lines metrics log in every run directory, and wandb when asked."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sir import atomic
from sir.errors import UserError


class RunLogger:
    def __init__(self, run_dir: Path, config: dict[str, Any], use_wandb: bool = False,
                 project: str = "sir", entity: str | None = None, run_name: str | None = None,
                 run_id: str | None = None, resume_step: int | None = None):
        self.path = run_dir / "metrics.jsonl"
        if resume_step is not None:
            drop_steps_after(self.path, resume_step)
        self.wandb = None
        if use_wandb:
            try:
                import wandb
            except ImportError as err:
                raise UserError("--use-wandb needs the wandb package; pip install wandb.") from err
            # A resumed run passes its wandb id back, so its curves continue in the same run.
            self.wandb = wandb.init(project=project, entity=entity, name=run_name, config=config,
                                    dir=str(run_dir), id=run_id, resume="allow" if run_id else None)
            # Evaluations beside training finish after later training steps were logged, and
            # wandb refuses a step below its last: they are plotted against eval/step instead.
            self.wandb.define_metric("eval/step")
            self.wandb.define_metric("eval/*", step_metric="eval/step")
        self._wandb_step = 0

    @property
    def run_id(self) -> str | None:
        return self.wandb.id if self.wandb is not None else None

    def log(self, step: int, metrics: dict[str, Any], video: str | None = None) -> None:
        record = {"step": step, **metrics}
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=str) + "\n")
        if self.wandb is not None:
            import wandb

            data = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
            if video:
                data["eval/video"] = wandb.Video(video, format="mp4")
            if any(k.startswith("eval/") for k in data):
                data["eval/step"] = step
            self._wandb_step = max(self._wandb_step, step)
            self.wandb.log(data, step=self._wandb_step)

    def finish(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()


def logged_losses(path: Path, after: int, upto: int) -> list[tuple[int, float]]:
    """The (step, train/loss) points of the log for steps in (after, upto]."""
    if not path.is_file():
        return []
    points = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "train/loss" in record and after < record.get("step", -1) <= upto:
            points.append((int(record["step"]), float(record["train/loss"])))
    return points


def drop_steps_after(path: Path, step: int) -> None:
    """Keep the records of steps up to ``step`` (a resumed run logs the later ones again);
    a line a killed run left half-written goes too. The file is replaced whole."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line + "\n")
    atomic.write_text(path, "".join(kept))


class TrainingProgress:
    """Progress of the training loop: a tqdm bar in a terminal; in a batch job (stdout not
    a terminal) no redraws, but one plain line per logging step on stdout instead, so a log
    file holds the loss and nothing else grows without end."""

    def __init__(self, start_step: int, total: int, enabled: bool = True, interactive: bool | None = None):
        import sys

        from tqdm import tqdm

        self.interactive = sys.stdout.isatty() if interactive is None else interactive
        self.enabled, self.start_step, self.total = enabled, start_step, total
        self.started = time.perf_counter()
        self.bar = None
        if enabled and self.interactive:
            self.bar = tqdm(desc="Training", unit="step", dynamic_ncols=True, initial=start_step, total=total)

    def step(self, step: int, loss: float, lr: float, grad_norm: float, log: bool) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}")
        elif self.enabled and log:
            print(self.line(step, loss, lr, grad_norm), flush=True)

    def line(self, step: int, loss: float, lr: float, grad_norm: float) -> str:
        elapsed = time.perf_counter() - self.started
        rate = (step - self.start_step) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else 0.0
        return (f"step {step}/{self.total} | loss {loss:.4f} | lr {lr:.2e} | grad norm {grad_norm:.3f} | "
                f"{rate:.2f} steps/s | ETA {_duration(eta)}")

    def write(self, text: str) -> None:
        """A message between progress updates (the bar redraws below it)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
