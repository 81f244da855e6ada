"""``make results``: record, train and evaluate each task of the results table, resumably.

    python -m sir.results.run                       # all four tasks
    python -m sir.results.run --tasks Lift,Stack    # some of them

Per task: scripted demos (``<root>/<task>_<demos>``); the task's recipe
(``sir/results/recipes/<Task>.yaml``) trained once per ``--training-seeds`` seed, in
``<out>/<Task>_s<seed>``; each run's best model scored on ``--eval-episodes`` episodes of
the test range (``sir.seeds.TEST``), on which nothing is chosen. The row is the mean over
the training seeds with their spread, each seed's value and a t-interval, beside the mean
of each run's last ``--last-k`` evaluations during training and the optimism of the
best-model choice (its score on the episodes that chose it minus its test score).

A task's summary (the row, each seed's run, the recipe's settings and the commit of sir
that made it) is written to ``--summaries`` (``docs/results/<Task>.json``, committed with
the page) after every seed, so the table survives a new machine: a seed the summary holds
with the same recipe and test episodes is kept, the others run (a stopped training resumes
from its last ``checkpoint_<step>`` in ``--out``), and ``--report`` is rewritten after each
seed. Each run folder keeps its seed's entry as ``result.json``.

A seed's entry records what ran, as this process ran it: ``command``, the ``sir.results.run``
command line (its own words from the command line; from Python, the flags of its config),
and ``commands``, the collect, train and evaluate commands it amounts to, with this run's
folders and flags. A form rewritten afterwards (other folders, a recipe that took the flags
over) belongs in a field of its own (``reproduce``), never over these.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sir import atomic, seeds
from sir.config import flags_given, option, parse, to_flags, validate
from sir.errors import UserError, cli_errors
from sir.policies.checkpoint import info_path
from sir.results.recipes import TASKS
from sir.runtime import sir_commit
from sir.training.run_folder import RunFolder, records

RESULT_FILE = "result.json"
SUMMARY_DIR = "docs/results"


@dataclass
class ResultsConfig:
    tasks: list[str] = option(list(TASKS), "tasks to run, comma-separated, in order")
    demos: int = option(200, "scripted demos recorded per task", minimum=1)
    root: str = option("results/data", "where the demo datasets go")
    out: str = option("results/runs", "where each task's run folder (and result.json) goes")
    report: str = option("docs/results.md", "the results page rewritten after each task")
    summaries: str = option(SUMMARY_DIR, "where each finished task's summary (<Task>.json) goes, and the page "
                            "is written from")
    training_seeds: list[int] = option([0, 1, 2], "training seeds: the recipe is trained once per seed and the "
                                       "row is the mean over them")
    eval_episodes: int = option(100, "test episodes of each run's best model", minimum=1)
    eval_seed: int = option(seeds.TEST.start, "seed of the test's episode 0 (sir.seeds: the test range, on which "
                            "nothing is chosen; a range of validation seeds, 200000 on, for choosing levers)")
    last_k: int = option(3, "the row also gives the mean success of each run's last K evaluations during "
                         "training, which nothing chose", minimum=1)
    train_args: str = option("", "train_policy flags over every recipe, quoted (e.g. \"--training-steps 100\")")
    redo: bool = option(False, "run tasks again even when their summary matches their recipe")


def run_results(cfg: ResultsConfig, command: str | None = None) -> list[dict[str, Any]]:
    """Every task of ``cfg.tasks`` done (or skipped as done); returns their result rows.
    ``command``: the command line that ran (recorded with each seed); default, the flags of ``cfg``."""
    from sir.results.report import write_report
    from sir.training import TrainConfig

    validate(cfg)
    command = command or f"python -m sir.results.run {to_flags(cfg, ResultsConfig())}".rstrip()
    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown:
        raise UserError(f"--tasks: no recipe for {', '.join(unknown)}; the tasks are {', '.join(TASKS)}.")
    overrides = flags_given(TrainConfig, cfg.train_args, "--train-args")
    rows = []
    for i, name in enumerate(cfg.tasks, start=1):
        print(f"\n=== [{i}/{len(cfg.tasks)}] {name} ===", flush=True)
        rows.append(run_task(cfg, name, overrides, command))
        write_report(Path(cfg.summaries), Path(cfg.report))
        print(f"{name}: {format_row(rows[-1])}; {cfg.report} updated.", flush=True)
    return rows


def run_task(cfg: ResultsConfig, name: str, overrides: dict[str, Any], command: str) -> dict[str, Any]:
    """The task's row: its recipe trained once per ``--training-seeds`` seed, each run's
    best_model scored on the test episodes. Seeds its summary already holds (same recipe,
    demos and test episodes) are kept; the summary is rewritten after each new seed."""
    from sir.data.collect import CollectConfig, collect
    from sir.results.report import write_report

    task = TASKS[name]
    settings = {**task.train_settings(), **overrides}
    repo_id = f"{name.lower()}_{cfg.demos}"
    summary_path = Path(cfg.summaries) / f"{name}.json"
    done = _load(summary_path)
    same = done is not None and matches(done, settings, repo_id, cfg) and not cfg.redo
    kept = {r["seed"]: r for r in done.get("runs", [])} if same else {}
    runs = [kept[s] for s in cfg.training_seeds if s in kept]
    if len(runs) == len(cfg.training_seeds):
        commit = (done.get("sir") or {}).get("commit")
        print(f"{name}: done before ({summary_path}" + (f", sir {commit[:10]}" if commit else "")
              + "); --redo runs it again.")
        return done
    check_seeds_apart(settings, cfg)

    print(f"{name}: {cfg.demos} scripted demos in {Path(cfg.root) / repo_id}", flush=True)
    demos = collect(CollectConfig(env=task.env, episodes=cfg.demos, root=cfg.root, repo_id=repo_id,
                                  skip_existing=True))
    base = {"task": name, "repo_id": repo_id, "settings": settings,
            "policy": settings.get("policy") or "act", "preset": settings.get("preset", "default"),
            "demos": len(demos.episode_lengths) if demos.episode_lengths else cfg.demos,
            "training_steps": settings.get("training_steps"), "batch_size": settings.get("batch_size"),
            "test_seed": cfg.eval_seed, "test_episodes": cfg.eval_episodes, "last_k": cfg.last_k, "aim": task.aim}
    done_seeds = {r["seed"] for r in runs}
    for seed in cfg.training_seeds:
        if seed in done_seeds:
            print(f"{name}, training seed {seed}: kept from {summary_path}")
            continue
        print(f"{name}, training seed {seed}:", flush=True)
        runs.append(run_seed(cfg, name, repo_id, settings, seed, command))
        runs.sort(key=lambda r: cfg.training_seeds.index(r["seed"]))
        summary = summarize_task(base, runs)
        Path(cfg.summaries).mkdir(parents=True, exist_ok=True)
        atomic.write_json(summary_path, summary)
        write_report(Path(cfg.summaries), Path(cfg.report))
        print(f"{name}: seed {seed} in {summary_path}, {cfg.report} updated; commit them.", flush=True)
    return summary


def run_seed(cfg: ResultsConfig, name: str, repo_id: str, settings: dict[str, Any], seed: int,
             command: str) -> dict[str, Any]:
    """One training run of the recipe with training seed ``seed``, its best_model scored on the
    test episodes; ``command`` is the sir.results.run command line that ran it."""
    from sir.training import TrainConfig

    run_name = f"{name}_s{seed}"
    folder = RunFolder(Path(cfg.out) / run_name)
    train_cfg = TrainConfig(**{**settings, "repo_ids": [repo_id], "root": cfg.root, "checkpoint_dir": cfg.out,
                               "run_name": run_name, "seed": seed, "last_k": cfg.last_k})
    run = train_resuming(train_cfg, folder.path)
    if run.best_model is None:
        raise UserError(f"{name}: the run evaluated nothing, so it has no best model; drop --no-eval from the recipe.")
    train_wall_s, eval_wall_s = run_times(folder.metrics_file)
    test = _final_eval(cfg, run.best_model, train_cfg.max_steps)
    curve = learning_curve(folder.metrics_file)
    chosen = next((p for p in curve if p["step"] == run.best_step), None)
    last_k = f" --last-k {cfg.last_k}" if cfg.last_k != ResultsConfig.last_k else ""
    result = {
        "seed": seed, "best_step": run.best_step, "frames": sum(run.frames_per_dataset.values()),
        # The demos trained on (an --episodes in --train-args trains on fewer than were recorded).
        "demos": sum(len(d["episodes"]) for d in run.datasets) or None,
        "success_rate": test["success_rate"], "success_ci95": test["success_ci95"], "episodes": test["episodes"],
        "avg_length": test["avg_length"], "test_outcomes": outcomes(test.get("per_episode", [])),
        # The best model's score on the episodes that chose it, and the fixed figure beside it:
        # the mean of the run's last evaluations during training, which nothing chose.
        "choosing_success": chosen["success_rate"] if chosen else None,
        "last_k_success": (run.last_k or {}).get("success_mean"),
        "train_wall_s": train_wall_s, "eval_wall_s": eval_wall_s, "curve": curve,
        # How best_model was chosen: the candidates' scores during training and confirmed.
        "selection": run.selection,
        # What ran (see the module's note): this process's command line, and the commands it amounts to.
        "command": command,
        "commands": [f"python -m sir.data.collect --env {name} --episodes {cfg.demos} --root {cfg.root} "
                     f"--repo-id {repo_id}",
                     f"python -m sir.training.train_policy --config sir/results/recipes/{name}.yaml "
                     f"--repo-ids {repo_id} --root {cfg.root} --run-name {run_name} --checkpoint-dir {cfg.out} "
                     f"--seed {seed}{last_k}" + (f" {cfg.train_args}" if cfg.train_args else ""),
                     f"python -m sir.eval.evaluate --checkpoint {folder.best_model} "
                     f"--episodes {cfg.eval_episodes} --eval-seed {cfg.eval_seed}"],
        "sir": sir_commit(),
    }
    atomic.write_json(folder.path / RESULT_FILE, result)
    return result


def summarize_task(base: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The row over training seeds: each seed's test score, their mean, spread and 95%
    t-interval, the pooled episodes' Wilson interval, and the optimism of the choice (the
    best model's score on the episodes that chose it minus its test score), for both steps of
    the choice: the evaluation during training and the confirmation."""
    import numpy as np
    from scipy import stats

    from sir.eval.metrics import wilson_interval

    rates = np.array([r["success_rate"] for r in runs], dtype=float)
    sd = float(rates.std(ddof=1)) if len(runs) > 1 else 0.0
    half = float(stats.t.ppf(0.975, len(runs) - 1) * sd / np.sqrt(len(runs))) if len(runs) > 1 else float("nan")
    successes = sum(round(r["success_rate"] * r["episodes"]) for r in runs)
    episodes = sum(r["episodes"] for r in runs)
    last_k = [r["last_k_success"] for r in runs if r.get("last_k_success") is not None]
    optimism = [r["choosing_success"] - r["success_rate"] for r in runs if r.get("choosing_success") is not None]
    from sir.results.report import confirming_success

    confirmed = [(confirming_success(r), r["success_rate"]) for r in runs]
    confirming_optimism = [c - t for c, t in confirmed if c is not None]
    return {
        **base,
        "demos": runs[0].get("demos") or base.get("demos"),
        "training_seeds": [r["seed"] for r in runs],
        "success_per_seed": [float(v) for v in rates],
        "success_mean": float(rates.mean()), "success_std": sd,
        "success_ci95": [max(0.0, rates.mean() - half), min(1.0, rates.mean() + half)] if len(runs) > 1 else None,
        "pooled_ci95": list(wilson_interval(successes, episodes)),
        "last_k_mean": float(np.mean(last_k)) if last_k else None,
        "optimism_mean": float(np.mean(optimism)) if optimism else None,
        "confirming_optimism_mean": float(np.mean(confirming_optimism)) if confirming_optimism else None,
        "frames": runs[0]["frames"], "train_wall_s": float(np.mean([r["train_wall_s"] for r in runs])),
        "runs": runs,
        "sir": runs[-1].get("sir"),
    }


def matches(summary: dict[str, Any], settings: dict[str, Any], repo_id: str, cfg: ResultsConfig) -> bool:
    """Whether a summary's runs are this task's as this run would make them: the same recipe
    (and --train-args), demos, test episodes and last-k. The commit is provenance, not part of it."""
    return (summary.get("settings") == settings and summary.get("repo_id") == repo_id
            and summary.get("test_episodes") == cfg.eval_episodes and summary.get("test_seed") == cfg.eval_seed
            and summary.get("last_k") == cfg.last_k)


def check_seeds_apart(settings: dict[str, Any], cfg: ResultsConfig) -> None:
    """The test episodes must be none that chose or confirmed the best model."""
    from sir.training.selection import SELECT_SEED

    final = (cfg.eval_seed, cfg.eval_episodes)
    eval_episodes = settings.get("eval_episodes", 10)
    used = {"--eval-seed": (settings.get("eval_seed") or seeds.CHOOSING.start, eval_episodes)}
    if (settings.get("select_top_k", 3) or 0) > 1:
        used["--select-seed"] = (settings.get("select_seed", SELECT_SEED),
                                 settings.get("select_episodes") or 2 * eval_episodes)
    for flag, (first, n) in used.items():
        if seeds.overlap(final, (first, n)):
            raise UserError(f"--eval-seed {cfg.eval_seed} with {cfg.eval_episodes} episodes reuses seeds of the "
                            f"training's {flag} ({first} on, {n} episodes); the test needs episodes that chose "
                            "nothing.")


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
    evaluations it includes: those the loop waited for, not those that ran beside training
    (``eval/beside_training``), whose time the count never held. (Logs from before the mark: a
    count that goes down starts a process; evaluations logged without the flag were waited for.)
    """
    train_s = eval_s = 0.0
    last = evals_in_last = evals_so_far = 0.0
    for record in records(metrics_path):
        elapsed = record.get("train/elapsed_s")
        if "eval/wall_time_s" in record:
            if not record.get("eval/beside_training"):
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
    return metrics


def outcomes(per_episode: list[dict[str, Any]]) -> str:
    """Per-episode successes as a string, "1" or "0" per episode in seed order: what
    sir.eval.paired needs to compare two rows' models episode by episode on the test seeds."""
    return "".join("1" if e["success"] else "0" for e in sorted(per_episode, key=lambda e: e["seed"]))


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
    per_seed = ", ".join(f"{100 * v:.0f}" for v in r["success_per_seed"])
    return (f"{100 * r['success_mean']:.1f}% mean over training seeds {r['training_seeds']} ({per_seed}; "
            f"{r['test_episodes']} test episodes each), training {r['train_wall_s'] / 60:.1f} min a seed")


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
    words = sys.argv[1:] if argv is None else argv
    return run_results(parse_config(argv), command=f"python -m sir.results.run {shlex.join(words)}".rstrip())


if __name__ == "__main__":
    main()
