"""The BC-versus-DAgger experiment's page: the part of ``docs/dagger.md`` between the two
markers below, rewritten from the committed rows (``bc_vs_dagger.csv``, its corrections table
and settings) so the page's figures are the CSVs' own; the analysis around it is kept.

What it writes: the success of every arm at every round (mean and sd over seeds); per mode and
round the paired difference to BC with its 95% t-interval, the simultaneous (Bonferroni)
interval across the round's modes, Holm's p and a sign count (``sir.dagger.summary``, through
``sir.eval.paired``); the last round's per-seed differences; how their variance splits between
the test episodes and the models; the deployments of every round (intervention ratio,
takeovers per episode, autonomous success); what the corrector did; the last checkpoints'
spread beside their binomial noise; and issue 33's aims, each checked against the figures.

    python -m sir.dagger.report                 # docs/dagger_experiment -> docs/dagger.md
    python -m sir.dagger.report --results DIR --report PAGE.md
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sir import atomic
from sir.config import option, parse
from sir.errors import UserError, cli_errors

BEGIN = "<!-- dagger experiment: begin (written by python -m sir.dagger.report) -->"
END = "<!-- dagger experiment: end -->"
BEST_MODE_MARGIN = 0.15  # issue 33's aim: the best mode at least 15 points above BC at the last round

HELP = """Rewrites the BC-versus-DAgger section of a page (between its markers) from the experiment's \
committed rows: success per arm and round, the paired differences to BC with their intervals and Holm's \
correction, per-seed differences, the variance split, the deployments, the corrector's log and the aims."""


@dataclass
class ReportConfig:
    results: str = option("docs/dagger_experiment", "the folder of bc_vs_dagger.csv (python -m sir.dagger.experiment's "
                          "--results)")
    report: str = option("docs/dagger.md", "the page whose section between the markers is rewritten (the rest is kept)")


def read_rows(results: Path) -> list[dict[str, Any]]:
    """The experiment's rows (numbers typed), [] without a CSV."""
    from sir.dagger.summary import RESULTS_CSV, typed

    path = results / RESULTS_CSV
    if not path.is_file():
        return []
    with path.open() as f:
        return [typed(r) for r in csv.DictReader(f)]


def _pct(value: float | None, sign: bool = False, digits: int = 1) -> str:
    if value is None:
        return "-"
    value = round(value, 9)  # a difference of two rates prints as the rates' own difference
    return f"{100 * value:+.{digits}f}" if sign else f"{100 * value:.{digits}f}"


def _interval(low: float | None, high: float | None) -> str:
    return "-" if low is None or high is None else f"[{100 * low:+.1f}, {100 * high:+.1f}]"


def _modes(summary: list[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for s in summary:
        if s["arm"] == "dagger" and s["mode"] not in seen:
            seen.append(s["mode"])
    return seen


def _entry(summary: list[dict[str, Any]], arm: str, mode: str, k: int) -> dict[str, Any] | None:
    return next((s for s in summary if s["arm"] == arm and s["mode"] == mode and s["round"] == k), None)


def success_table(summary: list[dict[str, Any]], modes: list[str], last: int) -> str:
    head = "| round | labels (BC) | BC | " + " | ".join(f"`{m}`" for m in modes) + " |"
    lines = [head, "| " + " | ".join(["---"] + ["---:"] * (len(modes) + 2)) + " |"]
    for k in range(last + 1):
        bc = _entry(summary, "bc", "", k)
        cells = []
        for arm, mode in [("bc", "")] + [("dagger", m) for m in modes]:
            e = _entry(summary, arm, mode, k)
            cells.append("-" if e is None else f"{_pct(e['success_mean'])} ± {_pct(e['success_std'], digits=0)}")
        name = f"{k} (last checkpoints)" if k == last else str(k)
        lines.append(f"| {name} | {bc['expert_frames'] if bc else '-'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def difference_table(summary: list[dict[str, Any]], modes: list[str], last: int) -> str:
    lines = ["| mode | round | seeds | minus BC (points) | 95% t-interval | simultaneous 95% (Bonferroni) | p | Holm p "
             "| seeds above / below / equal |", "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: | --- |"]
    for mode in modes:
        for k in range(1, last + 1):
            e = _entry(summary, "dagger", mode, k)
            if e is None or e["minus_bc"] is None:
                continue
            p = "-" if e["minus_bc_p"] is None else f"{e['minus_bc_p']:.3f}"
            holm = "-" if e["minus_bc_p_holm"] is None else f"{e['minus_bc_p_holm']:.3f}"
            lines.append(f"| `{mode}` | {k} | {e['seeds']} | {_pct(e['minus_bc'], sign=True)} | "
                         f"{_interval(e['minus_bc_low'], e['minus_bc_high'])} | "
                         f"{_interval(e['minus_bc_low_simultaneous'], e['minus_bc_high_simultaneous'])} | {p} | "
                         f"{holm} | {e['minus_bc_sign']} |")
    return "\n".join(lines)


def per_seed_table(rows: list[dict[str, Any]], modes: list[str], last: int) -> str:
    lines = ["| seed | BC | " + " | ".join(f"`{m}` minus BC" for m in modes) + " |",
             "| " + " | ".join(["---:"] * (len(modes) + 2)) + " |"]
    by = {(r["seed"], r["arm"], r["mode"], r["round"]): r for r in rows}
    for seed in sorted({r["seed"] for r in rows if r["round"] == last and r["arm"] == "bc"}):
        bc = by[(seed, "bc", "", last)]["success_rate"]
        cells = []
        for m in modes:
            d = by.get((seed, "dagger", m, last))
            cells.append("-" if d is None else _pct(d["success_rate"] - bc, sign=True))
        lines.append(f"| {seed} | {_pct(bc)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def variance_table(summary: list[dict[str, Any]], modes: list[str], last: int) -> str:
    if not any((e := _entry(summary, "dagger", m, last)) and e["minus_bc_sd"] is not None for m in modes):
        return "(one seed: no spread over seeds yet)"
    lines = ["| mode | sd of the per-seed difference | from the test episodes | from the models | episodes' share of "
             "the variance |", "| --- | ---: | ---: | ---: | ---: |"]
    for m in modes:
        e = _entry(summary, "dagger", m, last)
        if e is None or e["minus_bc_sd"] is None:
            continue
        lines.append(f"| `{m}` | {_pct(e['minus_bc_sd'])} | {_pct(e['minus_bc_sd_episodes'])} | "
                     f"{_pct(e['minus_bc_sd_models'])} | {_pct(e['minus_bc_episode_share'], digits=0)}% |")
    return "\n".join(lines)


def deployment_table(summary: list[dict[str, Any]], modes: list[str], last: int) -> str:
    lines = ["| mode | round | the model deployed | intervention ratio | takeovers per episode | autonomous success |",
             "| --- | ---: | --- | ---: | ---: | ---: |"]
    for m in modes:
        for k in range(1, last + 1):
            e = _entry(summary, "dagger", m, k)
            if e is None or e["intervention_ratio"] is None:
                continue
            deployed = "round 0's BC (shared)" if k == 1 else f"its round {k - 1}"
            lines.append(f"| `{m}` | {k} | {deployed} | {e['intervention_ratio']:.3f} | "
                         f"{e['takeovers_per_episode']:.2f} | {_pct(e['autonomous_success_rate'])}% |")
    return "\n".join(lines)


def corrections_table(results: Path, modes: list[str]) -> str:
    """The corrector's log summed over seeds, per mode and round (round 1: the shared recording,
    once)."""
    from collections import Counter

    from sir.dagger.corrections_table import CORRECTIONS_CSV

    path = results / CORRECTIONS_CSV
    if not path.is_file():
        return ""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    groups: dict[tuple[str, int], list[dict[str, str]]] = {}
    for r in rows:
        k = int(r["round"])
        key = ("shared" if k == 1 else r["mode"], k)
        if k == 1 and any(x["seed"] == r["seed"] for x in groups.get(key, [])):
            continue  # every mode's round 1 is the one shared recording
        groups.setdefault(key, []).append(r)

    def counts(rs: list[dict[str, str]], column: str) -> str:
        total: Counter[str] = Counter()
        for r in rs:
            for part in filter(None, (p.strip() for p in r[column].split(";"))):
                name, _, n = part.rpartition(":")
                total[name.strip()] += int(n)
        return "; ".join(f"{name} {n}" for name, n in total.most_common())

    lines = ["| recording | round | seeds | deployments | successes | takeovers | labels | corrections at the cap | "
             "reasons | hand-backs |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    order = [("shared", 1)] + [(m, k) for m in modes for k in sorted({k for (mm, k) in groups if mm == m})]
    for key in order:
        rs = groups.get(key)
        if not rs:
            continue
        total = {c: sum(int(r[c]) for r in rs) for c in ("deployments", "successes", "takeovers", "labels",
                                                         "corrections_at_cap")}
        name = "shared round 1 (every mode)" if key[0] == "shared" else f"`{key[0]}`"
        lines.append(f"| {name} | {key[1]} | {len(rs)} | {total['deployments']} | {total['successes']} | "
                     f"{total['takeovers']} | {total['labels']} | {total['corrections_at_cap']} | "
                     f"{counts(rs, 'reasons')} | {counts(rs, 'hand_backs')} |")
    return "\n".join(lines)


def checkpoint_table(summary: list[dict[str, Any]], modes: list[str], last: int) -> str:
    lines = ["| arm | sd of the last checkpoints' rates (mean over seeds) | their binomial sd |",
             "| --- | ---: | ---: |"]
    for arm, mode in [("bc", "")] + [("dagger", m) for m in modes]:
        e = _entry(summary, arm, mode, last)
        if e is None or e["checkpoint_sd"] is None:
            continue
        lines.append(f"| {'BC' if arm == 'bc' else f'`{mode}`'} | {_pct(e['checkpoint_sd'])} | "
                     f"{_pct(e['checkpoint_binomial_sd'])} |")
    return "\n".join(lines)


def aims(summary: list[dict[str, Any]], modes: list[str], last: int) -> list[str]:
    """Issue 33's aims, each with the figures that meet or miss it."""
    bc = _entry(summary, "bc", "", last)
    final = {m: e for m in modes if (e := _entry(summary, "dagger", m, last)) is not None and e["minus_bc"] is not None}
    if bc is None or not final:
        return []
    best = max(final, key=lambda m: final[m]["minus_bc"])
    b = final[best]
    low = b["minus_bc_low_simultaneous"]
    met = b["minus_bc"] >= BEST_MODE_MARGIN and low is not None and low > 0
    holm = "-" if b["minus_bc_p_holm"] is None else f"{b['minus_bc_p_holm']:.3f}"
    clear = [m for m, e in final.items() if e["minus_bc"] >= BEST_MODE_MARGIN
             and e["minus_bc_low_simultaneous"] is not None and e["minus_bc_low_simultaneous"] > 0]
    others = [m for m in clear if m != best]
    also = ("" if not others else "; " + ", ".join(
        f"`{m}` ({_pct(final[m]['minus_bc'], sign=True)}, "
        f"{_interval(final[m]['minus_bc_low_simultaneous'], final[m]['minus_bc_high_simultaneous'])})"
        for m in others) + f" clear{'s' if len(others) == 1 else ''} the bar")
    out = [f"- **The best mode at least {100 * BEST_MODE_MARGIN:.0f} points above BC at round {last}, its "
           f"simultaneous 95% interval above 0**: {'met' if met else 'missed'}: `{best}` "
           f"{_pct(b['minus_bc'], sign=True)} points, simultaneous interval "
           f"{_interval(low, b['minus_bc_high_simultaneous'])}, Holm p {holm}{also}."]
    below = [m for m in final if final[m]["minus_bc"] < 0]
    out.append(f"- **Every mode's mean at or above BC's**: {'missed' if below else 'met'}: "
               + ", ".join(f"`{m}` {_pct(final[m]['minus_bc'], sign=True)}" for m in final) + ".")
    if "sirius" in final and "iwr" in final:
        s, i = final["sirius"]["success_mean"], final["iwr"]["success_mean"]
        out.append(f"- **`sirius` at or above `iwr`**: {'met' if s >= i else 'missed'}: {_pct(s)}% against {_pct(i)}%.")
    falling = []
    for m in modes:
        first, end = _entry(summary, "dagger", m, 1), _entry(summary, "dagger", m, last)
        if first is None or end is None or first["intervention_ratio"] is None or end["intervention_ratio"] is None:
            continue
        ok = (end["intervention_ratio"] < first["intervention_ratio"]
              and end["takeovers_per_episode"] < first["takeovers_per_episode"])
        falling.append((m, ok, first, end))
    if falling:
        out.append(f"- **Intervention ratio and takeovers per episode falling from round 1 to {last} in every mode**: "
                   f"{'met' if all(ok for _, ok, _, _ in falling) else 'missed'}: "
                   + "; ".join(f"`{m}` {f['intervention_ratio']:.3f} → {e['intervention_ratio']:.3f}, "
                               f"{f['takeovers_per_episode']:.2f} → {e['takeovers_per_episode']:.2f}"
                               for m, _, f, e in falling) + ".")
    return out


def section(results: Path, page: Path) -> str:
    """The generated section, markers included."""
    from sir.dagger.experiment import ARGS_JSON
    from sir.dagger.summary import RESULTS_PNG, summarize

    rows = read_rows(results)
    rel = Path(*_relative(results, page.parent))
    if not rows:
        return "\n".join([BEGIN, "", f"No rows yet in `{rel}/`: run `make bc-vs-dagger`.", "", END])
    summary = summarize(rows)
    modes = _modes(summary)
    last = max(s["round"] for s in summary)
    settings_path = results / ARGS_JSON
    settings = json.loads(settings_path.read_text()) if settings_path.is_file() else {}
    seeds = sorted({r["seed"] for r in rows if r["round"] == last and r["arm"] == "bc"})
    plural = "s" if len(seeds) != 1 else ""
    out = [BEGIN, "",
           f"{settings.get('env', '?')}, {len(seeds)} seed{plural} at round {last} ({', '.join(map(str, seeds))}), "
           f"{settings.get('training_steps', '?')} steps a model at a {settings.get('lr_schedule', '?')} schedule, "
           f"each scored on {settings.get('eval_episodes', '?')} test episodes (seeds "
           f"{settings.get('eval_seed', '?')} on): the last round's models by their last {settings.get('last_k', '?')} "
           f"checkpoints, the earlier ones' by their last {settings.get('earlier_last_k', '?')}. Rows: "
           f"`{rel}/`; this section is written from them by `python -m sir.dagger.report`.", "",
           "**Success (%, mean ± sd over seeds)**; labels: the demo frames BC trained on at that round, the most "
           "any mode had been given:", "", success_table(summary, modes, last), "",
           "**Each mode minus BC at the same round, paired by seed** (points; the simultaneous interval holds "
           "for the round's modes together):", "", difference_table(summary, modes, last), "",
           f"**Round {last}, per seed** (BC's success and each mode's difference, points):", "",
           per_seed_table(rows, modes, last), "",
           f"**How the variance of the round-{last} difference splits** (`sir.eval.paired.variance_split`: the "
           "test episodes' binomial part against the models'):", "", variance_table(summary, modes, last), "",
           "**The deployments each round learns from** (round k's are round k-1's model with the corrector "
           "watching; autonomous: finished with no takeover):", "", deployment_table(summary, modes, last), ""]
    corrections = corrections_table(results, modes)
    if corrections:
        out += ["**What the corrector did** (summed over seeds, from the recordings' logs):", "", corrections, ""]
    out += [f"**The last checkpoints' spread at round {last}** beside the binomial noise of a rate on these "
            "episodes:", "", checkpoint_table(summary, modes, last), ""]
    checked = aims(summary, modes, last)
    if checked:
        out += ["**Issue 33's aims**, checked on these rows:", "", *checked, ""]
    if (results / RESULTS_PNG).is_file():
        out += [f"![success against expert labels, mean ± sd over seeds]({rel}/{RESULTS_PNG})", ""]
    out.append(END)
    return "\n".join(out)


def _relative(path: Path, start: Path) -> tuple[str, ...]:
    import os

    return tuple(Path(os.path.relpath(path.resolve(), start.resolve())).parts) or (".",)


def write_report(results: Path, page: Path) -> None:
    """Rewrite ``page``'s section between the markers (appended where it has none)."""
    if not page.is_file():
        raise UserError(f"--report {page} does not exist; give the page to write the experiment's section into.")
    text = page.read_text()
    head, found, rest = text.partition(BEGIN)
    if found:
        if END not in rest:
            raise UserError(f"{page} has the line {BEGIN} but not {END}; put the end marker back after the section.")
        tail = rest.partition(END)[2]
    else:
        head, tail = text.rstrip("\n") + "\n\n", "\n"
    atomic.write_text(page, head + section(results, page) + tail)


@cli_errors
def main(argv: list[str] | None = None) -> Path:
    cfg = parse(ReportConfig, argv, "python -m sir.dagger.report", HELP)
    results, page = Path(cfg.results), Path(cfg.report)
    if not results.is_dir():
        raise UserError(f"--results {results} is not a folder; give the experiment's --results folder.")
    write_report(results, page)
    print(f"Wrote the experiment's section of {page} from {results}.")
    return page


if __name__ == "__main__":
    main()
