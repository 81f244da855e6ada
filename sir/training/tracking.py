"""Run logging: a JSON-lines metrics log in every run directory, and wandb or TensorBoard when asked."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sir.errors import UserError
from sir.progress import Progress, duration
from sir.training.run_folder import RunFolder

TENSORBOARD_DIR = "tensorboard"
VIDEO_SIDE = 256  # TensorBoard shows a video as an animated GIF: kept to this size at most


class RunLogger:
    """metrics.jsonl always; ``report_to`` "wandb" or "tensorboard" logs the same numbers
    (and each evaluation's video) there too, under the run folder."""

    def __init__(self, run: RunFolder, config: dict[str, Any], report_to: str = "none",
                 project: str = "sir", entity: str | None = None, run_name: str | None = None,
                 run_id: str | None = None, resume_step: int | None = None):
        run_dir = run.path
        self.path = run.metrics_file
        if resume_step is not None:
            run.drop_metrics_after(resume_step)
        self.wandb = None
        self.tensorboard = None
        if report_to == "wandb":
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
        elif report_to == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise UserError("--report-to tensorboard needs the tensorboard package; "
                                "pip install tensorboard.") from err
            # purge_step: TensorBoard drops what an earlier process logged past the resumed
            # step, as RunFolder.drop_metrics_after does for metrics.jsonl.
            self.tensorboard = SummaryWriter(str(run_dir / TENSORBOARD_DIR),
                                             purge_step=resume_step + 1 if resume_step is not None else None)
            self.tensorboard.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```", 0)
        self._wandb_step = 0

    @classmethod
    def for_run(cls, run: RunFolder, saved: dict[str, Any], config: Any, run_id: str | None,
                resume_step: int | None) -> RunLogger:
        """The logger of a training run with ``config`` (a TrainConfig) whose settings are ``saved``."""
        from sir.training.config import report_to

        return cls(run, saved, report_to(config), config.wandb_project, config.wandb_entity, config.wandb_run_name,
                   run_id=run_id, resume_step=resume_step)

    @property
    def run_id(self) -> str | None:
        return self.wandb.id if self.wandb is not None else None

    def log(self, step: int, metrics: dict[str, Any], video: str | None = None) -> None:
        record = {"step": step, **metrics}
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=str) + "\n")
        scalars = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        if self.wandb is not None:
            import wandb

            data = dict(scalars)
            if video:
                data["eval/video"] = wandb.Video(video, format="mp4")
            if any(k.startswith("eval/") for k in data):
                data["eval/step"] = step
            self._wandb_step = max(self._wandb_step, step)
            self.wandb.log(data, step=self._wandb_step)
        if self.tensorboard is not None:  # takes steps in any order
            for key, value in scalars.items():
                self.tensorboard.add_scalar(key, value, step)
            if video:
                self.tensorboard._get_file_writer().add_summary(gif_summary("eval/video", video), step)
            self.tensorboard.flush()

    def log_training(self, step: int, loss: float, grad_norm: float, lr: float, output: dict[str, Any] | None,
                     elapsed_s: float, resumed_at: int | None = None) -> None:
        """A training step's record: loss, gradient norm, learning rate, the policy's own
        numbers and the time since this process's loop began."""
        record = {"train/loss": loss, "train/grad_norm": grad_norm, "train/lr": lr, "train/elapsed_s": elapsed_s}
        record.update({f"train/{k}": float(v) for k, v in (output or {}).items() if isinstance(v, int | float)})
        if resumed_at:
            # A resumed process's first record: its elapsed time counts from its own start
            # (sir.results.run_times adds the processes up from this mark).
            record["train/resumed_at"] = resumed_at
        self.log(step, record)

    def finish(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()
        if self.tensorboard is not None:
            self.tensorboard.close()


def gif_summary(tag: str, video: str | Path) -> Any:
    """The mp4 at ``video`` as TensorBoard's video summary: an image summary holding an
    animated GIF, what torch's ``SummaryWriter.add_video`` writes (it needs moviepy 1.x to
    encode; imageio encodes here). Frames are scaled down to ``VIDEO_SIDE`` pixels at most."""
    import imageio.v3 as iio
    import numpy as np
    from tensorboard.compat.proto.summary_pb2 import Summary

    frames = np.stack(list(iio.imiter(video)))
    fps = iio.immeta(video).get("fps") or 20
    step = max(1, -(-max(frames.shape[1:3]) // VIDEO_SIDE))
    frames = frames[:, ::step, ::step]
    gif = iio.imwrite("<bytes>", frames, extension=".gif", duration=1000 / fps, loop=0)
    height, width = frames.shape[1:3]
    image = Summary.Image(height=height, width=width, colorspace=frames.shape[3], encoded_image_string=gif)
    return Summary(value=[Summary.Value(tag=tag, image=image)])


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
