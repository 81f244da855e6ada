"""Run logging: a JSON-lines metrics log in every run directory, and wandb when asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sir.errors import UserError


class RunLogger:
    def __init__(self, run_dir: Path, config: dict[str, Any], use_wandb: bool = False,
                 project: str = "sir", entity: str | None = None, run_name: str | None = None,
                 run_id: str | None = None):
        self.path = run_dir / "metrics.jsonl"
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
