"""A comparison of models (``sir.eval.compare``) as people read it: markdown tables for the
console, and a plot of the rates with their intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sir import atomic


def _percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def _interval(ci: list[float] | None) -> str:
    return "-" if ci is None else f"{100 * ci[0]:.0f}-{100 * ci[1]:.0f}%"


def _points(x: float) -> str:
    return f"{100 * x:+.1f}"


def _difference(value: float, ci: list[float] | None) -> str:
    """A difference of rates in percentage points, with its interval."""
    return f"{_points(value)} pts" + ("" if ci is None else f" [{_points(ci[0])}, {_points(ci[1])}]")


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _table(header: list[str], rows: list[list[Any]], numbers: range) -> list[str]:
    """A markdown table whose columns ``numbers`` are right-aligned."""
    align = ["---:" if i in numbers else "---" for i in range(len(header))]
    return [f"| {' | '.join(map(str, row))} |" for row in [header, align, *rows]]


def markdown(comparison: dict[str, Any]) -> str:
    """The models' rates, the pairs' paired tests, the arms and the arms' pairs, as tables."""
    seeds = comparison["seeds"]
    sections = [[f"Paired on {comparison['episodes']} episodes (seeds {seeds[0]}-{seeds[-1]}) of "
                 f"{comparison['env'] or 'the same env'}, at most {comparison['max_steps'] or 'the horizon'} steps "
                 f"each; verdicts at the {comparison['alpha']:g} level."]]
    if comparison["models"]:
        sections.append(_table(["model", "success rate", "95% Wilson CI", "episodes"],
                               [[name, _percent(m["success_rate"]), _interval(m["success_ci95"]), m["episodes"]]
                                for name, m in comparison["models"].items()], numbers=range(1, 4)))
    if comparison["pairs"]:
        holm = " (Holm)" if comparison["holm"]["pairs"] else ""
        sections.append(_table(
            ["A", "B", "both", "only A", "only B", "neither", f"McNemar p{holm}", "B - A (95% Newcombe CI)",
             "verdict"],
            [[r["a"], r["b"], r["both"], r["only_a"], r["only_b"], r["neither"], _p(r["p_adjusted"]),
              _difference(r["difference"], r["difference_ci95"]), r["verdict"]] for r in comparison["pairs"]],
            numbers=range(2, 8)))
    if comparison["arms"]:
        sections.append(_table(["arm", "runs", "success rate per run", "mean"],
                               [[name, len(a["runs"]), ", ".join(_percent(r["success_rate"]) for r in a["runs"]),
                                 _percent(a["mean_rate"])] for name, a in comparison["arms"].items()],
                               numbers=range(1, 4)))
    if comparison["arm_pairs"]:
        holm = " (Holm)" if comparison["holm"]["arm_pairs"] else ""
        sections.append(_table(
            ["A", "B", "seeds", "B - A per seed", "mean B - A (95% t CI)", "B>A / B<A / =", f"t-test p{holm}",
             "verdict"],
            [[r["a"], r["b"], r["seeds"], ", ".join(_points(d) for d in r["differences"]),
              _difference(r["mean_difference"], r["mean_ci95"]), f"{r['b_better']} / {r['a_better']} / {r['equal']}",
              _p(r["p_adjusted"]), r["verdict"]] for r in comparison["arm_pairs"]],
            numbers=range(2, 7)))
    return "\n\n".join("\n".join(lines) for lines in sections)


def plot(path: Path, comparison: dict[str, Any]) -> Path:
    """Each model's rate with its 95% Wilson interval, and each arm's runs with their mean."""
    # The object-oriented Figure API with an Agg canvas, as the training history's plot:
    # no pyplot, so no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [(name, m) for name, m in comparison["models"].items()]
    arms = list(comparison["arms"].items())
    fig = Figure(figsize=(7, 1.2 + 0.45 * (len(rows) + len(arms))), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    labels = []
    for y, (name, m) in enumerate(rows):
        rate, (low, high) = 100 * m["success_rate"], m["success_ci95"]
        ax.errorbar([rate], [y], xerr=[[rate - 100 * low], [100 * high - rate]], fmt="o", color="tab:blue",
                    capsize=4, label="model: rate, 95% Wilson interval" if y == 0 else None)
        labels.append(name)
    for i, (name, arm) in enumerate(arms):
        y = len(rows) + i
        ax.plot([100 * r["success_rate"] for r in arm["runs"]], [y] * len(arm["runs"]), "x", color="tab:gray",
                label="arm: one run" if i == 0 else None)
        ax.plot([100 * arm["mean_rate"]], [y], "D", color="tab:orange",
                label="arm: mean of its runs" if i == 0 else None)
        labels.append(name)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlim(-2, 102)
    ax.set_xlabel(f"success rate (%) on {comparison['episodes']} paired episodes")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(loc="best", fontsize="small")
    return atomic.save_figure(fig, path)
