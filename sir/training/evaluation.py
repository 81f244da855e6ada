"""The trainer's evaluation hook: when to roll out, where, and what to keep of the results.

Synchronous: the rollouts run on the live model and training waits. In the background
(``--async-eval``): the weights and processors are written as a model folder (a snapshot)
and rolled out by an evaluation process (``sir.eval.background``) while training goes on;
the results are logged at the step they belong to, and the snapshot becomes best_model if
it is the best. Evaluation draws nothing from the training's RNGs, so both give the same
results.

A checkpoint records the best evaluation (step and summary) and the evaluations whose
results are not in yet; a run resumed from it evaluates those again from their snapshots.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sir.eval.background import (
    BackgroundEvaluator,
    EvalJob,
    discard_evaluator,
    kept_evaluator,
    spare_cores,
)
from sir.eval.rollout import evaluate_policy, format_metrics
from sir.policies.checkpoint import read_info, write_info
from sir.training.checkpointing import Checkpointer
from sir.training.config import last_evaluations
from sir.training.run_folder import RunFolder
from sir.training.selection import RUN_STATE_KEY, BestModelChoice, Chosen, score


def in_background(config: Any, device: str, check_cluster: bool = False) -> tuple[bool, int | None]:
    """(whether evaluations run beside training, the env workers they get). Beside training
    by default where the machine has cores to spare; they then get those cores. With
    ``check_cluster``, a Ray cluster that is not there is refused now, before any work."""
    if check_cluster and not config.no_eval and config.eval_backend == "ray":
        from sir.eval.cluster import resolve_address

        resolve_address(config.ray_address)
    spare = spare_cores(device, config.num_workers)
    background = not config.no_eval and (config.async_eval if config.async_eval is not None else spare >= 1)
    workers = config.eval_workers or (max(1, spare) if background and config.eval_backend == "local" else None)
    return background, workers


@dataclass
class Evaluations:
    run: RunFolder
    settings: dict[str, Any]  # evaluate_policy's: episodes, max_steps, seed, workers, backend, ray_address, ...
    device: str
    logger: Any
    checkpointer: Checkpointer | None  # writes the model folders (None: nothing is kept, as in a test)
    write: Callable[[str], None]  # progress lines between training steps
    video_dir: Path | None = None  # eval_step_<N>.mp4 go there (None: no videos)
    choice: BestModelChoice | None = None  # the candidates kept for the final choice of best_model
    rollouts: bool = True  # False with --no-eval: the validation loss alone, if any
    last_k: int = 3  # eval_history.csv's last_k_success: the mean of the last K evaluations
    validation: Any = None  # sir.training.validation.ValidationLoss (--val-episodes)
    best: tuple[float, float] | None = None  # score() of the best evaluation
    best_val: tuple[int, float] | None = None  # (step, loss) of the lowest validation loss, without rollouts
    best_eval: tuple[int, dict[str, Any]] | None = None
    last: dict[str, Any] | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) not in a history row yet
    unrecorded: dict[int, Path] = field(default_factory=dict)  # step -> snapshot, evaluations not in yet
    evaluator: BackgroundEvaluator | None = None
    kept: frozenset[int] = frozenset()  # the last --last-k evaluation steps: beside training, never skipped

    @classmethod
    def for_run(cls, config: Any, run: RunFolder, eval_seed: int, device: str, workers: int | None, logger: Any,
                checkpointer: Checkpointer | None, write: Callable[[str], None],
                choice: BestModelChoice | None, validation: Any = None) -> Evaluations:
        """The evaluations of a training run with ``config`` (a TrainConfig)."""
        settings = {"episodes": config.eval_episodes, "max_steps": config.max_steps, "seed": eval_seed,
                    "video_episodes": config.video_episodes, "workers": workers, "backend": config.eval_backend,
                    "ray_address": config.ray_address}
        videos = (Path(config.video_dir) if config.video_dir else run.videos) if config.save_video else None
        return cls(run, settings, device, logger, checkpointer, write, videos, choice, not config.no_eval,
                   config.last_k, validation, kept=last_evaluations(config))

    @property
    def active(self) -> bool:
        """Whether the run evaluates at all: rollouts, or a validation loss."""
        return self.rollouts or self.validation is not None

    @property
    def has_best(self) -> bool:
        return self.best is not None or self.best_val is not None

    def start(self, background: bool, run_state: dict[str, Any], resumed_at: int | None) -> list[str]:
        """Take up the run state of a resumed run (at step ``resumed_at``): its best, the
        evaluations recorded after its checkpoint and those to run again. Lines to print."""
        if run_state.get("best"):
            self.best = tuple(run_state["best"])
        if run_state.get("best_eval"):
            self.best_eval = (run_state["best_eval"]["step"], run_state["best_eval"]["metrics"])
        if run_state.get("best_val"):
            self.best_val = (run_state["best_val"]["step"], run_state["best_val"]["loss"])
        again, lines = [], []
        if resumed_at is not None:
            again, recorded, lines = self.run.resume_evaluations(run_state.get("pending_evals") or [])
            for step, summary in recorded:
                self._consider(step, summary)
            # The losses since the last evaluation the history holds go into the next one's row.
            done = [s for s in self.run.recorded_steps() if s <= resumed_at and s not in again]
            self.losses += self.run.logged_losses(max(done, default=0), resumed_at)
        if background or again:
            self.evaluator = kept_evaluator()
        for step in again:
            self.submit(step, self.run.snapshot(step))
        return lines

    def run_state(self) -> dict[str, Any]:
        """What a checkpoint's run state keeps of the evaluations and the candidates."""
        return {"best": self.best,
                "best_eval": {"step": self.best_eval[0], "metrics": self.best_eval[1]} if self.best_eval else None,
                "pending_evals": sorted(self.unrecorded),
                "best_val": {"step": self.best_val[0], "loss": self.best_val[1]} if self.best_val else None,
                RUN_STATE_KEY: self.choice.state() if self.choice is not None else []}

    def evaluate(self, step: int) -> None:
        """Evaluate the model as it is at ``step``: its validation loss (``--val-episodes``),
        and its rollouts beside training from a snapshot, or now."""
        if self.validation is not None:
            self.validate(step)
        if not self.rollouts:
            return
        if self.evaluator is not None:
            waiting = self.evaluator.waiting
            if waiting is not None and waiting.step in self.kept:
                # Submitting now would replace it (one waits beside the one running): training
                # waits instead, so the last --last-k evaluations are all scored.
                self.collect(step, wait=True, why=f", one of the last {self.last_k} (--last-k), never skipped")
            self.submit(step, self.checkpointer.snapshot(step))
            return
        model = self.checkpointer
        try:
            metrics = evaluate_policy(model.evaluated, model.preprocessor, model.postprocessor, model.spec,
                                      **self._settings(step))
        except BaseException:
            self._keep_training(step, step)
            raise
        self.record(step, metrics)

    def collect(self, now: int, wait: bool = False, why: str = "") -> None:
        """Record the background evaluations that are done (with ``wait``: all of them)."""
        if self.evaluator is None:
            return
        if wait and self.evaluator.pending:
            self.write(f"Waiting for the evaluation of step {self.evaluator.pending[-1].step}{why}...")
        for outcome in self.evaluator.wait() if wait else self.evaluator.poll():
            if outcome.error is not None:
                self._keep_training(outcome.step, now)
                raise outcome.error.exception(f"the evaluation of step {outcome.step}")
            self.record(outcome.step, outcome.metrics, Path(outcome.model))
        if wait:
            self.run.drop_snapshots()  # every evaluation is recorded

    def close(self, finished: bool) -> None:
        """After the run: a run that finished leaves the evaluation process for the next,
        except one on a Ray cluster, whose actors would hold the cluster's CPUs meanwhile."""
        if self.evaluator is None:
            return
        if not finished or self.evaluator.pending or self.settings.get("backend") == "ray":
            discard_evaluator(self.evaluator)

    def submit(self, step: int, snapshot: Path) -> None:
        """Hand the snapshot of ``step`` to the background evaluator."""
        self.unrecorded[step] = snapshot
        settings = self._settings(step)
        episodes, max_steps = settings.pop("episodes"), settings.pop("max_steps")
        if settings["video_path"] is not None:
            settings["video_path"] = Path(settings["video_path"]).absolute()
        # Absolute paths: the evaluation process may have started in another working folder
        # (it is kept for the runs of one program).
        replaced = self.evaluator.submit(EvalJob(step, str(Path(snapshot).absolute()), self.device, episodes,
                                                 max_steps, settings))
        if replaced is not None:
            self.unrecorded.pop(replaced.step, None)
            shutil.rmtree(replaced.model, ignore_errors=True)
            self.write(f"Evaluation of step {replaced.step} skipped: step {step} replaces it while step "
                       f"{self.evaluator.running.step} is still being evaluated.")

    def record(self, step: int, metrics: dict[str, Any], snapshot: Path | None = None) -> None:
        """Log the evaluation of ``step`` at that step; keep its model if it is the best, or
        among the candidates for best_model."""
        self.write(f"\nEvaluation Results (step {step}):\n{format_metrics(metrics)}")
        own = [point for point in self.losses if point[0] <= step]
        self.losses[:] = [point for point in self.losses if point[0] > step]
        self.run.record_evaluation(step, metrics, own, self.last_k)
        # Whether training went on meanwhile (a snapshot's evaluation) or waited: a run's
        # training time leaves out only the evaluations it waited for (sir.results.run.run_times).
        # 1.0 or 0.0, not a bool: trackers take scalars (TensorBoard writes a bool as 1.0).
        self.logger.log(step, {"eval/success_rate": metrics["success_rate"], "eval/avg_reward": metrics["avg_reward"],
                               "eval/avg_length": metrics["avg_length"], "eval/wall_time_s": metrics["wall_time_s"],
                               "eval/beside_training": float(snapshot is not None)},
                        video=metrics.get("video"))
        summary = {k: v for k, v in metrics.items() if k != "per_episode"}
        self.last = summary
        self.unrecorded.pop(step, None)
        if snapshot is not None:  # kept until a checkpoint holds it (see RunFolder.resume_evaluations)
            self.run.keep_result(step, summary)
        candidate = self.choice.offer(step, summary) if self.choice is not None else None
        if candidate is not None:  # before the snapshot is moved: a candidate is a copy of it
            self._keep(step, summary, snapshot, candidate, copy=True)
        if self._consider(step, summary):
            self._keep(step, summary, snapshot, self.run.best_model)
            self.write(f"Saved best model (success rate: {100 * metrics['success_rate']:.1f}%)")
        elif snapshot is not None:
            shutil.rmtree(snapshot, ignore_errors=True)

    def validate(self, step: int) -> None:
        """Log the validation loss at ``step``; without rollouts, keep the model with the lowest."""
        model = self.checkpointer
        loss = self.validation(model.evaluated, model.preprocessor)
        self.logger.log(step, {"val/loss": loss})
        self.write(f"\nValidation loss (step {step}, {self.validation.samples} held-out samples): {loss:.4f}")
        if not self.rollouts and (self.best_val is None or loss < self.best_val[1]):
            self.best_val = (step, loss)
            model.save_model(self.run.best_model, step, {"val_loss": loss})
            self.write(f"Saved best model (validation loss: {loss:.4f})")

    def choose_best_model(self, say: Callable[[str], Any]) -> Chosen | None:
        """When training is done: best_model chosen among the candidates, or by the lowest
        validation loss without rollouts (None when the run has no best model)."""
        if self.best_val is not None and not self.rollouts:
            step, loss = self.best_val
            record = {"method": "the lowest validation loss on the held-out episodes (--no-eval --val-episodes)",
                      "chosen_step": step, "val_loss": loss, "held_out_samples": self.validation.samples,
                      "complete": True}
            write_info(self.run.best_model, {**read_info(self.run.best_model), "selection": record})
            say(f"Best model: {self.run.best_model} (step {step}, lowest validation loss {loss:.4f})")
            return Chosen(step, {"val_loss": loss}, record)
        if self.best is None or self.choice is None:
            return None
        chosen = self.choice.finish(self.run.best_model, self.best_eval[0] if self.best_eval else None, say=say)
        if chosen is not None:
            say(f"Best model: {self.run.best_model} (step {chosen.selection['chosen_step']})")
        return chosen

    # -- inside ----------------------------------------------------------------------------
    def _settings(self, step: int) -> dict[str, Any]:
        video = self.video_dir / f"eval_step_{step}.mp4" if self.video_dir is not None else None
        return {**self.settings, "video_path": video}

    def _keep(self, step: int, summary: dict[str, Any], snapshot: Path | None, folder: Path,
              copy: bool = False) -> None:
        if snapshot is None:
            self.checkpointer.save_model(folder, step, summary)
        else:
            self.checkpointer.install(snapshot, folder, summary, copy=copy)

    def _consider(self, step: int, summary: dict[str, Any]) -> bool:
        if self.best is not None and score(summary) <= self.best:
            return False
        self.best, self.best_eval = score(summary), (step, summary)
        return True

    def _keep_training(self, step: int, now: int) -> None:
        # Hours of training are not lost to a failing evaluation: keep them resumable first.
        saved = self.checkpointer.save_resumable(now, self.last, self.run_state())
        self.write(f"Evaluation at step {step} failed; the model trained so far is in {saved}.")
