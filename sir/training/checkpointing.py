"""The one writer of a run's model folders: the evaluated weights as best_model,
final_model, candidates and snapshots; the trained weights with their resumable training
state as checkpoint_<step>.

The evaluations and the trainer's loop are handed this object; they say what to write and
when, it knows what goes in (weights, processors, EnvSpec, the model record, the optimizer,
scheduler, weight average and place in the data).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from sir.envs.spec import EnvSpec
from sir.errors import note_kept
from sir.policies.checkpoint import install_model, save_checkpoint
from sir.training.model import Model
from sir.training.run_folder import RunFolder
from sir.training.state import TRAINING_STATE_DIR, data_record, save_training_state


class Checkpointer:
    def __init__(self, run: RunFolder, model: Any, built: Model, spec: EnvSpec, info: dict[str, Any], ema: Any,
                 batches: Any, data_settings: dict[str, int], run_id: str | None = None):
        """``model``: the trained policy (unwrapped from accelerate); ``built``: its processors,
        optimizer and scheduler; ``info``: what every model record says of the run."""
        self.run, self.model, self.spec, self.info = run, model, spec, info
        self.preprocessor, self.postprocessor = built.preprocessor, built.postprocessor
        # torch's own optimizer (accelerate's wrapper holds the same one): lerobot's
        # save_training_state takes that.
        self.optimizer, self.scheduler = built.optimizer, built.scheduler
        self.ema, self.batches = ema, batches
        self.data_settings = data_settings  # batch_size, processes, seed: what the data position depends on
        self.run_id = run_id  # wandb's, so a resumed run continues its curves

    @property
    def evaluated(self) -> Any:
        """The weights evaluations roll out and model folders keep: the average with --ema-decay."""
        return self.ema.model if self.ema is not None else self.model

    def weights(self) -> Any:
        """What the model folders' record says of their weights."""
        return "trained" if self.ema is None else {"average": self.ema.record()}

    def save_model(self, folder: Path, step: int, metrics: dict[str, Any] | None, **extra: Any) -> Path:
        """A model folder of the evaluated weights (best_model, final_model, a candidate);
        ``extra`` goes into its record."""
        info = {"step": step, **self.info, "metrics": metrics, "weights": self.weights(), **extra}
        return save_checkpoint(folder, self.evaluated, self.preprocessor, self.postprocessor, self.spec, info)

    def snapshot(self, step: int) -> Path:
        """The evaluated weights at ``step`` for an evaluation beside training."""
        return save_checkpoint(self.run.snapshot(step), self.evaluated, self.preprocessor, self.postprocessor,
                               self.spec, {**self.info, "weights": self.weights(), "step": step})

    def install(self, snapshot: Path, folder: Path, metrics: dict[str, Any], copy: bool = False) -> Path:
        """An evaluated snapshot becomes a model folder without being written again."""
        return install_model(snapshot, folder, copy=copy, metrics=metrics)

    def save_resumable(self, step: int, metrics: dict[str, Any] | None, run_state: dict[str, Any]) -> Path:
        """checkpoint_<step>: the trained weights (the average beside them in training_state/)
        and everything a resumed run needs; ``run_state`` is the evaluations' part of it."""
        info = {"step": step, **self.info, "metrics": metrics, "weights": "trained"}
        saved = save_checkpoint(self.run.checkpoint(step), self.model, self.preprocessor, self.postprocessor,
                                self.spec, info, partial(self._write_state, step, run_state))
        self.run.forget_recorded(run_state.get("pending_evals") or [])
        note_kept(f"last checkpoint {saved}")  # the line Ctrl-C prints (sir.errors.cli_errors)
        return saved

    def _write_state(self, step: int, run_state: dict[str, Any], folder: Path) -> None:
        data = data_record(self.batches.position(), **self.data_settings)
        save_training_state(folder, step, self.optimizer, self.scheduler,
                            {**run_state, "wandb_run_id": self.run_id, "data": data,
                             "ema": self.ema.record() if self.ema is not None else None})
        if self.ema is not None:
            self.ema.save(folder / TRAINING_STATE_DIR)
