"""The BC-versus-DAgger experiment's tables: its rows as the CSV holds them, the summary over
seeds with its paired statistics, and the plot.

A row (``bc_vs_dagger.csv``) is one model: seed, arm, mode, round, the labels its arm had
been given (``expert_frames``), its training steps, and its score, ``success_rate``: the mean
success of its last K checkpoints (``last_k_steps``, each one's rate in ``last_k_rates``) on
the same test episodes (from ``eval_seed`` on), with, per episode, how many of those
checkpoints succeeded in it (``episode_successes``), which pairs two models episode by
episode. DAgger rows add the round's deployments: the intervention ratio, takeovers per
episode and ``autonomous_success_rate``, the share of deployments the policy finished with
no takeover (round k's are the deployments of round k-1's model, from which round k learns).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sir import atomic

RESULTS_CSV = "bc_vs_dagger.csv"
RESULTS_PNG = "bc_vs_dagger.png"
SUMMARY_CSV = "bc_vs_dagger_summary.csv"
DEPLOYMENT_COLUMNS = ("intervention_ratio", "takeovers_per_episode", "autonomous_success_rate")


def typed(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row with its numbers back (empty cells are None)."""
    out: dict[str, Any] = dict(row)
    for key in ("seed", "round", "expert_frames", "training_steps", "eval_seed"):
        if key in row:
            out[key] = int(row[key]) if row[key] not in (None, "") else None
    for key in ("success_rate", *DEPLOYMENT_COLUMNS):
        out[key] = float(row[key]) if row.get(key) not in (None, "") else None
    return out


def episode_fractions(row: dict[str, Any]) -> list[float] | None:
    """Per test episode, the fraction of the row's last checkpoints that succeeded in it
    (None where the row holds no per-episode outcomes)."""
    counts = [int(w) for w in str(row.get("episode_successes") or "").split()]
    checkpoints = len(str(row.get("last_k_steps") or "").split())
    if not counts or not checkpoints:
        return None
    return [c / checkpoints for c in counts]


def checkpoint_spread(row: dict[str, Any]) -> tuple[float, float] | None:
    """(the standard deviation of the row's last checkpoints' rates, the one a rate of the
    same mean has from its episodes alone, sqrt(p(1 - p)/n)); None without several rates.
    A spread well above the second: the checkpoints differ by more than their binomial noise."""
    import numpy as np

    rates = [float(w) for w in str(row.get("last_k_rates") or "").split()]
    episodes = len(str(row.get("episode_successes") or "").split())
    if len(rates) < 2 or not episodes:
        return None
    p = float(np.mean(rates))
    return float(np.std(rates, ddof=1)), math.sqrt(p * (1 - p) / episodes)


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (arm, mode, round), over seeds: mean labels, mean and spread of success, the spread
    of the models' last checkpoints beside their binomial noise, the deployments' intervention
    ratio, takeovers per episode and autonomous success, and for DAgger arms the paired
    difference to BC at the same round through sir.eval.paired (the statistics ``python -m
    sir.eval.compare`` reports): per seed, mean, 95% t-interval, a sign count, the t-test's p
    and, across the modes of a round, Holm's adjustment of it with Bonferroni's intervals
    (``minus_bc_low_simultaneous``/``_high_``: 1 - 0.05/m, which hold together for the m modes;
    Holm's step-down gives p-values, not intervals); and how the variance of the per-seed
    difference splits between the test episodes and the models (``variance_split``):
    ``minus_bc_sd`` over seeds, ``minus_bc_sd_episodes`` and ``minus_bc_sd_models`` its parts
    (square roots of the variances), ``minus_bc_episode_share`` the episodes' share."""
    import numpy as np

    from sir.eval.paired import ALPHA, compare_arms, holm, variance_split

    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["arm"], r["mode"], int(r["round"])), []).append(r)
    bc = {(int(r["seed"]), int(r["round"])): r for r in rows if r["arm"] == "bc"}
    out = []
    for (arm, mode, k), rs in groups.items():
        rates = np.array([r["success_rate"] for r in rs], dtype=float)
        spreads = [s for s in map(checkpoint_spread, rs) if s is not None]
        entry = {"arm": arm, "mode": mode, "round": k, "seeds": len(rs),
                 "expert_frames": round(float(np.mean([r["expert_frames"] for r in rs]))),
                 "success_mean": float(rates.mean()), "success_std": float(rates.std(ddof=1)) if len(rs) > 1 else 0.0,
                 "per_seed": " ".join(f"{100 * v:.0f}" for v in rates),
                 "intervention_ratio": _mean(rs, "intervention_ratio"),
                 "minus_bc": None, "minus_bc_low": None, "minus_bc_high": None, "minus_bc_per_seed": "",
                 "minus_bc_sign": "", "minus_bc_p": None, "minus_bc_p_holm": None,
                 "minus_bc_low_simultaneous": None, "minus_bc_high_simultaneous": None,
                 "minus_bc_sd": None, "minus_bc_sd_episodes": None, "minus_bc_sd_models": None,
                 "minus_bc_episode_share": None,
                 "takeovers_per_episode": _mean(rs, "takeovers_per_episode"),
                 "autonomous_success_rate": _mean(rs, "autonomous_success_rate"),
                 "checkpoint_sd": float(np.mean([s[0] for s in spreads])) if spreads else None,
                 "checkpoint_binomial_sd": float(np.mean([s[1] for s in spreads])) if spreads else None}
        paired = [(bc[(int(r["seed"]), k)], r) for r in rs if arm == "dagger" and (int(r["seed"]), k) in bc]
        if paired:
            arms = compare_arms([a["success_rate"] for a, _ in paired], [b["success_rate"] for _, b in paired])
            low, high = arms["mean_ci95"] or (None, None)
            entry.update(minus_bc=arms["mean_difference"], minus_bc_low=low, minus_bc_high=high,
                         minus_bc_per_seed=" ".join(f"{100 * d:+.0f}" for d in arms["differences"]),
                         minus_bc_sign=f"{arms['b_better']} above, {arms['a_better']} below, {arms['equal']} equal",
                         minus_bc_p=arms["p_value"])
            entry["_paired"] = paired
            fractions = [(episode_fractions(a), episode_fractions(b)) for a, b in paired]
            if all(x is not None and y is not None and len(x) == len(y) for x, y in fractions):
                split = variance_split([x for x, _ in fractions], [y for _, y in fractions])
                if split is not None:
                    entry.update(minus_bc_sd=math.sqrt(split["total"]),
                                 minus_bc_sd_episodes=math.sqrt(split["episodes"]),
                                 minus_bc_sd_models=math.sqrt(split["models"]),
                                 minus_bc_episode_share=split["episode_share"])
        out.append(entry)
    for k in {e["round"] for e in out}:  # Holm across the modes compared with BC at a round
        tested = [e for e in out if e["round"] == k and e["minus_bc_p"] is not None]
        for e, adjusted in zip(tested, holm([e["minus_bc_p"] for e in tested]), strict=True):
            e["minus_bc_p_holm"] = adjusted
            paired = e["_paired"]
            wide = compare_arms([a["success_rate"] for a, _ in paired], [b["success_rate"] for _, b in paired],
                                confidence=1 - ALPHA / len(tested))["mean_ci95"]
            e["minus_bc_low_simultaneous"], e["minus_bc_high_simultaneous"] = wide
    for e in out:
        e.pop("_paired", None)
    return out


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(sum(values) / len(values)) if values else None


def print_summary(summary: list[dict[str, Any]]) -> None:
    print(f"\n{'arm':<8} {'mode':<24} {'round':>5} {'seeds':>5} {'labels':>7} {'success (mean ± sd)':>20} "
          f"{'minus BC (95% CI)':>22} {'episodes share':>14}")
    for s in summary:
        diff = "" if s["minus_bc"] is None else f"{100 * s['minus_bc']:+.1f}" + (
            "" if s["minus_bc_low"] is None else f" ({100 * s['minus_bc_low']:+.0f}, {100 * s['minus_bc_high']:+.0f})")
        share = "" if s.get("minus_bc_episode_share") is None else f"{100 * s['minus_bc_episode_share']:.0f}%"
        print(f"{s['arm']:<8} {s['mode'] or '-':<24} {s['round']:>5} {s['seeds']:>5} {s['expert_frames']:>7} "
              f"{100 * s['success_mean']:>12.1f}% ± {100 * s['success_std']:.1f} {diff:>22} {share:>14}")


def write_results(out: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows, their summary and the plot, in ``out``; returns the summary."""
    atomic.write_csv(out / RESULTS_CSV, rows)
    summary = summarize(rows)
    atomic.write_csv(out / SUMMARY_CSV, summary)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    curves: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in sorted(summary, key=lambda s: s["round"]):
        curves.setdefault((s["arm"], s["mode"]), []).append(s)
    start = next((s for s in summary if s["arm"] == "bc" and s["round"] == 0), None)
    for i, ((arm, mode), pts) in enumerate(curves.items()):
        if arm == "dagger" and start is not None:
            pts = [start, *pts]  # every mode starts from the shared round-0 model
        ax.errorbar([p["expert_frames"] for p in pts], [p["success_mean"] for p in pts],
                    yerr=[p["success_std"] for p in pts], marker="o", capsize=3, color=f"C{i}",
                    label=f"{mode or 'BC on more demos'} (mean ± sd)")
    ax.set_xlabel("expert labels (demo frames + corrector frames)")
    ax.set_ylabel("success rate (mean of the last checkpoints)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic.save_figure(fig, out / RESULTS_PNG)
    plt.close(fig)
    return summary
