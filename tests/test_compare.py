"""sir.eval.compare: paired statistics pinned to known values, results files compared without
evaluating, refusals of files that cannot be paired, and two tiny models end to end."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from sir.eval.compare import main, parse_config
from sir.eval.paired import (
    compare_all,
    compare_arms,
    compare_models,
    holm,
    mcnemar_exact,
    newcombe_interval,
    rate,
    variance_split,
)


def _outcomes(both: int, only_a: int, only_b: int, neither: int) -> tuple[list[bool], list[bool]]:
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return a, b


# -- the statistics --------------------------------------------------------------------------


def test_mcnemar_exact_p_of_nine_discordant_episodes_against_one():
    a, b = _outcomes(both=20, only_a=9, only_b=1, neither=20)
    pair = compare_models(a, b)
    assert (pair["both"], pair["only_a"], pair["only_b"], pair["neither"]) == (20, 9, 1, 20)
    # Two-sided exact binomial: 2 * P(X <= 1 | n=10, p=1/2) = 2 * 11 / 1024.
    assert pair["p_value"] == pytest.approx(0.021484375, abs=1e-12)
    assert mcnemar_exact(1, 9) == pytest.approx(0.021484375, abs=1e-12)
    assert pair["difference"] == pytest.approx(-8 / 50)


def test_identical_models_differ_by_nothing():
    a = [True, False, True, True, False, False]
    pair = compare_models(a, a)
    assert pair["only_a"] == pair["only_b"] == 0
    assert pair["difference"] == 0 and pair["p_value"] == 1.0
    low, high = pair["difference_ci95"]
    assert low < 0 < high


def test_newcombe_interval_matches_the_published_paired_example():
    # Cavo et al. 2012 as in Fagerland, Lydersen & Laake's paired 2x2 chapter: the
    # square-and-add interval of -0.0621 is (-0.1186, -0.0046).
    low, high = newcombe_interval({"both": 59, "only_b": 6, "only_a": 16, "neither": 80})
    assert (round(low, 4), round(high, 4)) == (-0.1186, -0.0046)


def test_rates_carry_their_wilson_interval():
    r = rate([True] * 5 + [False] * 5)
    assert r["success_rate"] == 0.5 and r["episodes"] == 10
    assert [round(x, 4) for x in r["success_ci95"]] == [0.2366, 0.7634]


def test_arm_t_interval_matches_a_hand_computation():
    arm = compare_arms([0.5, 0.6, 0.7], [0.6, 0.8, 0.7])
    diffs = [0.1, 0.2, 0.0]
    assert arm["differences"] == pytest.approx(diffs)
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    half = 4.302652729749464 * sd / math.sqrt(3)  # t(0.975, 2 degrees of freedom), from a table
    assert arm["mean_difference"] == pytest.approx(mean)
    assert arm["mean_ci95"] == pytest.approx([mean - half, mean + half])
    assert (arm["b_better"], arm["a_better"], arm["equal"]) == (2, 0, 1)
    assert 0.2 < arm["p_value"] < 0.3  # t = 0.1 / (0.1 / sqrt 3) = 1.732 on 2 degrees of freedom
    one = compare_arms([0.5], [0.7])
    assert one["mean_ci95"] is None and one["p_value"] is None and one["b_better"] == 1


def test_a_bonferroni_interval_is_the_t_interval_at_the_adjusted_level():
    from scipy import stats

    diffs = [0.1, 0.2, 0.0]
    arm = compare_arms([0.5, 0.6, 0.7], [0.6, 0.8, 0.7], confidence=1 - 0.05 / 4)
    half = stats.t.ppf(1 - 0.05 / 8, 2) * statistics.stdev(diffs) / math.sqrt(3)
    assert arm["mean_ci95"] == pytest.approx([0.1 - half, 0.1 + half])
    assert arm["p_value"] == compare_arms([0.5, 0.6, 0.7], [0.6, 0.8, 0.7])["p_value"]


def test_the_variance_of_paired_differences_splits_into_episodes_and_models_by_hand():
    a = [[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]]
    b = [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    split = variance_split(a, b)
    # Per-seed differences 0.25, 0.5, 0 (variance 0.0625 over seeds); per episode [0,1,0,0],
    # [1,1,0,0], [0,0,0,0]: s² 1/4, 1/3, 0 over 4 episodes, so the episodes' part is their mean / 4.
    episodes = (0.25 / 4 + (1 / 3) / 4 + 0) / 3
    assert split["total"] == pytest.approx(0.0625)
    assert split["episodes"] == pytest.approx(episodes)
    assert split["models"] == pytest.approx(0.0625 - episodes)
    assert split["episode_share"] == pytest.approx(episodes / 0.0625)
    # For one checkpoint each, s²(b − a) = s²(a) + s²(b) − 2 cov(a, b): two rates' binomial noise
    # less what pairing them on the same episodes removes.
    first = statistics.variance(a[0]) + statistics.variance(b[0]) - 2 * statistics.covariance(a[0], b[0])
    assert first / 4 == pytest.approx(0.25 / 4)
    # A model scored by its last 3 checkpoints: per episode the fraction that succeeded.
    thirds = variance_split([[0, 1 / 3], [1, 2 / 3]], [[2 / 3, 1], [1, 1]])
    assert thirds["total"] == pytest.approx(statistics.variance([2 / 3, 1 / 6]))
    assert thirds["episodes"] == pytest.approx((0 + statistics.variance([0, 1 / 3]) / 2) / 2)
    # Seeds that agree more than their episodes' noise: the models' part is held at 0.
    agree = variance_split([[0, 1], [1, 0]], [[1, 1], [1, 1]])
    assert agree["total"] == 0 and agree["models"] == 0 and agree["episode_share"] is None
    assert variance_split([[0, 1]], [[1, 1]]) is None
    with pytest.raises(ValueError, match="same episodes"):
        variance_split([[0, 1], [0, 1]], [[1, 1, 0], [1, 1]])


def test_holm_adjusts_known_p_values_step_down():
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, never below an earlier one.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0]
    assert holm([]) == []


def test_three_models_are_holm_adjusted_and_named_in_the_verdict():
    a, b = _outcomes(both=20, only_a=0, only_b=9, neither=21)
    stats = compare_all({"bc": a, "dagger": b, "dagger_copy": b}, {})
    pairs = {(p["a"], p["b"]): p for p in stats["pairs"]}
    assert stats["holm"] == {"pairs": True, "arm_pairs": False}
    first = pairs[("bc", "dagger")]
    assert first["p_value"] == pytest.approx(2 / 512)
    assert first["p_adjusted"] == pytest.approx(3 * 2 / 512) and first["verdict"] == "dagger better"
    assert pairs[("dagger", "dagger_copy")]["verdict"] == "no difference shown"
    two = compare_all({"bc": a, "dagger": b}, {})
    assert two["holm"]["pairs"] is False and two["pairs"][0]["p_adjusted"] == two["pairs"][0]["p_value"]


# -- the command, on eval_results.json files -------------------------------------------------


def _results(path, successes, seed=100_000, checkpoint="runs/x/best_model", task="Lift", max_steps=50):
    """An eval_results.json as sir.eval.evaluate writes it (the fields compare reads)."""
    per_episode = [{"episode": i, "seed": seed + i, "success": bool(ok), "reward": float(ok), "length": 10,
                    "failure": None, "task": task} for i, ok in enumerate(successes)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"success_rate": sum(successes) / len(successes), "episodes": len(successes),
                                "per_episode": per_episode, "checkpoint": checkpoint, "eval_seed": seed,
                                "max_steps": max_steps}))
    return path


@pytest.fixture
def no_evaluation(monkeypatch):
    import sir.eval.evaluate

    def refuse(cfg):
        raise AssertionError(f"{cfg.checkpoint} was evaluated again")

    monkeypatch.setattr(sir.eval.evaluate, "evaluate", refuse)


def test_repeated_flags_keep_every_model():
    cfg = parse_config(["--checkpoint", "bc=a/best_model", "--checkpoint", "b", "--arm", "x=r0,r1", "--arm", "y=r2,r3"])
    assert cfg.checkpoint == ["bc=a/best_model", "b"] and cfg.arm == ["x=r0,r1", "y=r2,r3"]
    assert parse_config([]).checkpoint == [] and parse_config([]).checkpoint is not parse_config([]).checkpoint


def test_results_on_the_same_seeds_are_compared_without_evaluating(tmp_path, no_evaluation, capsys):
    a = _results(tmp_path / "bc" / "eval_results.json", [1] * 2 + [0] * 10 + [1] * 4 + [0] * 4,
                 checkpoint="runs/bc/best_model")
    b = _results(tmp_path / "dg" / "eval_results.json", [1] * 2 + [1] * 10 + [0] * 4 + [0] * 4,
                 checkpoint="runs/dagger/best_model")
    out = tmp_path / "cmp"
    comparison = main(["--results", str(a), "--results", str(b), "--output-dir", str(out)])
    text = capsys.readouterr().out
    # Named by the end of their checkpoints' paths that tells them apart.
    assert list(comparison["models"]) == ["bc/best_model", "dagger/best_model"]
    (pair,) = comparison["pairs"]
    assert (pair["both"], pair["only_a"], pair["only_b"], pair["neither"]) == (2, 4, 10, 4)
    assert pair["p_value"] == pytest.approx(mcnemar_exact(4, 10))
    assert pair["verdict"] == "no difference shown"  # p = 0.18
    assert comparison["seeds"] == list(range(100_000, 100_020)) and comparison["max_steps"] == 50
    assert comparison["env"] == "Lift" and comparison["models"]["bc/best_model"]["evaluated_now"] is False
    assert comparison["models"]["bc/best_model"]["outcomes"][:3] == [1, 1, 0]
    assert "commit" in (comparison["sir"] or {"commit": None})
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["pairs"][0]["p_value"] == pair["p_value"]
    assert (out / "comparison.png").stat().st_size > 0
    assert "| bc/best_model | dagger/best_model | 2 | 4 | 10 | 4 |" in text and "no difference shown" in text


def test_a_prefix_of_longer_results_is_compared_with_named_models(tmp_path, no_evaluation, capsys):
    a = _results(tmp_path / "a.json", [1, 0, 1, 0, 1, 1, 1, 1])
    b = _results(tmp_path / "b.json", [1, 1, 1, 1, 0, 0, 0, 0])
    comparison = main(["--results", f"bc={a}", "--results", f"dagger={b}", "--episodes", "4",
                       "--output-dir", str(tmp_path / "out")])
    assert comparison["episodes"] == 4 and comparison["pairs"][0]["only_b"] == 2
    assert comparison["models"]["bc"]["outcomes"] == [1, 0, 1, 0]


def test_arms_pair_their_runs_by_position(tmp_path, no_evaluation, capsys):
    def arm(name, rates):
        return f"{name}=" + ",".join(str(_results(tmp_path / f"{name}{i}.json", [1] * k + [0] * (10 - k)))
                                     for i, k in enumerate(rates))

    comparison = main(["--arm", arm("bc", [5, 6, 7]), "--arm", arm("dagger", [6, 8, 7]),
                       "--output-dir", str(tmp_path / "out")])
    (pair,) = comparison["arm_pairs"]
    assert pair["differences"] == pytest.approx([0.1, 0.2, 0.0]) and pair["seeds"] == 3
    assert comparison["arms"]["bc"]["mean_rate"] == pytest.approx(0.6)
    assert "| bc | dagger | 3 | +10.0, +20.0, +0.0 |" in capsys.readouterr().out


def _refused(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_results_scored_on_different_seeds_are_refused(tmp_path, no_evaluation, capsys):
    a = _results(tmp_path / "a.json", [1, 0, 1, 0])
    b = _results(tmp_path / "b.json", [1, 1, 1, 1], seed=200_000)
    err = _refused(capsys, ["--results", f"bc={a}", "--results", f"dagger={b}", "--output-dir", str(tmp_path / "o")])
    assert "different seeds" in err and "100000" in err and "200000" in err
    err = _refused(capsys, ["--results", f"bc={a}", "--results", f"dagger={b}", "--eval-seed", "100000",
                            "--output-dir", str(tmp_path / "o")])
    assert "dagger" in err and "different seeds" in err
    assert not (tmp_path / "o" / "comparison.json").exists()


def test_results_of_other_step_limits_envs_or_names_are_refused(tmp_path, no_evaluation, capsys):
    a = _results(tmp_path / "a.json", [1, 0])
    b = _results(tmp_path / "b.json", [1, 1], max_steps=400)
    c = _results(tmp_path / "c.json", [1, 1], task="Stack")
    assert "max_steps 50 and y with max_steps 400" in _refused(capsys, ["--results", f"x={a}", "--results", f"y={b}"])
    assert "env Lift and y with env Stack" in _refused(capsys, ["--results", f"x={a}", "--results", f"y={c}"])
    assert "named x" in _refused(capsys, ["--results", f"x={a}", "--results", f"x={c}"])
    assert "at least two" in _refused(capsys, ["--results", str(a)])
    assert "cannot be read as JSON" in _refused(capsys, ["--results", str(a), "--results", __file__])
    (tmp_path / "empty.json").write_text(json.dumps({"per_episode": [], "eval_seed": 100_000}))
    assert "no per-episode" in _refused(capsys, ["--results", str(a), "--results", str(tmp_path / "empty.json")])
    assert "as many" in _refused(capsys, ["--arm", f"x={a},{a}", "--arm", f"y={a}"])
    assert "does not exist" in _refused(capsys, ["--checkpoint", str(tmp_path / "nowhere"), "--results", str(a)])


# -- two tiny models, end to end --------------------------------------------------------------


@pytest.mark.slow
def test_two_tiny_models_and_a_results_file_are_compared_on_the_same_episodes(eval_tiny_act, tmp_path, capsys):
    from sir.policies.checkpoint import save_checkpoint

    policy, pre, post, spec = eval_tiny_act
    first = save_checkpoint(tmp_path / "run_a" / "best_model", policy, pre, post, spec, {"step": 1})
    second = save_checkpoint(tmp_path / "run_b" / "final_model", policy, pre, post, spec, {"step": 2})
    # A third model already scored on those episodes, succeeding in some (a file, not evaluated).
    scored = _results(tmp_path / "scored" / "eval_results.json", [1, 0, 1, 1], checkpoint="run_c/best_model",
                      max_steps=10)
    out = tmp_path / "cmp"
    comparison = main(["--checkpoint", f"a={tmp_path / 'run_a'}", "--checkpoint", f"b={second}",
                       "--results", f"c={scored}", "--episodes", "4", "--max-steps", "10", "--workers", "1",
                       "--device", "cpu", "--output-dir", str(out)])
    text = capsys.readouterr().out
    print(text)  # the console table, for whoever runs this with -s
    assert comparison["models"]["a"]["path"] == str(first)  # a run folder means its best_model
    assert comparison["models"]["a"]["evaluated_now"] and not comparison["models"]["c"]["evaluated_now"]
    # The same weights on the same seeds: the same episodes, outcome for outcome.
    assert comparison["models"]["a"]["outcomes"] == comparison["models"]["b"]["outcomes"] == [0, 0, 0, 0]
    pairs = {(p["a"], p["b"]): p for p in comparison["pairs"]}
    assert pairs[("a", "b")]["difference"] == 0 and pairs[("a", "b")]["p_value"] == 1.0
    assert pairs[("a", "c")]["only_b"] == 3 and comparison["holm"]["pairs"]
    for name in ("a", "b"):
        record = json.loads((out / "eval" / name / "eval_results.json").read_text())
        assert record["eval_seed"] == comparison["eval_seed"] and record["max_steps"] == 10
    assert (out / "comparison.json").is_file() and (out / "comparison.png").is_file()
    assert "McNemar p (Holm)" in text and "| a | b | 0 | 0 | 0 | 4 |" in text


def test_the_dagger_summary_is_computed_by_the_paired_statistics_and_keeps_the_committed_figures():
    """docs/dagger_experiment's summary comes from sir.eval.paired (the t-interval of the
    per-seed differences to BC, the sign count, Holm across modes): recomputed from the
    committed rows of the protocol before issue 33 (earlier/) it is their committed summary,
    figure for figure; their rows hold no per-episode outcomes, so the summary's variance
    split is empty for them."""
    import csv
    from pathlib import Path

    from sir.dagger.experiment import RESULTS_CSV, SUMMARY_CSV, _typed, summarize

    out = Path(__file__).resolve().parents[1] / "docs" / "dagger_experiment" / "earlier"
    rows = [_typed(r) for r in csv.DictReader((out / RESULTS_CSV).open())]
    committed = list(csv.DictReader((out / SUMMARY_CSV).open()))
    summary = summarize(rows)
    assert len(summary) == len(committed)
    for row, saved in zip(summary, committed, strict=True):
        for key in saved:
            value = row[key]
            if isinstance(value, float):
                assert float(saved[key]) == pytest.approx(value, abs=1e-12), key
            else:
                assert saved[key] == ("" if value is None else str(value)), key
        assert row["minus_bc_sd_episodes"] is None and row["checkpoint_sd"] is None
    sirius = next(r for r in summary if r["mode"] == "sirius" and r["round"] == 3)
    assert sirius["minus_bc_per_seed"] == "+4 +30 +28" and sirius["minus_bc_sign"] == "3 above, 0 below, 0 equal"
    assert sirius["minus_bc_p"] <= sirius["minus_bc_p_holm"] <= 1
