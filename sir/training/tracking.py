"""Run logging: a JSON-lines metrics log in every run directory, and wandb when asked."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sir import atomic
from sir.errors import UserError
from sir.progress import Progress, duration


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
            self.wandb.log(data, step=step)

    def finish(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()


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


class TrainingProgress(Progress):
    """Progress of the training loop (``sir.progress``): a bar in a terminal; in a batch job
    one plain line per logging step, with the loss, learning rate and gradient norm."""

    def __init__(self, start_step: int, total: int, enabled: bool = True, interactive: bool | None = None):
        super().__init__(total, "Training", "step", initial=start_step, enabled=enabled, interactive=interactive)
        self.values = (0.0, 0.0, 0.0)

    def step(self, step: int, loss: float, lr: float, grad_norm: float, log: bool) -> None:
        self.values = (loss, lr, grad_norm)
        self.update(step - self.n, report=log, **({"loss": f"{loss:.4f}"} if self.bar is not None else {}))

    def line(self) -> str:
        loss, lr, grad_norm = self.values
        elapsed = time.perf_counter() - self.started
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.n) / rate if rate > 0 else 0.0
        return (f"step {self.n}/{self.total} | loss {loss:.4f} | lr {lr:.2e} | grad norm {grad_norm:.3f} | "
                f"{rate:.2f} steps/s | ETA {duration(eta)}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()  # the last logged step was its line already
