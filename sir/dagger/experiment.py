"""BC versus DAgger, each way of learning from interventions collecting its own rounds, at an
equal budget of expert labels.

    python -m sir.dagger.experiment --env PickPlaceCan --small-demos 10 --rounds 3 --seeds 0,1,2 \
        --label-budget 600 --modes successful-corrections,hg-dagger,iwr,sirius

For each seed: record a pool of scripted demos; train round 0 on the first
``--small-demos`` of them (the ``bc`` arm's round 0, the start of every mode); then each
mode in ``--modes`` runs its own ``--rounds`` of deployments with its own models
(``sir.dagger.loop`` from that same round-0 model), every round's recording stopping once
the corrector has given ``--label-budget`` labels; the BC arm trains, for each round, on as
many fresh demos from the pool as it takes to match the most labels any mode had been given
by then. Every arm trains by the same rule (``--training-steps``, or ``--epochs`` passes over
its data if more) and is evaluated once, after its last step, on the same held-out episodes.

Results go to ``--results`` (meant to be committed: small CSVs, a JSON and a plot):
``bc_vs_dagger.csv`` (a row per seed, arm, mode and round, with the round's intervention
ratio, takeovers per episode and autonomous success rate), ``bc_vs_dagger_summary.csv``
(per arm, mode and round: mean and spread over seeds, and the paired difference to BC at the
same round with its 95% interval) and ``bc_vs_dagger.png``; ``bc_vs_dagger_corrections.csv``
holds, per seed, mode and round, what the corrector's log (``meta/sir_corrections.jsonl`` of
the round's dataset) shows: where the takeovers happened, how long the corrections ran and
how they ended. Runs and datasets go to
``--out`` and ``--root``. A seed already in the CSV, from a run with the same settings, is
kept and not run again, so a stopped experiment goes on from a fresh clone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sir import atomic
from sir.command_line import CommandLine, Flag, FlagString, nested
from sir.config import flag, option, validate
from sir.dagger.corrections_table import write_corrections
from sir.dagger.loop import RECORDING_BY_THE_LOOP, RECORDING_MOVES, LoopConfig, loop_training
from sir.data.mixture.weights import DEFAULT_MODE, MODES
from sir.errors import UserError, cli_errors
from sir.policies.checkpoint import info_path

RESULTS_CSV = "bc_vs_dagger.csv"
RESULTS_PNG = "bc_vs_dagger.png"
SUMMARY_CSV = "bc_vs_dagger_summary.csv"
ARGS_JSON = "bc_vs_dagger_args.json"
# Settings that change no result: where things go.
WHERE = ("seeds", "root", "out", "results")


def experiment_loop() -> LoopConfig:
    """The loop every mode runs, whose training every arm shares: one evaluation, at the end, of 50 episodes."""
    return LoopConfig(train=loop_training(eval_freq=0, eval_episodes=50))


@dataclass
class ExperimentConfig:
    small_demos: int = option(10, "demos round 0 trains on", minimum=1)
    pool_demos: int = option(60, "demos recorded per seed for the BC arm to draw from", minimum=1)
    seeds: list[int] = option([0, 1, 2], "experiment seeds, comma-separated")
    root: str = option("data/bc_vs_dagger", "where the experiment's datasets go")
    out: str = option("checkpoints/bc_vs_dagger", "where runs go")
    results: str | None = option(None, "where the result tables go (default: --out); a folder under docs/ can be "
                                 "committed so that finished seeds are kept on a new machine")
    modes: list[str] = option([DEFAULT_MODE], "--dagger-mode values compared, comma-separated; each collects its "
                              "own rounds")
    # The env, the rounds, how every arm trains and records. Per seed and mode the experiment sets the
    # demos and their episodes, the start model, the mode, and loop.train's run folder, seed and overwrite.
    loop: LoopConfig = nested(experiment_loop, "the rounds every mode runs, and the training every arm shares")


# Settings of every arm's training that the experiment decides: --train-args may not give them.
TRAINING_BY_THE_EXPERIMENT = {
    "dagger_mode": "Give the DAgger modes with --modes, not --dagger-mode in --train-args.",
    **{name: f"--train-args may not set {flag(name)}: the experiment sets every arm's data, seed and run folder."
       for name in ("repo_ids", "root", "episodes", "seed", "checkpoint_dir", "run_name")}}

COMMAND_LINE = CommandLine(ExperimentConfig, [
    Flag("loop.env", "Robosuite env with a scripted expert"), "small_demos", "pool_demos", "loop.rounds",
    Flag("loop.episodes_per_round", "deployments per round at most"), "loop.label_budget", "seeds",
    Flag("loop.train.policy", "policy type"), "loop.train.preset",
    Flag("loop.train.training_steps", "training steps of every arm (the least, with --epochs)"),
    Flag("loop.epochs", "train every arm for this many passes over its data if that is more steps"),
    "loop.train.batch_size",
    Flag("loop.train.eval_freq", "evaluations during training (0: once, after the last step)"),
    Flag("loop.train.eval_episodes", "episodes of every arm's evaluation, the same seeds for all"),
    Flag("loop.train.max_steps", "step limit of every rollout, evaluations and deployments alike (default: the "
         "EnvSpec's horizon)"),
    Flag("loop.keep_timeouts", "keep deployments that ran out of steps without success (Sirius drops them)"),
    "root", "out", "results",
    FlagString("train_args", "loop.train", "extra train_policy flags, quoted", refuses=TRAINING_BY_THE_EXPERIMENT),
    FlagString("record_args", "loop.record", "extra sir.dagger.record flags (the rule by which the scripted corrector "
               "takes over and hands back), quoted", refuses=RECORDING_BY_THE_LOOP,
               moves={name: f"loop.{path}" for name, path in RECORDING_MOVES.items()}),
    "modes",
])


def settings(cfg: ExperimentConfig) -> dict[str, Any]:
    """The settings as the command line says them, by flag name: what ``ARGS_JSON`` holds."""
    return COMMAND_LINE.flat(cfg)


def episodes_for_budget(lengths: list[int], budget: int) -> int:
    """The fewest leading episodes whose frames reach ``budget`` (all of them at most)."""
    total = 0
    for i, n in enumerate(lengths, start=1):
        total += n
        if total >= budget:
            return i
    return len(lengths)


def run_experiment(cfg: ExperimentConfig) -> list[dict[str, Any]]:
    """Every arm for every seed; returns the per-arm summary over seeds."""
    validate(cfg)
    for mode in cfg.modes:
        if mode not in MODES:
            raise UserError(f"--modes takes {', '.join(MODES)}, not {mode!r}.")
    if len(set(cfg.modes)) != len(cfg.modes):
        raise UserError(f"--modes names a mode twice ({','.join(cfg.modes)}); give each once.")
    out = Path(cfg.results or cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = _kept_rows(cfg, out)
    summary = summarize(rows)
    expected = len(arm_keys(cfg))
    for seed in cfg.seeds:
        done = [r for r in rows if r["seed"] == seed]
        if len(done) == expected:
            print(f"Seed {seed}: kept from {out / RESULTS_CSV}")
            continue
        if done:
            print(f"Seed {seed}: {len(done)} of its {expected} rows kept from {out / RESULTS_CSV}; running the rest")

        def save(new_rows: list[dict[str, Any]], seed: int = seed) -> None:
            # After every arm, so a stopped seed goes on from its last finished arm.
            nonlocal rows, summary
            rows = [r for r in rows if r["seed"] != seed] + new_rows
            summary = write_results(out, rows)
            write_corrections(out, Path(cfg.root), rows)
            # Written after the rows it describes: a run stopped before its first arm leaves the
            # old settings beside the old rows, never new settings beside rows they did not make.
            atomic.write_json(out / ARGS_JSON, settings(cfg))

        _run_seed(cfg, seed, done, save)
    print_summary(summary)
    print(f"\nResults: {out / RESULTS_CSV}, {out / SUMMARY_CSV}, {out / RESULTS_PNG}")
    return summary


def _kept_rows(cfg: ExperimentConfig, out: Path) -> list[dict[str, Any]]:
    """The rows of seeds a stopped run with the same settings finished (seeds aside)."""
    import csv
    import json

    try:
        saved = json.loads((out / ARGS_JSON).read_text())
        with (out / RESULTS_CSV).open() as f:
            rows = list(csv.DictReader(f))
    except (OSError, ValueError):
        return []
    same = COMMAND_LINE.same_settings(saved, cfg, str(out / ARGS_JSON), ignore=WHERE)
    if not same or not rows or "round" not in rows[0]:
        print(f"{out / RESULTS_CSV} holds another setting's results; running every seed again.")
        return []
    return [_typed(r) for r in rows]


def _typed(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row with its numbers back (empty cells are None)."""
    out: dict[str, Any] = dict(row)
    for key in ("seed", "round", "expert_frames"):
        out[key] = int(row[key])
    for key in ("success_rate", "intervention_ratio", "takeovers_per_episode", "autonomous_success_rate"):
        out[key] = float(row[key]) if row.get(key) not in (None, "") else None
    return out


def arm_keys(cfg: ExperimentConfig) -> list[tuple[str, str, int]]:
    """(arm, mode, round) of every row a finished seed has, in order."""
    return ([("bc", "", 0)] + [("dagger", m, k) for m in cfg.modes for k in range(1, cfg.loop.rounds + 1)]
            + [("bc", "", k) for k in range(1, cfg.loop.rounds + 1)])


def _run_seed(cfg: ExperimentConfig, seed: int, done: list[dict[str, Any]],
              save: Callable[[list[dict[str, Any]]], None]) -> None:
    """The arms of one seed not in ``done``, each saved (with ``done``) as it finishes."""
    from sir.dagger.loop import run_rounds, training_steps
    from sir.data.collect import CollectConfig, collect
    from sir.training import train

    loop, root, out = cfg.loop, Path(cfg.root), Path(cfg.out)
    pool_id = f"{loop.env.lower()}_pool_s{seed}"
    pool = collect(CollectConfig(env=loop.env, episodes=cfg.pool_demos, root=str(root), repo_id=pool_id,
                                 seed=10_000 * seed, skip_existing=True,
                                 **({"max_steps": loop.train.max_steps} if loop.train.max_steps else {})))
    # Every run of the seed: its own folder under --out, trained with the seed.
    runs = dataclasses.replace(loop.train, checkpoint_dir=str(out), seed=seed, overwrite=True)
    rows = {(r["arm"], r["mode"], int(r["round"])): r for r in done}

    def keep(row: dict[str, Any]) -> None:
        rows[(row["arm"], row["mode"], row["round"])] = row
        save([rows[key] for key in arm_keys(cfg) if key in rows])

    def bc(n_demos: int, name: str) -> Any:
        frames = sum(pool.episode_lengths[:n_demos])
        return train(dataclasses.replace(
            runs, repo_ids=[pool_id], root=str(root), episodes=f"{pool_id}=0:{n_demos}", run_name=name,
            training_steps=training_steps(runs.training_steps, loop.epochs, runs.batch_size, frames)))

    start_model = out / f"bc_s{seed}_r0" / "best_model"
    needs_start = any(("dagger", m, 1) not in rows for m in cfg.modes)
    if ("bc", "", 0) not in rows or (needs_start and not info_path(start_model).is_file()):
        # Training is deterministic for a seed, so a model lost with the machine comes back the same.
        print(f"\n##### Seed {seed}: round 0, BC on {cfg.small_demos} demos")
        start = bc(cfg.small_demos, f"bc_s{seed}_r0")
        start_model = start.best_model
        keep(_row(seed, "bc", "", 0, sum(start.frames_per_dataset.values()), float(start.best_metrics["success_rate"])))
    small_frames = int(rows[("bc", "", 0)]["expert_frames"])
    for mode in cfg.modes:
        if all(("dagger", mode, k) in rows for k in range(1, loop.rounds + 1)):
            continue
        print(f"\n##### Seed {seed}: --dagger-mode {mode}, {loop.rounds} rounds of its own")
        rounds = run_rounds(dataclasses.replace(
            loop, demos=str(root / pool_id), demo_episodes=f"0:{cfg.small_demos}", dagger_mode=mode,
            start_model=str(start_model), train=dataclasses.replace(runs, run_name=f"{mode}_s{seed}")))
        for r in rounds.rows[1:]:
            keep(_row(seed, "dagger", mode, int(r["round"]), int(r["labels_given"]), float(r["success_rate"]), r))
    for k in range(1, loop.rounds + 1):
        if ("bc", "", k) in rows:
            continue
        labels = max((int(r["expert_frames"]) for (arm, _, kk), r in rows.items() if arm == "dagger" and kk == k),
                     default=small_frames)
        n_bc = episodes_for_budget(pool.episode_lengths, labels)
        print(f"\n##### Seed {seed}: BC at round {k}'s budget ({labels} labels), {n_bc} demos")
        run = bc(n_bc, f"bc_s{seed}_r{k}")
        keep(_row(seed, "bc", "", k, sum(run.frames_per_dataset.values()), float(run.best_metrics["success_rate"])))


def _row(seed: int, arm: str, mode: str, k: int, labels: int, rate: float,
         round_row: dict[str, Any] | None = None) -> dict[str, Any]:
    round_row = round_row or {}
    return {"seed": seed, "arm": arm, "mode": mode, "round": k, "expert_frames": labels, "success_rate": rate,
            **{key: round_row.get(key) for key in ("intervention_ratio", "takeovers_per_episode",
                                                    "autonomous_success_rate")}}


def parse_config(argv: list[str] | None = None) -> ExperimentConfig:
    return COMMAND_LINE.parse(argv, "python -m sir.dagger.experiment",
                              "Compare BC on more demos with BC on fewer demos plus DAgger rounds, each --dagger-mode "
                              "collecting its own rounds, at an equal number of expert labels, over several seeds.")


@cli_errors
def main(argv: list[str] | None = None) -> Path:
    cfg = parse_config(argv)
    run_experiment(cfg)
    return Path(cfg.results or cfg.out)


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (arm, mode, round), over seeds: mean labels, mean and spread of success, the
    intervention ratio, and for DAgger arms the paired difference to BC at the same round,
    through sir.eval.paired (the statistics ``python -m sir.eval.compare`` reports): per seed,
    mean, 95% t-interval, a sign count, the t-test's p and, across the modes of a round,
    Holm's adjustment of it."""
    import numpy as np

    from sir.eval.paired import compare_arms, holm

    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["arm"], r["mode"], int(r["round"])), []).append(r)
    bc = {(int(r["seed"]), int(r["round"])): r["success_rate"] for r in rows if r["arm"] == "bc"}
    out = []
    for (arm, mode, k), rs in groups.items():
        rates = np.array([r["success_rate"] for r in rs], dtype=float)
        ratios = [r["intervention_ratio"] for r in rs if r.get("intervention_ratio") is not None]
        entry = {"arm": arm, "mode": mode, "round": k, "seeds": len(rs),
                 "expert_frames": round(float(np.mean([r["expert_frames"] for r in rs]))),
                 "success_mean": float(rates.mean()), "success_std": float(rates.std(ddof=1)) if len(rs) > 1 else 0.0,
                 "per_seed": " ".join(f"{100 * v:.0f}" for v in rates),
                 "intervention_ratio": float(np.mean(ratios)) if ratios else None,
                 "minus_bc": None, "minus_bc_low": None, "minus_bc_high": None, "minus_bc_per_seed": "",
                 "minus_bc_sign": "", "minus_bc_p": None, "minus_bc_p_holm": None}
        paired = [(bc[(int(r["seed"]), k)], r["success_rate"]) for r in rs
                  if arm == "dagger" and (int(r["seed"]), k) in bc]
        if paired:
            arms = compare_arms([a for a, _ in paired], [b for _, b in paired])
            low, high = arms["mean_ci95"] or (None, None)
            entry.update(minus_bc=arms["mean_difference"], minus_bc_low=low, minus_bc_high=high,
                         minus_bc_per_seed=" ".join(f"{100 * d:+.0f}" for d in arms["differences"]),
                         minus_bc_sign=f"{arms['b_better']} above, {arms['a_better']} below, {arms['equal']} equal",
                         minus_bc_p=arms["p_value"])
        out.append(entry)
    for k in {e["round"] for e in out}:  # Holm across the modes compared with BC at a round
        tested = [e for e in out if e["round"] == k and e["minus_bc_p"] is not None]
        for e, adjusted in zip(tested, holm([e["minus_bc_p"] for e in tested]), strict=True):
            e["minus_bc_p_holm"] = adjusted
    return out


def print_summary(summary: list[dict[str, Any]]) -> None:
    print(f"\n{'arm':<8} {'mode':<24} {'round':>5} {'seeds':>5} {'labels':>7} {'success (mean ± sd)':>20} "
          f"{'minus BC (95% CI)':>22}")
    for s in summary:
        diff = "" if s["minus_bc"] is None else f"{100 * s['minus_bc']:+.1f}" + (
            "" if s["minus_bc_low"] is None else f" ({100 * s['minus_bc_low']:+.0f}, {100 * s['minus_bc_high']:+.0f})")
        print(f"{s['arm']:<8} {s['mode'] or '-':<24} {s['round']:>5} {s['seeds']:>5} {s['expert_frames']:>7} "
              f"{100 * s['success_mean']:>12.1f}% ± {100 * s['success_std']:.1f} {diff:>22}")


def write_results(out: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic.save_figure(fig, out / RESULTS_PNG)
    plt.close(fig)
    return summary


if __name__ == "__main__":
    main()
