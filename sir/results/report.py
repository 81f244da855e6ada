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
    lines = ["| task | policy | demos (frames) | steps x batch | best step | training | success (95% CI) | aim | "
             "published |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        low, high = r["success_ci95"]
        refs = "; ".join(f"{ref.method} {ref.success}%" for ref in TASKS[r["task"]].references) or "none published"
        args = r["settings"].get("policy_args")
        policy = f"{r['policy']} `{r['preset']}`" + (f" + `{args}`" if args else "")
        lines.append(
            f"| {r['task']} | {policy} | {r['demos']} ({r['frames']}) | {r['training_steps']} x {r['batch_size']} | "
            f"{r['best_step']} | {r['train_wall_s'] / 60:.0f} min | **{100 * r['success_rate']:.0f}%** "
            f"({100 * low:.0f}-{100 * high:.0f}%, {r['episodes']} ep.) | {100 * r['aim']:.0f}% | {refs} |")
    return "\n".join(lines)


def curves(rows: list[dict[str, Any]]) -> str:
    lines = ["Success rate of the evaluations during training (seeds 100000 on; the best model evaluated above, "
             "on other seeds, was chosen among them), step: success:", ""]
    for r in rows:
        points = ", ".join(f"{p['step']}: {100 * p['success_rate']:.0f}%" for p in r["curve"])
        sel = r.get("selection") or {}
        scores = {c["step"]: c.get("confirmation") or {} for c in sel.get("candidates", [])}
        how = ""
        if sel.get("chosen_step") in scores and "success_rate" in scores[sel["chosen_step"]]:
            confirmed = ", ".join(f"{step}: {100 * c['success_rate']:.1f}%" for step, c in scores.items()
                                  if "success_rate" in c)
            how = (f"; the {len(scores)} best confirmed on {sel['confirmation']['episodes']} other episodes "
                   f"({confirmed}), best_model step {sel['chosen_step']}")
        lines.append(f"- **{r['task']}** ({r['settings'].get('eval_episodes', 10)} episodes each): {points}{how}")
    return "\n".join(lines)


def provenance(rows: list[dict[str, Any]], summaries: Path, report: Path) -> str:
    """Where each row's summary is, and the commit of sir it was measured at."""
    import os

    where = os.path.relpath(summaries, report.parent)
    parts = []
    for r in rows:
        sir = r.get("sir") or {}
        commit = sir.get("commit")
        parts.append(f"{r['task']} `{commit[:7]}`" + (" with local changes" if sir.get("dirty") else "")
                     if commit else f"{r['task']} (commit not recorded)")
    return (f"Each row's summary (row, curve, recipe settings, commit of sir) is `{where}/<task>.json`, "
            f"written by sir at commit {', '.join(parts)}.")


def commands(rows: list[dict[str, Any]]) -> str:
    parts = []
    for r in rows:
        parts.append(f"**{r['task']}** (or `python -m sir.results.run --tasks {r['task']}`):\n\n```bash\n"
                     + "\n".join(r["commands"]) + "\n```")
    return "\n\n".join(parts)


def plot(rows: list[dict[str, Any]], path: Path) -> bool:
    if not any(r["curve"] for r in rows):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for r in rows:
        ax.plot([p["step"] for p in r["curve"]], [100 * p["success_rate"] for p in r["curve"]], marker="o",
                label=r["task"])
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
        section += [provenance(rows, summaries, report), ""]
    if plot(rows, png):
        section += [f"![learning curves]({png.name})", ""]
    section += ["### Commands", "", commands(rows), "", END]
    text = report.read_text() if report.is_file() else "# Results\n\n" + BEGIN + "\n" + END + "\n"
    head, found, rest = text.partition(BEGIN)
    tail = rest.partition(END)[2] if found else "\n"
    atomic.write_text(report, head + "\n".join(section) + tail)
