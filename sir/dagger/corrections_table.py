"""The DAgger experiment's corrections table (``bc_vs_dagger_corrections.csv``): per seed, mode
and round, what the corrector's log of the round's dataset (``meta/sir_corrections.jsonl``)
shows of its deployments: where the takeovers happened, how long the corrections ran and how
they ended."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sir import atomic

CORRECTIONS_CSV = "bc_vs_dagger_corrections.csv"


def recording_id(seed: int, mode: str, k: int) -> str:
    """The dataset of round ``k``'s deployments for ``mode`` and ``seed``: round 1 is recorded
    once per seed, from the shared round-0 model, for every mode; later rounds each mode's own."""
    return f"shared_s{seed}_r1" if k == 1 else f"{mode}_s{seed}_r{k}"


def correction_rows(root: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per DAgger row whose round's dataset is under ``root``: its deployments as the
    corrector's log shows them (every episode run, kept or not). Round 1's row of every mode
    is the one shared recording's."""
    import json
    from collections import Counter

    import numpy as np

    from sir.data.record import journal

    out = []
    for r in rows:
        log = root / recording_id(int(r["seed"]), r["mode"], int(r["round"])) / journal.CORRECTIONS
        if r["arm"] != "dagger" or not log.is_file():
            continue
        episodes = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        corrections = [c for e in episodes for c in e["corrections"]]
        lengths = [int(c["steps"]) for c in corrections]
        # A correction without a hand-back ran to the episode's end.
        ends = Counter(c["hand_back"] or "episode end" for c in corrections)
        out.append({
            "seed": r["seed"], "mode": r["mode"], "round": r["round"], "deployments": len(episodes),
            "successes": sum(bool(e["success"]) for e in episodes),
            "autonomous_successes": sum(bool(e["success"]) and not e["corrections"] for e in episodes),
            "takeovers": len(corrections), "labels": sum(lengths),
            "correction_median": float(np.median(lengths)) if lengths else None,
            "corrections_at_cap": ends.get("cap", 0),
            "phases": _counts(Counter(c["phase"] for c in corrections)),
            "reasons": _counts(Counter(c["reason"] for c in corrections)),
            "hand_backs": _counts(ends),
        })
    return out


def _counts(counter: Any) -> str:
    return "; ".join(f"{key}: {n}" for key, n in counter.most_common())


def write_corrections(out: Path, root: Path, rows: list[dict[str, Any]]) -> None:
    """``CORRECTIONS_CSV`` for the rows whose datasets are here; the saved rows of the others
    (datasets on another machine) are kept."""
    import csv

    found = correction_rows(root, rows)
    if not found:
        return
    new = {(r["seed"], r["mode"], r["round"]) for r in found}
    try:
        with (out / CORRECTIONS_CSV).open() as f:
            kept = [r for r in csv.DictReader(f) if (int(r["seed"]), r["mode"], int(r["round"])) not in new]
    except OSError:
        kept = []
    order = {key: i for i, key in enumerate((r["seed"], r["mode"], r["round"]) for r in rows)}
    merged = sorted(kept + found, key=lambda r: order.get((int(r["seed"]), r["mode"], int(r["round"])), len(order)))
    atomic.write_csv(out / CORRECTIONS_CSV, merged)
