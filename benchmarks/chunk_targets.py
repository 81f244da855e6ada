"""What the action chunks of DAgger samples train on, measured on layouts rebuilt from the
committed BC-versus-DAgger experiment of 2026-12-03 (docs/dagger_experiment/earlier/, made
under the protocol before issue 33).

    python benchmarks/chunk_targets.py [--chunk 20] [--results docs/dagger_experiment/earlier]

The experiment's datasets are not kept, only their counts, so each round's data is laid out
again from its row: its deployments of equal length (labels / intervention ratio frames in
all), the episodes without a takeover all policy, the takeovers spread over the others, each
correction of the round's mean length (labels / takeovers), evenly spaced, the policy taking
back over after each but those that ended the episode (``hand_backs``: "episode end"); every
deployment is kept, and the round-0 demos (BC's frames at round 0) are 10 all-human episodes.
The round-3 model's training set is the demos and rounds 1-3. ACT samples start on every
frame and read actions 0..chunk-1 ahead, those past the episode's end padding.

Prints, for ``successful-corrections`` and ``hg-dagger``, the share of the chunk targets of
samples starting on human frames that were the policy's actions (before the policy's actions
became padding), and, for ``sirius``, how sir's chunk weights depart from Sirius's per
timestep weights: the share of the targets sir trains on whose class differs from the
sample's first frame (sir weighs them by the first frame's class, Sirius by their own), the
total-variation distance between the two distributions of loss weight over (sample, step)
terms, and each class's part of the loss under each.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from sir.data.labels import HUMAN, POLICY
from sir.data.mixture.weights import (
    CLASS_NAMES,
    DEMO,
    INTERVENTION,
    PRE_INTERVENTION,
    class_shares,
    pooled_probabilities,
    sample_classes,
    untrained_actions,
)

DEMO_EPISODES = 10  # the experiment's --small-demos


def round_layout(deployments: int, alone: int, takeovers: int, labels: int, frames: int,
                 ending: int) -> list[list[int]]:
    """The ``source`` of each frame of each deployment of a round, laid out from its counts."""
    lengths = np.full(deployments, frames // deployments) + (np.arange(deployments) < frames % deployments)
    corrected = max(1, deployments - alone)
    per_episode = np.full(corrected, takeovers // corrected) + (np.arange(corrected) < takeovers % corrected)
    correction = labels / takeovers
    episodes = []
    for e, length in enumerate(lengths):
        k = int(per_episode[e]) if e < corrected else 0
        if k == 0:
            episodes.append([POLICY] * int(length))
            continue
        runs = round(correction * k)
        to_the_end = e < ending  # its last correction ends the episode
        gap = (length - runs) / (k if to_the_end else k + 1)
        source = []
        for j in range(k):
            source += [POLICY] * (round(gap * (j + 1)) - round(gap * j))
            source += [HUMAN] * (round(correction * (j + 1)) - round(correction * j))
        source += [POLICY] * (int(length) - len(source))
        episodes.append(source)
    return episodes


def pooled_set(rows: list[dict], demo_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(episode index, source) of every frame: the demos, then each row's round."""
    episodes = [[HUMAN] * (demo_frames // DEMO_EPISODES)] * DEMO_EPISODES
    for row in rows:
        ending = int(dict(part.rsplit(": ", 1) for part in row["hand_backs"].split("; ")).get("episode end", 0))
        frames = round(int(row["labels"]) / float(row["intervention_ratio"]))
        episodes += round_layout(int(row["deployments"]), int(row["autonomous_successes"]), int(row["takeovers"]),
                                 int(row["labels"]), frames, ending)
    episode = np.repeat(np.arange(len(episodes)), [len(e) for e in episodes])
    return episode, np.concatenate([np.asarray(e) for e in episodes])


def chunk_rows(episode: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """(the frame of each step of every frame's chunk [frames, chunk], whether it lies in the episode)."""
    rows = np.arange(len(episode))[:, None] + np.arange(chunk)[None, :]
    inside = rows < len(episode)
    rows = np.minimum(rows, len(episode) - 1)
    return rows, inside & (episode[rows] == episode[:, None])


def policy_share_of_human_chunks(episode: np.ndarray, source: np.ndarray, chunk: int, starts: np.ndarray) -> float:
    """The share of the targets of chunks starting on the human frames among ``starts`` (a
    mask) that are the policy's actions."""
    rows, inside = chunk_rows(episode, chunk)
    human = starts & (source == HUMAN)
    return float((inside & (source[rows] == POLICY))[human].sum() / inside[human].sum())


def sirius_departure(episode: np.ndarray, source: np.ndarray, chunk: int, demos: np.ndarray) -> dict:
    """How sir's loss weights over (sample, step) terms depart from Sirius's (see the module)."""
    classes = sample_classes(episode, source)
    classes[demos] = DEMO
    counts = np.bincount(classes, minlength=len(CLASS_NAMES))
    shares = class_shares("sirius", counts)
    # Sirius: samples drawn uniformly, each step weighted by its class's share / its ratio.
    class_weight = shares * len(classes) / np.maximum(counts, 1)
    rows, inside = chunk_rows(episode, chunk)
    sirius = np.where(inside, class_weight[classes[rows]], 0.0)
    # sir: samples drawn by their first frame's class weight, the untrained steps padding.
    start = pooled_probabilities("sirius", classes, episode)
    sir = np.where(inside & ~untrained_actions("sirius", classes)[rows], start[:, None], 0.0)
    sirius, sir = sirius / sirius.sum(), sir / sir.sum()
    other_class = classes[rows] != classes[:, None]
    return {
        "intervention_over_policy": class_weight[INTERVENTION] / class_weight[1],
        "other_class": float(sir[other_class].sum()),
        "pre_intervention_sirius": float(sirius[classes[rows] == PRE_INTERVENTION].sum()),
        "total_variation": 0.5 * float(np.abs(sir - sirius).sum()),
        "sir_by_class": [float(sir[classes[rows] == c].sum()) for c in range(len(CLASS_NAMES))],
        "sirius_by_class": [float(sirius[classes[rows] == c].sum()) for c in range(len(CLASS_NAMES))],
    }


def closed_form_share(correction: int, chunk: int) -> float:
    """The share of policy actions among the chunk targets of a correction of ``correction``
    steps handed back to the policy (which acts for at least a chunk afterwards)."""
    steps = np.arange(correction)[:, None] + np.arange(chunk)[None, :]
    return float((steps >= correction).mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunk", type=int, default=20, help="ACT's chunk (the cpu preset's: 20)")
    parser.add_argument("--results", type=Path, default=Path("docs/dagger_experiment/earlier"))
    args = parser.parse_args(argv)
    with open(args.results / "bc_vs_dagger.csv") as f:
        runs = list(csv.DictReader(f))
    with open(args.results / "bc_vs_dagger_corrections.csv") as f:
        corrections = list(csv.DictReader(f))
    ratio = {(r["seed"], r["mode"], r["round"]): r["intervention_ratio"] for r in runs if r["arm"] == "dagger"}
    demo_frames = {r["seed"]: int(r["expert_frames"]) for r in runs if r["arm"] == "bc" and r["round"] == "0"}
    for row in corrections:
        row["intervention_ratio"] = ratio[row["seed"], row["mode"], row["round"]]

    print(f"chunk {args.chunk}; a correction of L steps handed back: the policy's share of its chunk targets")
    print("  " + ", ".join(f"L={n}: {closed_form_share(n, args.chunk):.1%}" for n in (8, 12, 16, 20, 24, 32, 44)))
    for mode in ("successful-corrections", "hg-dagger", "sirius"):
        for seed in sorted(demo_frames):
            rows = [r for r in corrections if r["seed"] == seed and r["mode"] == mode]
            episode, source = pooled_set(rows, demo_frames[seed])
            line = f"{mode}, seed {seed}, round 3's training set ({len(source)} frames):"
            demos = episode < DEMO_EPISODES
            if mode != "sirius":
                every = policy_share_of_human_chunks(episode, source, args.chunk, np.ones_like(demos))
                in_corrections = policy_share_of_human_chunks(episode, source, args.chunk, ~demos)
                print(f"{line} policy actions {every:.1%} of the targets of human-start chunks, demos included; "
                      f"{in_corrections:.1%} of those of the corrections")
                continue
            found = sirius_departure(episode, source, args.chunk, demos)
            by_class = ", ".join(f"{name} {a:.1%} / {b:.1%}" for name, a, b in zip(
                CLASS_NAMES, found["sir_by_class"], found["sirius_by_class"], strict=True))
            print(f"{line} intervention weight {found['intervention_over_policy']:.1f}x a policy frame's; "
                  f"{found['other_class']:.1%} of the steps sir trains on are of another class "
                  f"than their sample's first frame; pre-intervention steps {found['pre_intervention_sirius']:.2%} "
                  f"of Sirius's loss (none of sir's); total variation {found['total_variation']:.1%}; "
                  f"loss share sir / Sirius: {by_class}")


if __name__ == "__main__":
    main()
