"""The results page: the measured table, the learning curves and the commands of each row.

The part of ``docs/results.md`` between the two markers below is rewritten from the tasks'
summaries (``docs/results/<Task>.json``); the rest of the page (the analysis) is kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sir import atomic
from sir.results.recipes import TASKS

BEGIN, END = "<!-- results table: begin (written by python -m sir.results.run) -->", "<!-- results table: end -->"
CURVES_PNG = "results_curves.png"


def collect_results(summaries: Path) -> list[dict[str, Any]]:
    """The summaries (``<Task>.json``) in ``summaries``, in the table's task order."""
    rows = []
    for name in TASKS:
        path = summaries / f"{name}.json"
        if path.is_file():
            rows.append(json.loads(path.read_text()))
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| task | policy | demos (frames) | steps x batch | training a seed | test success: mean over training "
             "seeds (sd) | per seed | 95% CI over seeds | last-k during training | optimism of best_model (training / "
             "confirming) | aim | "
             "published |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        refs = "; ".join(f"{ref.method} {ref.success}%" for ref in TASKS[r["task"]].references) or "none published"
        args = r["settings"].get("policy_args")
        policy = f"{r['policy']} `{r['preset']}`" + (f" + `{args}`" if args else "")
        ci = r.get("success_ci95")
        interval = f"{100 * ci[0]:.0f}-{100 * ci[1]:.0f}%" if ci else "(one seed)"
        per_seed = ", ".join(f"{100 * v:.0f}" for v in r["success_per_seed"])
        last_k = "-" if r.get("last_k_mean") is None else f"{100 * r['last_k_mean']:.0f}% (last {r['last_k']})"
        optimism = " / ".join("-" if r.get(k) is None else f"{100 * r[k]:+.0f}"
                              for k in ("optimism_mean", "confirming_optimism_mean")) + " points"
        lines.append(
            f"| {r['task']} | {policy} | {r['demos']} ({r['frames']}) | {r['training_steps']} x {r['batch_size']} | "
            f"{r['train_wall_s'] / 60:.0f} min | **{100 * r['success_mean']:.0f}%** ({100 * r['success_std']:.0f}) | "
            f"{per_seed} ({r['test_episodes']} ep. each) | {interval} | {last_k} | {optimism} | "
            f"{100 * r['aim']:.0f}% | {refs} |")
    return "\n".join(lines)


def curves(rows: list[dict[str, Any]]) -> str:
    lines = ["Success rate of the evaluations during training (choosing seeds, 100000 on; best_model was chosen "
             "among them and scored above on test seeds), step: success, per training seed:", ""]
    for r in rows:
        for run in r["runs"]:
            points = ", ".join(f"{p['step']}: {100 * p['success_rate']:.0f}%" for p in run["curve"])
            sel = run.get("selection") or {}
            scores = {c["step"]: c.get("confirmation") or {} for c in sel.get("candidates", [])}
            how = f"; best_model step {run['best_step']}"
            if sel.get("chosen_step") in scores and "success_rate" in scores[sel["chosen_step"]]:
                confirmed = ", ".join(f"{step}: {100 * c['success_rate']:.1f}%" for step, c in scores.items()
                                      if "success_rate" in c)
                how = (f"; the {len(scores)} best confirmed on {sel['confirmation']['episodes']} other episodes "
                       f"({confirmed}), best_model step {sel['chosen_step']}")
            lines.append(f"- **{r['task']}**, seed {run['seed']} ({r['settings'].get('eval_episodes', 10)} episodes "
                         f"each): {points}{how}; test {100 * run['success_rate']:.0f}%")
    return "\n".join(lines)


def confirming_success(run: dict[str, Any]) -> float | None:
    """The chosen model's score on the confirming episodes (the score that chose it among the
    candidates), from the run's selection record; None when nothing was confirmed."""
    sel = run.get("selection") or {}
    chosen = next((c for c in sel.get("candidates", []) if c.get("step") == sel.get("chosen_step")), None)
    return ((chosen or {}).get("confirmation") or {}).get("success_rate")


def optimism(rows: list[dict[str, Any]]) -> str:
    """The optimism of the best-model choice over every run of the table, through
    sir.eval.paired: each run's test score paired with the score that chose its model, at each
    step of the choice (the evaluation during training, then the confirmation)."""
    from sir.eval.paired import compare_arms

    runs = [run for r in rows for run in r["runs"]]
    steps = [("the evaluation during training (20 choosing episodes)", [run.get("choosing_success") for run in runs]),
             ("its confirmation (40 confirming episodes)", [confirming_success(run) for run in runs])]
    lines = ["The optimism of the choice over all runs of the table (the score that chose a run's best_model minus "
             "its test score; mean over runs with a 95% t-interval, `sir.eval.paired.compare_arms`, runs paired "
             "with themselves):", "",
             "| the score that chose | runs | mean optimism | 95% t-interval | runs above / equal / below their test "
             "score |", "| --- | --- | --- | --- | --- |"]
    for name, chose in steps:
        pairs = [(run["success_rate"], c) for run, c in zip(runs, chose, strict=True) if c is not None]
        if not pairs:
            continue
        cmp = compare_arms([t for t, _ in pairs], [c for _, c in pairs])
        ci = cmp["mean_ci95"]
        interval = f"{100 * ci[0]:+.1f} to {100 * ci[1]:+.1f}" if ci else "(one run)"
        lines.append(f"| {name} | {cmp['seeds']} | {100 * cmp['mean_difference']:+.1f} points | {interval} | "
                     f"{cmp['b_better']} / {cmp['equal']} / {cmp['a_better']} |")
    return "\n".join(lines)


def provenance(rows: list[dict[str, Any]], summaries: Path, report: Path) -> str:
    """Where each row's summary is, and the commit of sir it was measured at."""
    import os

    where = os.path.relpath(summaries, report.parent)
    parts = []
    for r in rows:
        commits = []
        for run in r["runs"]:
            sir = run.get("sir") or {}
            commit = sir.get("commit")
            commits.append(f"seed {run['seed']} `{commit[:7]}`" + (" with local changes" if sir.get("dirty") else "")
                           if commit else f"seed {run['seed']} (commit not recorded)")
        parts.append(f"{r['task']}: {', '.join(commits)}")
    return (f"Each row's summary (row, each seed's run and curve, recipe settings, commit of sir) is "
            f"`{where}/<task>.json`; the runs were made by sir at commit {'; '.join(parts)}.")


def commands(rows: list[dict[str, Any]]) -> str:
    parts = []
    for r in rows:
        seeds = ",".join(str(s) for s in r["training_seeds"])
        lines = r["runs"][0]["commands"][:1] + [line for run in r["runs"] for line in run["commands"][1:]]
        parts.append(f"**{r['task']}** (or `python -m sir.results.run --tasks {r['task']} --training-seeds {seeds}`):"
                     "\n\n```bash\n" + "\n".join(lines) + "\n```")
    return "\n\n".join(parts)


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    if not any(run["curve"] for r in rows for run in r["runs"]):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, r in enumerate(rows):
        for j, run in enumerate(r["runs"]):
            ax.plot([p["step"] for p in run["curve"]], [100 * p["success_rate"] for p in run["curve"]], marker="o",
                    color=f"C{i}", alpha=0.8, label=r["task"] if j == 0 else None)
    ax.set_xlabel("training step")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic.save_figure(fig, path)
    plt.close(fig)
    return True


def write_report(summaries: Path, report: Path) -> None:
    """Rewrite the generated part of ``report`` (created with a heading if missing)."""
    rows = collect_results(summaries)
    png = report.with_name(CURVES_PNG)
    section = [BEGIN, "", table(rows), "", curves(rows), ""]
    if rows:
        section += [optimism(rows), "", provenance(rows, summaries, report), ""]
    if plot(rows, png):
        section += [f"![learning curves]({png.name})", ""]
    section += ["### Commands", "", commands(rows), "", END]
    text = report.read_text() if report.is_file() else "# Results\n\n" + BEGIN + "\n" + END + "\n"
    head, found, rest = text.partition(BEGIN)
    tail = rest.partition(END)[2] if found else "\n"
    atomic.write_text(report, head + "\n".join(section) + tail)
