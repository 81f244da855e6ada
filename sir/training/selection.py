"""Which model the run calls ``best_model``: the best of its evaluations during training,
confirmed on other episodes (``--select-top-k``, ``--select-episodes``, ``--select-seed``).

The evaluations during training are short (20 episodes: a 95% interval about 40 points
wide), and the best of several such scores is optimistic: docs/results.md measured Stack's
best point at 80% and its model at 64% on 50 held-out episodes. So the run keeps the weights
of its K best evaluated models (``candidates/step_<N>``, each written whole), and when
training ends evaluates each again on ``--select-episodes`` episodes whose seeds neither the
choosing evaluations (``--eval-seed``, 100000 on) nor sir.results' final evaluation (200000
on) use; the best of those becomes ``best_model``, and the candidates are removed. The
choice, with every candidate's scores, episodes and seeds, is written into
``best_model/sir_checkpoint.json`` under ``selection``. The best of K confirmations is still
a maximum, but of K scores on more episodes instead of N short ones.

A run stopped and resumed keeps the candidates its checkpoint knew (the run state lists
them) and drops the ones written after it, which the resumed run evaluates again; a
confirmation already made is read back from ``candidates/step_<N>/confirmation.json``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sir import atomic, seeds
from sir.errors import UserError
from sir.policies.checkpoint import read_info, write_info
from sir.training.run_folder import CANDIDATES_DIR

SELECT_SEED = seeds.CONFIRMING.start  # apart from the choosing, validation and test seeds (sir.seeds)
CONFIRMATION_FILENAME = "confirmation.json"
RUN_STATE_KEY = "candidates"
KEPT = ("success_rate", "success_ci95", "avg_length", "episodes", "wall_time_s")  # of an evaluation's summary


def select_episodes(cfg: Any) -> int:
    return cfg.select_episodes if cfg.select_episodes is not None else 2 * cfg.eval_episodes


def check_selection_seeds(cfg: Any) -> None:
    """The confirming episodes must not be the choosing ones (which would confirm nothing)."""
    if cfg.no_eval or cfg.select_top_k <= 1:
        return
    from sir.eval.rollout import DEFAULT_EVAL_SEED

    eval_seed = DEFAULT_EVAL_SEED if cfg.eval_seed is None else cfg.eval_seed
    if seeds.overlap((eval_seed, cfg.eval_episodes), (cfg.select_seed, select_episodes(cfg))):
        raise UserError(f"--select-seed {cfg.select_seed} with {select_episodes(cfg)} episodes reuses seeds of the "
                        f"evaluations during training ({eval_seed} on, {cfg.eval_episodes} episodes); choose seeds "
                        "apart from them.")


def score(metrics: dict[str, Any]) -> tuple[float, float]:
    """The one rule for which of two evaluations is better: the higher success rate, then the
    shorter average episode. Larger is better."""
    return (metrics["success_rate"], -metrics["avg_length"])


def _kept(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in KEPT if k in metrics}


@dataclass
class Candidate:
    step: int
    score: tuple[float, float]  # score() of its evaluation during training
    metrics: dict[str, Any] = field(default_factory=dict)  # that evaluation


@dataclass
class Chosen:
    """The model best_model holds: its step, its evaluation during training, and how it was chosen."""

    step: int
    metrics: dict[str, Any]
    selection: dict[str, Any]


class BestModelChoice:
    """The run's candidates for best_model and, at the end, the choice among them."""

    def __init__(self, run_dir: Path, k: int, episodes: int, seed: int, choosing: dict[str, int],
                 saved: list[dict[str, Any]] | None = None, rollout: dict[str, Any] | None = None):
        self.run_dir, self.k, self.episodes, self.seed = Path(run_dir), k, episodes, seed
        # evaluate_saved's device, max_steps and workers for the confirmations
        self.rollout = rollout or {"device": "cpu", "max_steps": None, "workers": None}
        self.folder = self.run_dir / CANDIDATES_DIR
        self.choosing = choosing  # the evaluations during training: episodes and seed
        self.kept = [Candidate(int(c["step"]), tuple(c["score"]), c.get("metrics", {})) for c in saved or []]
        if self.folder.is_dir():
            atomic.remove_leftovers(self.folder)
            # Written after the checkpoint this run resumes from: the resumed run evaluates again.
            listed = {self.path(c.step).name for c in self.kept}
            for entry in self.folder.iterdir():
                if entry.is_dir() and entry.name not in listed:
                    shutil.rmtree(entry, ignore_errors=True)

    @classmethod
    def for_run(cls, config: Any, run_dir: Path, eval_seed: int, saved: list[dict[str, Any]] | None, device: str,
                workers: int | None) -> BestModelChoice:
        """The choice of a training run with ``config`` (a TrainConfig), resumed from ``saved``."""
        return cls(run_dir, config.select_top_k, select_episodes(config), config.select_seed,
                   {"episodes": config.eval_episodes, "seed": eval_seed}, saved,
                   {"device": device, "max_steps": config.max_steps, "workers": workers})

    @property
    def enabled(self) -> bool:
        return self.k > 1

    def path(self, step: int) -> Path:
        return self.folder / f"step_{step}"

    def offer(self, step: int, metrics: dict[str, Any]) -> Path | None:
        """Whether the model just evaluated is among the K best so far: the folder its weights
        go to (the caller writes them there), or None. The one it pushes out is removed. Ties
        keep the earlier model, as the trainer's best does."""
        if not self.enabled:
            return None
        new = Candidate(step, score(metrics), _kept(metrics))
        ranked = sorted([c for c in self.kept if c.step != step] + [new], key=lambda c: (c.score, -c.step),
                        reverse=True)
        self.kept = ranked[:self.k]
        for gone in ranked[self.k:]:
            shutil.rmtree(self.path(gone.step), ignore_errors=True)
        return self.path(step) if new in self.kept else None

    def state(self) -> list[dict[str, Any]]:
        """For the run state of a checkpoint_<step>."""
        return [asdict(c) for c in self.kept]

    def finish(self, best_model: Path, best_step: int | None,
               evaluate: Callable[[Path], dict[str, Any]] | None = None, say: Callable[[str], Any] = print
               ) -> Chosen | None:
        """Confirm the candidates (``evaluate(folder)`` scores one on this choice's episodes;
        by default ``evaluate_saved``), name the best ``best_model`` and write how it was
        chosen into its model record. Returns the model chosen (None when the run has no best model)."""
        if evaluate is None:
            evaluate = partial(evaluate_saved, episodes=self.episodes, seed=self.seed, **self.rollout)
        info = read_info(best_model)
        if info is None:
            return None
        record = {"choosing": self.choosing, "top_k": self.k}
        done = info.get("selection") or {}
        # Chosen before: the run resumed after its choice (the same candidates), or a finished run
        # resumed from a run state written before its last evaluation beside training came back
        # (other candidates, whose weights went with the choice: choosing again could only fall
        # back to the best evaluation during training and overwrite the confirmed record).
        if self.enabled and done.get("complete") and self._same_episodes(done) and (
                self._same_candidates(done) or not any((self.path(c.step) / "config.json").is_file()
                                                       for c in self.kept)):
            say(f"best_model was chosen before (step {done['chosen_step']}); kept.")
            self._clean()
            return Chosen(info.get("step"), info.get("metrics"), done)
        if not self.enabled or len(self.kept) < 2:
            why = "--select-top-k is off" if not self.enabled else "the run evaluated one model"
            record.update(method=f"the best evaluation during training ({why})", chosen_step=info.get("step"),
                          complete=True)
            write_info(best_model, {**info, "selection": record})
            self._clean()
            return Chosen(info.get("step"), info.get("metrics"), record)

        say(f"\nChoosing best_model: the {len(self.kept)} best models evaluated again on {self.episodes} episodes "
            f"(seeds {self.seed} on)...")
        rows = []
        for rank, c in enumerate(self.kept):
            confirmed = self._confirmation(c, evaluate)
            if confirmed is None:
                say(f"  step {c.step}: its weights are gone (candidates/step_{c.step}); left out.")
                continue
            rows.append((rank, c, confirmed))
            say(f"  step {c.step}: {100 * c.metrics.get('success_rate', c.score[0]):.0f}% during training, "
                f"{100 * confirmed['success_rate']:.0f}% on {confirmed['episodes']} other episodes")
        if not rows:
            say(f"No candidate's weights are left in {self.folder}: best_model stays the best evaluation during "
                "training.")
            record.update(method="the best evaluation during training (the candidates' weights were gone)",
                          chosen_step=info.get("step"), complete=True)
            write_info(best_model, {**info, "selection": record})
            return Chosen(info.get("step"), info.get("metrics"), record)
        # The best confirmed success rate; between equal ones, the better evaluation during training
        # (score(): its success, then its shorter episodes), then the earlier model. The confirming
        # episodes' average length is no tie-break: it mostly repeats their success rate (a failed
        # episode runs to the step limit), where the evaluation during training adds 20 more episodes.
        rank, chosen, confirmed = max(rows, key=lambda r: (r[2]["success_rate"], r[1].score, -r[1].step))
        record.update(
            method="the best of the top-k evaluations during training, each evaluated again on other episodes",
            confirmation={"episodes": self.episodes, "seed": self.seed}, chosen_step=chosen.step,
            candidates=[{"step": c.step, "during_training": c.metrics, "confirmation": _kept(conf)}
                        for _, c, conf in rows],
            complete=True)
        installed = self._install(chosen, best_model, record)
        say(f"best_model: step {chosen.step} ({100 * confirmed['success_rate']:.0f}% on the confirming episodes"
            + ("" if chosen.step == best_step else f"; the best during training was step {best_step}") + ")")
        self._clean()
        return Chosen(installed.get("step"), installed.get("metrics"), record)

    def _same_episodes(self, done: dict[str, Any]) -> bool:
        return done.get("confirmation") == {"episodes": self.episodes, "seed": self.seed}

    def _same_candidates(self, done: dict[str, Any]) -> bool:
        return sorted(c["step"] for c in done.get("candidates", [])) == sorted(c.step for c in self.kept)

    def _confirmation(self, c: Candidate, evaluate: Callable[[Path], dict[str, Any]]) -> dict[str, Any] | None:
        folder = self.path(c.step)
        if not (folder / "config.json").is_file():
            return None
        cached = folder / CONFIRMATION_FILENAME
        if cached.is_file():
            saved = json.loads(cached.read_text())
            if saved.get("episodes") == self.episodes and saved.get("seed") == self.seed:
                return saved
        metrics = {k: v for k, v in evaluate(folder).items() if k != "per_episode"}
        atomic.write_json(cached, {**metrics, "episodes": self.episodes, "seed": self.seed})
        return metrics

    def _install(self, chosen: Candidate, best_model: Path, record: dict[str, Any]) -> dict[str, Any]:
        """The chosen candidate's folder becomes best_model, whole, in one swap. Returns its record."""
        from sir.policies.checkpoint import swap_into_place

        source = self.path(chosen.step)
        tmp = atomic.temporary_path(best_model)
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(source, tmp, ignore=shutil.ignore_patterns(CONFIRMATION_FILENAME))
        info = {**read_info(tmp), "selection": record}
        write_info(tmp, info)
        swap_into_place(tmp, best_model)
        return info

    def _clean(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def evaluate_saved(folder: Path, episodes: int, seed: int, device: str, max_steps: int | None,
                   workers: int | None) -> dict[str, Any]:
    """A candidate's score, from its folder as lerobot loads it (weights, processors, EnvSpec)."""
    from sir.eval.rollout import evaluate_policy
    from sir.policies.checkpoint import load_checkpoint

    policy, preprocessor, postprocessor, spec, _ = load_checkpoint(folder, device=device)
    return evaluate_policy(policy, preprocessor, postprocessor, spec, episodes, max_steps, seed=seed, workers=workers)
