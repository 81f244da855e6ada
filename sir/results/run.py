"""``make results``: record, train and evaluate each task of the results table, resumably.

    python -m sir.results.run                       # all four tasks
    python -m sir.results.run --tasks Lift,Stack    # some of them

Per task: scripted demos (``<root>/<task>_<demos>``), one training run with the task's
recipe (``sir/results/recipes/<Task>.yaml``) in ``<out>/<Task>``, then the run's best
model on ``--eval-episodes`` fixed-seed episodes whose seeds neither the demos (0, 1, ...)
nor the evaluations during training (100000, ...) used, so the model chosen by those is
not also judged on them.

A finished task's summary (its row, its curve, its recipe's settings and the commit of sir
that made it) is written to ``--summaries`` (``docs/results/<Task>.json``, committed with
the page), so the table survives a new machine: a run skips every task whose summary
matches its recipe, goes on with the others (a stopped training resumes from its last
``checkpoint_<step>`` in ``--out``) and rewrites ``--report`` from the summaries after
each task. The run folder keeps a copy as ``<out>/<Task>/result.json``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sir import atomic
from sir.config import flags_given, option, parse, validate
from sir.errors import UserError, cli_errors
from sir.policies.checkpoint import info_path
from sir.results.recipes import TASKS
from sir.runtime import sir_commit
from sir.training.run_folder import RunFolder, records

RESULT_FILE = "result.json"
SUMMARY_DIR = "docs/results"
# Seeds of the final evaluation: disjoint from the demos' (0 ...) and from the
# evaluations during training that pick the best model (sir's default, 100000 ...).
FINAL_EVAL_SEED = 200_000


@dataclass
class ResultsConfig:
    tasks: list[str] = option(list(TASKS), "tasks to run, comma-separated, in order")
    demos: int = option(200, "scripted demos recorded per task", minimum=1)
    root: str = option("results/data", "where the demo datasets go")
    out: str = option("results/runs", "where each task's run folder (and result.json) goes")
    report: str = option("docs/results.md", "the results page rewritten after each task")
    summaries: str = option(SUMMARY_DIR, "where each finished task's summary (<Task>.json) goes, and the page "
                            "is written from")
    eval_episodes: int = option(50, "episodes of the final evaluation of each best model", minimum=1)
    eval_seed: int = option(FINAL_EVAL_SEED, "seed of the final evaluation's episode 0; episode i uses seed+i")
    train_args: str = option("", "train_policy flags over every recipe, quoted (e.g. \"--training-steps 100\")")
    redo: bool = option(False, "run tasks again even when their summary matches their recipe")


def run_results(cfg: ResultsConfig) -> list[dict[str, Any]]:
    """Every task of ``cfg.tasks`` done (or skipped as done); returns their result rows."""
    from sir.results.report import write_report
    from sir.training import TrainConfig

    validate(cfg)
    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown:
        raise UserError(f"--tasks: no recipe for {', '.join(unknown)}; the tasks are {', '.join(TASKS)}.")
    overrides = flags_given(TrainConfig, cfg.train_args, "--train-args")
    rows = []
    for i, name in enumerate(cfg.tasks, start=1):
        print(f"\n=== [{i}/{len(cfg.tasks)}] {name} ===", flush=True)
        rows.append(run_task(cfg, name, overrides))
        write_report(Path(cfg.summaries), Path(cfg.report))
        print(f"{name}: {format_row(rows[-1])}; {cfg.report} updated.", flush=True)
    return rows


def run_task(cfg: ResultsConfig, name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    from sir.data.collect import CollectConfig, collect
    from sir.training import TrainConfig

    task = TASKS[name]
    task_dir = Path(cfg.out) / name
    settings = {**task.train_settings(), **overrides}
    repo_id = f"{name.lower()}_{cfg.demos}"
    summary_path = Path(cfg.summaries) / f"{name}.json"
    done = _load(summary_path)
    if done and not cfg.redo and matches(done, settings, repo_id, cfg):
        commit = (done.get("sir") or {}).get("commit")
        print(f"{name}: done before ({summary_path}" + (f", sir {commit[:10]}" if commit else "")
              + "); --redo runs it again.")
        return done
    check_seeds_apart(settings, cfg)

    print(f"{name}: {cfg.demos} scripted demos in {Path(cfg.root) / repo_id}", flush=True)
    demos = collect(CollectConfig(env=task.env, episodes=cfg.demos, root=cfg.root, repo_id=repo_id,
                                  skip_existing=True))
    train_cfg = TrainConfig(**{**settings, "repo_ids": [repo_id], "root": cfg.root,
                               "checkpoint_dir": cfg.out, "run_name": name})
    run = train_resuming(train_cfg, task_dir)
    train_wall_s, eval_wall_s = run_times(RunFolder(task_dir).metrics_file)
    if run.best_model is None:
        raise UserError(f"{name}: the run evaluated nothing, so it has no best model; drop --no-eval from the recipe.")
    final = _final_eval(cfg, run.best_model, train_cfg.max_steps)
    curve = learning_curve(RunFolder(task_dir).metrics_file)
    result = {
        "task": name, "repo_id": repo_id, "settings": settings,
        "policy": train_cfg.policy or "act", "preset": train_cfg.preset,
        "demos": len(demos.episode_lengths) if demos.episode_lengths else cfg.demos,
        "frames": sum(run.frames_per_dataset.values()), "training_steps": train_cfg.training_steps,
        "batch_size": train_cfg.batch_size, "best_step": run.best_step,
        "train_wall_s": train_wall_s, "eval_wall_s": eval_wall_s,
        "success_rate": final["success_rate"], "success_ci95": final["success_ci95"],
        "episodes": final["episodes"], "eval_seed": cfg.eval_seed, "avg_length": final["avg_length"],
        "aim": task.aim, "curve": curve,
        # How best_model was chosen: the candidates' scores during training and confirmed.
        "selection": run.selection,
        "commands": [f"python -m sir.data.collect --env {name} --episodes {cfg.demos} --root {cfg.root} "
                     f"--repo-id {repo_id}",
                     f"python -m sir.training.train_policy --config sir/results/recipes/{name}.yaml "
                     f"--repo-ids {repo_id} --root {cfg.root} --run-name {name} --checkpoint-dir {cfg.out}"
                     + (f" {cfg.train_args}" if cfg.train_args else ""),
                     f"python -m sir.eval.evaluate --checkpoint {RunFolder(task_dir).best_model} "
                     f"--episodes {cfg.eval_episodes} --eval-seed {cfg.eval_seed}"],
    }
    result["sir"] = sir_commit()
    atomic.write_json(task_dir / RESULT_FILE, result)
    Path(cfg.summaries).mkdir(parents=True, exist_ok=True)
    atomic.write_json(summary_path, result)
    print(f"{name}: summary in {summary_path}; commit it with the page.")
    return result


def matches(summary: dict[str, Any], settings: dict[str, Any], repo_id: str, cfg: ResultsConfig) -> bool:
    """Whether a summary is this task's row as this run would make it: the same recipe (and
    --train-args), demos and final evaluation. The commit is provenance, not part of it."""
    return (summary.get("settings") == settings and summary.get("repo_id") == repo_id
            and summary.get("episodes") == cfg.eval_episodes and summary.get("eval_seed") == cfg.eval_seed)


def check_seeds_apart(settings: dict[str, Any], cfg: ResultsConfig) -> None:
    """The final evaluation's seeds must be none that chose or confirmed the best model."""
    from sir.eval.rollout import DEFAULT_EVAL_SEED
    from sir.training.selection import SELECT_SEED, overlap

    final = (cfg.eval_seed, cfg.eval_episodes)
    eval_episodes = settings.get("eval_episodes", 10)
    used = {"--eval-seed": (settings.get("eval_seed") or DEFAULT_EVAL_SEED, eval_episodes)}
    if (settings.get("select_top_k", 3) or 0) > 1:
        used["--select-seed"] = (settings.get("select_seed", SELECT_SEED),
                                 settings.get("select_episodes") or 2 * eval_episodes)
    for flag, seeds in used.items():
        if overlap(final, seeds):
            raise UserError(f"--eval-seed {cfg.eval_seed} with {cfg.eval_episodes} episodes reuses seeds of the "
                            f"training's {flag} ({seeds[0]} on, {seeds[1]} episodes); the final evaluation needs "
                            "episodes that chose nothing.")


def train_resuming(train_cfg: Any, task_dir: Path) -> Any:
    """Train, continuing from the newest checkpoint_<step> of a run stopped before its end."""
    from sir.training import TrainConfig, train
    from sir.training.config import config_to_save, load_config_file

    def settings(cfg: Any) -> dict[str, Any]:  # what a run was asked, not what it resolved
        return {k: v for k, v in json.loads(json.dumps(config_to_save(cfg), default=str)).items() if k != "_resolved"}

    checkpoints = RunFolder(task_dir).checkpoints()
    # The saved settings read back as --config reads them, so an option added to sir since
    # the run was saved takes its default instead of making the run look different.
    try:
        same = settings(TrainConfig(**load_config_file(RunFolder(task_dir).config_file))) == settings(train_cfg)
    except (UserError, TypeError):  # no saved settings, or ones this version cannot read: start over
        same = False
    if same and RunFolder(task_dir).final_model.is_dir() and checkpoints:
        train_cfg = dataclasses.replace(train_cfg, resume=str(checkpoints[-1]))  # finished: the loop is empty
    elif same and checkpoints:
        print(f"Resuming {task_dir.name} from {checkpoints[-1].name}.", flush=True)
        train_cfg = dataclasses.replace(train_cfg, resume=str(checkpoints[-1]))
    else:
        train_cfg = dataclasses.replace(train_cfg, overwrite=True)
    return train(train_cfg)


def run_times(metrics_path: Path) -> tuple[float, float]:
    """Training and evaluation wall time of a run, in seconds, from its ``metrics.jsonl``.

    Each process that trained the run (the first, and one per resume) logs the time since
    its loop began (``train/elapsed_s``, logged before the step's evaluation); a resume
    starts that count again, marks its first record (``train/resumed_at``) and cuts the log
    back to its checkpoint, so the steps a stopped process made after its last checkpoint
    are not counted. Training is the sum over those processes of their last count less the
    evaluations it includes. (Logs from before the mark: a count that goes down starts a process.)
    """
    train_s = eval_s = 0.0
    last = evals_in_last = evals_so_far = 0.0
    for record in records(metrics_path):
        elapsed = record.get("train/elapsed_s")
        if "eval/wall_time_s" in record:
            evals_so_far += float(record["eval/wall_time_s"])
            eval_s += float(record["eval/wall_time_s"])
        elif elapsed is not None:
            if "train/resumed_at" in record or elapsed < last:  # a resumed process: close the one before
                train_s += last - evals_in_last
                evals_so_far = 0.0
            last, evals_in_last = float(elapsed), evals_so_far
    return train_s + last - evals_in_last, eval_s


def _final_eval(cfg: ResultsConfig, best_model: Path, max_steps: int | None) -> dict[str, Any]:
    from sir.eval.evaluate import EvalConfig, evaluate

    out_dir = best_model.parent / "eval" / f"{best_model.name}_seed{cfg.eval_seed}"
    saved = _load(out_dir / "eval_results.json")
    model_step = (_load(info_path(best_model)) or {}).get("step")
    if saved and saved.get("episodes") == cfg.eval_episodes and saved.get("model_step") == model_step:
        return saved
    metrics = evaluate(EvalConfig(checkpoint=str(best_model), episodes=cfg.eval_episodes, eval_seed=cfg.eval_seed,
                                  max_steps=max_steps, output_dir=str(out_dir)))
    return {k: v for k, v in metrics.items() if k != "per_episode"}


def learning_curve(metrics_path: Path) -> list[dict[str, Any]]:
    """The run's evaluations in step order: step, success rate, wall time (the last record of a step wins)."""
    points: dict[int, dict[str, Any]] = {}
    for record in records(metrics_path):
        if "eval/success_rate" in record:
            points[int(record["step"])] = {"step": int(record["step"]),
                                           "success_rate": float(record["eval/success_rate"]),
                                           "wall_s": float(record.get("eval/wall_time_s", 0.0))}
    return [points[s] for s in sorted(points)]


def format_row(r: dict[str, Any]) -> str:
    low, high = r["success_ci95"]
    return (f"{100 * r['success_rate']:.0f}% (95% CI {100 * low:.0f}-{100 * high:.0f}%, {r['episodes']} episodes), "
            f"best step {r['best_step']} of {r['training_steps']}, training {r['train_wall_s'] / 60:.1f} min")


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def parse_config(argv: list[str] | None = None) -> ResultsConfig:
    return parse(ResultsConfig, argv, "python -m sir.results.run",
                 "Record scripted demos, train with each task's recipe and evaluate the best model of each on "
                 "fixed-seed episodes, writing the results table (docs/results.md). Resumable: done tasks are "
                 "skipped and a stopped training continues from its last checkpoint.")


@cli_errors
def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    return run_results(parse_config(argv))


if __name__ == "__main__":
    main()
