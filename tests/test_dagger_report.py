"""docs/dagger.md's experiment section, written from the experiment's rows by
``python -m sir.dagger.report``: its figures are the rows', its aims are checked on them, the
page around it is kept, and the committed page is what its committed rows give."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rows(bc: dict[int, float], modes: dict[str, dict[int, float]], ratios: dict[str, tuple[float, float]]):
    """Two rounds of three seeds: round 0 BC, then round 1 and 2 for BC and each mode; the
    round-2 rates are the given ones, round 1 is 0.1 below them."""
    rows = []
    for seed in bc:
        rows.append({"seed": seed, "arm": "bc", "mode": "", "round": 0, "expert_frames": 1000, "training_steps": 2000,
                     "success_rate": 0.2, "intervention_ratio": None, "takeovers_per_episode": None,
                     "autonomous_success_rate": None})
        for k in (1, 2):
            late = 0.0 if k == 2 else 0.1
            for mode, rates in modes.items():
                first, last = ratios[mode]
                rows.append({"seed": seed, "arm": "dagger", "mode": mode, "round": k, "expert_frames": 1500 * k,
                             "training_steps": 2000, "success_rate": rates[seed] - late,
                             "intervention_ratio": first if k == 1 else last,
                             "takeovers_per_episode": 2.0 if k == 1 else 2.0 * last / first,
                             "autonomous_success_rate": 0.3})
            rows.append({"seed": seed, "arm": "bc", "mode": "", "round": k, "expert_frames": 1600 * k,
                         "training_steps": 2000, "success_rate": bc[seed] - late, "intervention_ratio": None,
                         "takeovers_per_episode": None, "autonomous_success_rate": None})
    return rows


def _write(tmp_path: Path, rows) -> tuple[Path, Path]:
    from sir.dagger.summary import write_results

    results = tmp_path / "dagger_experiment"
    results.mkdir()
    write_results(results, rows)
    (results / "bc_vs_dagger_args.json").write_text(json.dumps(
        {"env": "PickPlaceCan", "training_steps": 2000, "lr_schedule": "cosine", "eval_episodes": 40,
         "eval_seed": 1000000, "last_k": 3, "earlier_last_k": 1}))
    page = tmp_path / "dagger.md"
    page.write_text("# DAgger\n\nAnalysis before.\n\n<!-- dagger experiment: begin (written by python -m "
                    "sir.dagger.report) -->\nold figures\n<!-- dagger experiment: end -->\n\nAnalysis after.\n")
    return results, page


def _section(page: Path) -> str:
    from sir.dagger.report import BEGIN, END

    return page.read_text().partition(BEGIN)[2].partition(END)[0]


def test_the_section_carries_the_rows_figures_and_checks_the_aims_on_them(tmp_path):
    from sir.dagger.report import main

    bc = {0: 0.40, 1: 0.30, 2: 0.50}
    modes = {"sirius": {0: 0.70, 1: 0.62, 2: 0.75}, "iwr": {0: 0.35, 1: 0.32, 2: 0.55}}
    results, page = _write(tmp_path, _rows(bc, modes, {"sirius": (0.4, 0.2), "iwr": (0.4, 0.5)}))
    main(["--results", str(results), "--report", str(page)])
    text = page.read_text()
    assert text.startswith("# DAgger\n\nAnalysis before.\n") and text.endswith("\n\nAnalysis after.\n")
    assert "old figures" not in text
    section = _section(page)
    assert section.startswith("\n\nPickPlaceCan, 3 seeds at round 2 (0, 1, 2), 2000 steps a model at a cosine "
                              "schedule, each scored on 40 test episodes (seeds 1000000 on): the last round's models "
                              "by their last 3 checkpoints")
    # sirius minus BC per seed: +30, +32, +25 points; mean +29.0; iwr -5, +2, +5.
    assert "| 0 | 40.0 | +30.0 | -5.0 |" in section and "| 1 | 30.0 | +32.0 | +2.0 |" in section
    assert "| `sirius` | 2 | 3 | +29.0 |" in section
    assert "**The best mode at least 15 points above BC at round 2, its simultaneous 95% interval above 0**: met: " \
           "`sirius` +29.0 points" in section
    assert "**Every mode's mean at or above BC's**: met: `sirius` +29.0, `iwr` +0.7." in section
    assert "**`sirius` at or above `iwr`**: met: 69.0% against 40.7%." in section
    # iwr's intervention ratio rose (0.4 -> 0.5): the falling aim is missed, and the line says where.
    assert "in every mode**: missed: `sirius` 0.400 → 0.200, 2.00 → 1.00; `iwr` 0.400 → 0.500, 2.00 → 2.50." \
        in section
    assert "![success against expert labels, mean ± sd over seeds](dagger_experiment/bc_vs_dagger.png)" in section

    # The same page rewritten from rows where no mode clears BC: the aims turn, the page around stays.
    weaker = {"sirius": {0: 0.38, 1: 0.28, 2: 0.52}, "iwr": {0: 0.50, 1: 0.32, 2: 0.55}}
    (results / "bc_vs_dagger.csv").unlink()
    from sir.dagger.summary import write_results

    write_results(results, _rows(bc, weaker, {"sirius": (0.4, 0.2), "iwr": (0.4, 0.3)}))
    main(["--results", str(results), "--report", str(page)])
    section = _section(page)
    assert "above 0**: missed: `iwr` +5.7 points" in section
    assert "**Every mode's mean at or above BC's**: missed: `sirius` -0.7, `iwr` +5.7." in section
    assert "**`sirius` at or above `iwr`**: missed: 39.3% against 45.7%." in section
    assert "in every mode**: met: " in section
    assert page.read_text().count("Analysis after.") == 1


def test_bad_input_ends_with_one_sentence_and_exit_2(tmp_path):
    results = tmp_path / "r"
    results.mkdir()
    for args, says in ((["--results", str(tmp_path / "nowhere")], "is not a folder"),
                       (["--results", str(results), "--report", str(tmp_path / "missing.md")], "does not exist")):
        proc = subprocess.run([sys.executable, "-m", "sir.dagger.report", *args], capture_output=True, text=True,
                              cwd=REPO)
        assert proc.returncode == 2, proc.stderr
        assert says in proc.stderr and "Traceback" not in proc.stderr
    page = tmp_path / "p.md"
    page.write_text("<!-- dagger experiment: begin (written by python -m sir.dagger.report) -->\nno end\n")
    proc = subprocess.run([sys.executable, "-m", "sir.dagger.report", "--results", str(results), "--report",
                           str(page)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "put the end marker back" in proc.stderr
    assert page.read_text().endswith("no end\n")  # nothing on disk lost


def test_the_committed_page_is_what_the_committed_rows_give():
    """docs/dagger.md's experiment section is python -m sir.dagger.report's output from the
    committed docs/dagger_experiment: rows committed without rewriting the page fail here."""
    from sir.dagger.report import BEGIN, END, section

    page = REPO / "docs" / "dagger.md"
    text = page.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    committed = BEGIN + text.partition(BEGIN)[2].partition(END)[0] + END
    assert committed == section(REPO / "docs" / "dagger_experiment", page)


def test_one_seed_says_it_has_no_spread_yet(tmp_path):
    from sir.dagger.report import main

    results, page = _write(tmp_path, _rows({0: 0.4}, {"sirius": {0: 0.7}}, {"sirius": (0.4, 0.2)}))
    main(["--results", str(results), "--report", str(page)])
    section = _section(page)
    assert "1 seed at round 2 (0)" in section and "(one seed: no spread over seeds yet)" in section


def test_a_mode_that_clears_the_bar_is_named_where_the_best_mean_does_not(tmp_path):
    """The aim is read off the best mode by its mean; a mode with a smaller but steadier lead,
    whose simultaneous interval is above 0, is named beside it."""
    from sir.dagger.report import main

    bc = {0: 0.40, 1: 0.30, 2: 0.50}
    # hg-dagger: +55, 0, +40 (mean +31.7, wide); sirius: +20, +20, +18 (mean +19.3, steady).
    modes = {"hg-dagger": {0: 0.95, 1: 0.30, 2: 0.90}, "sirius": {0: 0.60, 1: 0.50, 2: 0.68}}
    results, page = _write(tmp_path, _rows(bc, modes, {"hg-dagger": (0.4, 0.2), "sirius": (0.4, 0.2)}))
    main(["--results", str(results), "--report", str(page)])
    line = next(x for x in _section(page).splitlines() if x.startswith("- **The best mode"))
    assert ": missed: `hg-dagger` +31.7 points, simultaneous interval [-" in line
    assert "; `sirius` (+19.3, [+" in line and line.endswith("]) clears the bar.")
