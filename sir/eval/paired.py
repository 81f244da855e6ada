"""Is B better than A? Statistics of models scored on the same episodes, from scipy.

sir's evaluation episode i starts from the state of seed + i whatever the model, so two
models' outcomes pair up episode by episode: a model that succeeds where the other fails
says more than two rates side by side. These are pure functions of per-episode outcomes
(True for a success), in the order of the episodes' seeds:

- ``rate``: a model's success rate and its 95% Wilson interval;
- ``compare_models``: the paired 2x2 table, McNemar's exact p-value and the difference of
  the rates with Newcombe's paired interval;
- ``compare_arms``: two arms of several runs each (one per training seed, paired by
  position): the per-seed differences, their mean with a t-interval, and a sign count;
- ``holm``: p-values adjusted for several comparisons at once;
- ``variance_split``: how the spread over seeds of two arms' paired difference splits
  between the evaluation's episodes and the models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sir.eval.metrics import wilson_interval

ALPHA = 0.05  # the level every verdict and interval (95%) is read at
NO_DIFFERENCE = "no difference shown"


def rate(outcomes: Sequence[bool]) -> dict[str, Any]:
    """Successes, episodes, success rate and its 95% Wilson interval."""
    n, k = len(outcomes), sum(bool(o) for o in outcomes)
    return {"successes": k, "episodes": n, "success_rate": k / n if n else 0.0,
            "success_ci95": list(wilson_interval(k, n, 1 - ALPHA))}


def paired_table(a: Sequence[bool], b: Sequence[bool]) -> dict[str, int]:
    """The episodes both models succeed in, only A, only B, and neither."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes need as many episodes each, not {len(a)} and {len(b)}")
    pairs = [(bool(x), bool(y)) for x, y in zip(a, b, strict=True)]
    return {"both": pairs.count((True, True)), "only_a": pairs.count((True, False)),
            "only_b": pairs.count((False, True)), "neither": pairs.count((False, False))}


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """McNemar's exact test: under "A and B are as good", each episode only one of them solves
    is a fair coin's toss; the concordant episodes say nothing about which is better."""
    from scipy.stats import binomtest

    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def newcombe_interval(table: dict[str, int], confidence: float = 1 - ALPHA) -> tuple[float, float]:
    """The interval of rate B − rate A for paired outcomes: Newcombe's square-and-add
    interval (Statistics in Medicine 17, 1998, method 10), as Fagerland, Lydersen and Laake
    recommend it for the paired 2x2 table.

    Why not Wald's (difference ± z·se): with the few discordant episodes of two similar
    models, or rates near 0 or 1, its standard error collapses and the interval with it
    (zero width when no episode differs). Newcombe's combines the two rates' Wilson
    intervals, which stay honest there, corrected for the correlation of paired outcomes;
    it is closed-form, where Tango's score interval needs a root search for the same coverage.
    """
    a, b, c, d = table["both"], table["only_a"], table["only_b"], table["neither"]
    n = a + b + c + d
    p_b, p_a = (a + c) / n, (a + b) / n
    low_b, high_b = wilson_interval(a + c, n, confidence)
    low_a, high_a = wilson_interval(a + b, n, confidence)
    # phi estimates the correlation of the two rates; Newcombe shrinks a positive one by n/2
    # (a continuity correction) and takes no correlation when a margin is empty.
    margins = (a + c) * (b + d) * (a + b) * (c + d)
    cross = a * d - b * c
    if margins == 0 or 0 <= cross <= n / 2:
        phi = 0.0
    else:
        phi = (cross - n / 2 if cross > 0 else cross) / math.sqrt(margins)
    below = math.sqrt(max(0.0, (p_b - low_b) ** 2 + (high_a - p_a) ** 2 - 2 * phi * (p_b - low_b) * (high_a - p_a)))
    above = math.sqrt(max(0.0, (p_a - low_a) ** 2 + (high_b - p_b) ** 2 - 2 * phi * (p_a - low_a) * (high_b - p_b)))
    return (p_b - p_a - below, p_b - p_a + above)


def compare_models(a: Sequence[bool], b: Sequence[bool]) -> dict[str, Any]:
    """Two models on the same episodes: their 2x2 table, McNemar's exact p-value, and rate
    B − rate A with its 95% Newcombe interval."""
    table = paired_table(a, b)
    n = len(a)
    return {**table, "episodes": n,
            "difference": (table["only_b"] - table["only_a"]) / n if n else 0.0,
            "difference_ci95": list(newcombe_interval(table)) if n else [0.0, 0.0],
            "p_value": mcnemar_exact(table["only_a"], table["only_b"])}


def compare_arms(rates_a: Sequence[float], rates_b: Sequence[float], confidence: float = 1 - ALPHA) -> dict[str, Any]:
    """Two arms of runs paired by position (training seed): the per-seed differences B − A,
    their mean with a t-interval (95%, or ``confidence``: 1 − 0.05/m for Bonferroni's
    intervals, which hold together across m comparisons) and a one-sample t-test's p-value
    (None for a single seed), and how many seeds B beat A, lost to it, or tied."""
    from scipy import stats

    if len(rates_a) != len(rates_b):
        raise ValueError(f"paired arms need as many runs each, not {len(rates_a)} and {len(rates_b)}")
    # Rates are k/n: rounding drops the last bits float subtraction leaves, which would make
    # equal differences (0.75 - 0.6 and 0.7 - 0.55) look unequal to the t-test.
    diffs = [round(float(b) - float(a), 12) for a, b in zip(rates_a, rates_b, strict=True)]
    n = len(diffs)
    mean = sum(diffs) / n
    result: dict[str, Any] = {"differences": diffs, "seeds": n, "mean_difference": mean,
                              "b_better": sum(d > 0 for d in diffs), "a_better": sum(d < 0 for d in diffs),
                              "equal": sum(d == 0 for d in diffs), "mean_ci95": None, "p_value": None}
    if n < 2:
        return result
    if len(set(diffs)) == 1:
        # Every seed differs by the same amount: the t statistic is infinite (or 0/0 when
        # that amount is 0), and scipy warns instead of answering; these are its limits.
        result.update(mean_ci95=[mean, mean], p_value=1.0 if mean == 0 else 0.0)
        return result
    test = stats.ttest_1samp(diffs, 0.0)  # Student's t on n − 1 degrees of freedom
    ci = test.confidence_interval(confidence)
    result.update(mean_ci95=[float(ci.low), float(ci.high)], p_value=float(test.pvalue))
    return result


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (1979): the k-th smallest of m p-values is multiplied by
    m − k + 1, and no adjusted value is below an earlier one; in the input's order.
    (scipy's ``false_discovery_control`` is Benjamini-Hochberg, which bounds another error.)"""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def variance_split(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> dict[str, float] | None:
    """How the variance over seeds of the paired difference B − A splits between the
    evaluation's episodes and the models (None for fewer than 2 seeds).

    Per seed s, ``a[s]`` and ``b[s]`` are the two arms' outcomes on the same n_s episodes (1 or
    0; or, for a model scored by its last K checkpoints, the fraction of them that succeeded
    in the episode), so the seed's difference is d_s = mean_i (b_si − a_si). Over seeds,
    Var(d_s) = σ²_models + E[σ²_episodes,s], estimated by the method of moments (a one-way
    random-effects model):

    - episodes: σ²_episodes,s = s²_i(b_si − a_si) / n_s, the variance of the mean of the seed's
      per-episode differences (s² on n_s − 1 degrees of freedom): the noise of scoring both
      models on n_s episodes. With one checkpoint each, s²(b − a) ≈ p_a(1 − p_a) + p_b(1 − p_b)
      − 2 cov(a, b): the binomial noise of two rates, (p_a(1 − p_a) + p_b(1 − p_b)) / n, less
      2 cov(a, b) / n that pairing them on the same episodes removes.
    - total: s²_s(d_s), the variance of the seeds' differences (S − 1 degrees of freedom).
    - models: total − mean_s σ²_episodes,s, held at 0 where the seeds differ less than the
      episodes alone would make them: whatever differs from seed to seed (training, the data
      each arm was given, which checkpoints the steps landed on), not the evaluation.

    Returns the three variances (in rates squared: 0.01 is a standard deviation of 10 points)
    and the episodes' share of the total, at most 1 (None when the total is 0).
    """
    import numpy as np

    if len(a) != len(b):
        raise ValueError(f"paired arms need as many seeds each, not {len(a)} and {len(b)}")
    if len(a) < 2:
        return None
    diffs, noise = [], []
    for x, y in zip(a, b, strict=True):
        if len(x) != len(y) or len(x) < 2:
            raise ValueError(f"a seed's arms need the same episodes, two or more, not {len(x)} and {len(y)}")
        d = np.asarray(y, dtype=float) - np.asarray(x, dtype=float)
        diffs.append(d.mean())
        noise.append(d.var(ddof=1) / len(d))
    total, episodes = float(np.var(diffs, ddof=1)), float(np.mean(noise))
    return {"total": total, "episodes": episodes, "models": max(0.0, total - episodes),
            "episode_share": min(1.0, episodes / total) if total > 0 else None}


def verdict(difference: float, p_value: float | None, name_a: str, name_b: str) -> str:
    """"<B> better", "<A> better" or "no difference shown", at the 5% level."""
    if p_value is None or p_value >= ALPHA or difference == 0:
        return NO_DIFFERENCE
    return f"{name_b if difference > 0 else name_a} better"


def compare_all(models: dict[str, Sequence[bool]], arms: dict[str, list[Sequence[bool]]]) -> dict[str, Any]:
    """Every model's rate, every pair of models (in the order given: A before B), every arm's
    runs and every pair of arms; p-values Holm-adjusted within the models' pairs and within
    the arms' pairs when either holds more than one comparison."""
    names = list(models)
    pairs = [{"a": a, "b": b, **compare_models(models[a], models[b])}
             for i, a in enumerate(names) for b in names[i + 1:]]
    arm_names = list(arms)
    arm_rates = {name: [rate(run)["success_rate"] for run in runs] for name, runs in arms.items()}
    arm_pairs = [{"a": a, "b": b, **compare_arms(arm_rates[a], arm_rates[b])}
                 for i, a in enumerate(arm_names) for b in arm_names[i + 1:]]
    adjusted = {"pairs": _adjust(pairs, "difference"), "arm_pairs": _adjust(arm_pairs, "mean_difference")}
    return {
        "models": {name: rate(outcomes) for name, outcomes in models.items()},
        "pairs": pairs,
        "arms": {name: {"runs": [rate(run) for run in runs],
                        "mean_rate": sum(arm_rates[name]) / len(runs) if runs else 0.0}
                 for name, runs in arms.items()},
        "arm_pairs": arm_pairs,
        "holm": adjusted,
    }


def _adjust(rows: list[dict[str, Any]], difference: str) -> bool:
    """Give each row its Holm-adjusted p-value (its own when it is the only test) and its
    verdict; whether Holm's adjustment was needed."""
    tested = [row for row in rows if row["p_value"] is not None]
    raw = [row["p_value"] for row in tested]
    several = len(tested) > 1
    for row in rows:
        row["p_adjusted"] = None
    for row, p in zip(tested, holm(raw) if several else raw, strict=True):
        row["p_adjusted"] = p
    for row in rows:
        row["verdict"] = verdict(row[difference], row["p_adjusted"], row["a"], row["b"])
    return several
