"""BC versus DAgger, each way of learning from interventions collecting its own rounds, at an
equal budget of expert labels, under a protocol that buys evidence (issue 33).

    python -m sir.dagger.experiment --env PickPlaceCan --small-demos 10 --rounds 3 --seeds 0,1,2,3,4,5 \
        --label-budget 500 --modes successful-corrections,hg-dagger,iwr,sirius

For each seed: record a pool of scripted demos; train round 0 on the first
``--small-demos`` of them (the ``bc`` arm's round 0, the start of every mode); record round 1
once, the deployments of that model with the corrector watching, every deployment kept, into
one dataset (``shared_s<seed>_r1``) that every mode's round 1 trains on, each mode on the
episodes its own recording would have kept; then each mode in ``--modes`` runs its later
rounds with its own models (``sir.dagger.loop``), every round's recording stopping once the
corrector has given ``--label-budget`` labels; the BC arm trains, for each round, on as many
fresh demos from the pool as it takes to match the most labels any mode had been given by
then.

Every arm trains the same ``--training-steps`` with the same ``--lr-schedule`` (cosine: the
lever that stopped the swings between checkpoints on Stack, docs/results.md), and every model
is scored by the mean success of its last ``--last-k`` checkpoints, ``--eval-freq`` steps
apart, on the same ``--eval-episodes`` test episodes (``sir.seeds.TEST``). Nothing is chosen on
those episodes: the model a round deploys is its ``final_model``, never ``best_model`` (which
the trainer still writes, from these evaluations, and which nothing here reads).

Results go to ``--results`` (meant to be committed: small CSVs, a JSON and a plot):
``bc_vs_dagger.csv`` (a row per seed, arm, mode and round: the model's score, its
checkpoints' rates and per-episode outcomes, and the round's deployments: intervention
ratio, takeovers per episode, autonomous success; see ``sir.dagger.summary``),
``bc_vs_dagger_summary.csv`` (per arm, mode and round: mean and spread over seeds, the paired
difference to BC at the same round with its 95% and its simultaneous intervals, a sign count,
Holm's p, and how its variance splits between episodes and models) and ``bc_vs_dagger.png``;
``bc_vs_dagger_corrections.csv`` holds, per seed, mode and round, what the corrector's log of
the round's dataset shows. Runs and datasets go to ``--out`` and ``--root``. Rows are saved
after every arm; a seed or arm already in the CSV, from a run with the same settings, is
kept and not run again, so a stopped experiment goes on from a fresh clone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sir import atomic, seeds
from sir.command_line import CommandLine, Flag, FlagString, nested
from sir.config import flag, option, validate
from sir.dagger.corrections_table import recording_id, write_corrections
from sir.dagger.loop import RECORDING_BY_THE_LOOP, RECORDING_MOVES, LoopConfig, last_k_columns, loop_training, scored
from sir.dagger.summary import (
    DEPLOYMENT_COLUMNS,
    RESULTS_CSV,
    RESULTS_PNG,
    SUMMARY_CSV,
    print_summary,
    summarize,
    write_results,
)
from sir.dagger.summary import typed as _typed
from sir.data.mixture.weights import DEFAULT_MODE, MODES
from sir.errors import UserError, cli_errors
from sir.policies.checkpoint import info_path

__all__ = ["RESULTS_CSV", "RESULTS_PNG", "SUMMARY_CSV", "run_experiment", "summarize", "write_results", "_typed"]
ARGS_JSON = "bc_vs_dagger_args.json"
# Settings that change no result: where things go.
WHERE = ("seeds", "root", "out", "results")
# Columns a row of this protocol has: a results CSV without them is another protocol's.
PROTOCOL_COLUMNS = ("training_steps", "last_k_steps", "episode_successes")


def experiment_loop() -> LoopConfig:
    """The loop every mode runs, whose training every arm shares: 2,000 steps at a cosine
    schedule; the last round's models scored by their last 3 checkpoints, 100 steps apart, the
    earlier rounds' by their final one, each on the same 40 test episodes."""
    return LoopConfig(train=loop_training(training_steps=2000, lr_schedule="cosine", eval_freq=100, last_k=3,
                                          eval_episodes=40, eval_seed=seeds.TEST.start), earlier_last_k=1)


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
                              "own rounds after the shared round 1")
    # The env, the rounds, how every arm trains and records. Per seed and mode the experiment sets the
    # demos and their episodes, the start model and round 1's recording, the mode, what is deployed,
    # and loop.train's run folder, seed, overwrite and the steps its evaluations start at.
    loop: LoopConfig = nested(experiment_loop, "the rounds every mode runs, and the training every arm shares")

    RENAMED: ClassVar[dict[str, str]] = {
        "--epochs": "is gone: every arm trains the same --training-steps (passes over each arm's data gave the arms "
                    "with more data more steps, and so another schedule)",
    }


# Settings of every arm's training that the experiment decides: --train-args may not give them.
TRAINING_BY_THE_EXPERIMENT = {
    "dagger_mode": "Give the DAgger modes with --modes, not --dagger-mode in --train-args.",
    "eval_start": "--train-args may not set --eval-start: every arm evaluates its last --last-k checkpoints, "
                  "--eval-freq steps apart.",
    "select_top_k": "--train-args may not set --select-top-k: nothing is chosen on the experiment's test episodes; "
                    "every round deploys its final_model.",
    "no_eval": "--train-args may not set --no-eval: every model is scored by its last --last-k checkpoints.",
    **{name: f"--train-args may not set {flag(name)}: the experiment sets every arm's data, seed and run folder."
       for name in ("repo_ids", "root", "episodes", "seed", "checkpoint_dir", "run_name")}}

COMMAND_LINE = CommandLine(ExperimentConfig, [
    Flag("loop.env", "Robosuite env with a scripted expert"), "small_demos", "pool_demos", "loop.rounds",
    Flag("loop.episodes_per_round", "deployments per round at most"), "loop.label_budget", "seeds",
    Flag("loop.train.policy", "policy type"), "loop.train.preset",
    Flag("loop.train.training_steps", "training steps of every arm, the same for all"),
    Flag("loop.train.lr_schedule", "learning-rate schedule of every arm"),
    "loop.train.batch_size",
    Flag("loop.train.eval_freq", "steps between the last --last-k checkpoints each arm is evaluated at"),
    Flag("loop.train.last_k", "the last round's models' score: the mean success of their last K checkpoints"),
    Flag("loop.earlier_last_k", "the earlier rounds' models' score: the mean of their last K checkpoints (1: the "
         "final one)"),
    Flag("loop.train.eval_episodes", "test episodes of each of those evaluations, the same for every model"),
    Flag("loop.train.eval_seed", "seed of test episode 0 (sir.seeds' test range: nothing is chosen on it)"),
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
    train = cfg.loop.train
    if train.last_k > 1 and (not train.eval_freq or (train.last_k - 1) * train.eval_freq >= train.training_steps):
        raise UserError(f"--last-k {train.last_k} checkpoints --eval-freq {train.eval_freq} steps apart do not fit in "
                        f"--training-steps {train.training_steps}; give a smaller --last-k or --eval-freq (above 0).")
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
    if not same or not rows or any(key not in rows[0] for key in ("round", *PROTOCOL_COLUMNS)):
        print(f"{out / RESULTS_CSV} holds another setting's results; running every seed again.")
        return []
    return [_typed(r) for r in rows]


def arm_keys(cfg: ExperimentConfig) -> list[tuple[str, str, int]]:
    """(arm, mode, round) of every row a finished seed has, in order."""
    return ([("bc", "", 0)] + [("dagger", m, k) for m in cfg.modes for k in range(1, cfg.loop.rounds + 1)]
            + [("bc", "", k) for k in range(1, cfg.loop.rounds + 1)])


def arm_training(cfg: ExperimentConfig, seed: int) -> Any:
    """The training every arm of ``seed`` shares: the same steps and schedule, evaluations only
    at the last --last-k checkpoints (on the test episodes, so nothing is chosen on them:
    best_model is not confirmed on other episodes, nor used), each run in its folder under --out."""
    # Evaluations wait for training (async_eval off), as every committed row was made: in the pilot,
    # beside training, step 900's queued evaluation was replaced by step 1000's. The trainer now
    # waits for any of the last --last-k (sir.training.config.last_evaluations), so async would
    # score the same checkpoints; it stays off so the rows keep one way of running.
    return scored(dataclasses.replace(cfg.loop.train, checkpoint_dir=cfg.out, seed=seed, overwrite=True,
                                      select_top_k=0, async_eval=False), cfg.loop.train.last_k)


def _run_seed(cfg: ExperimentConfig, seed: int, done: list[dict[str, Any]],
              save: Callable[[list[dict[str, Any]]], None]) -> None:
    """The arms of one seed not in ``done``, each saved (with ``done``) as it finishes."""
    from sir.dagger.loop import run_rounds
    from sir.data.collect import CollectConfig, collect
    from sir.training import train

    loop, root, out = cfg.loop, Path(cfg.root), Path(cfg.out)
    pool_id = f"{loop.env.lower()}_pool_s{seed}"
    pool = collect(CollectConfig(env=loop.env, episodes=cfg.pool_demos, root=str(root), repo_id=pool_id,
                                 seed=10_000 * seed, skip_existing=True,
                                 **({"max_steps": loop.train.max_steps} if loop.train.max_steps else {})))
    runs = arm_training(cfg, seed)
    # Every mode's loop: from the shared round-0 model and round-1 recording, deploying each round's final_model.
    rounds_of = dataclasses.replace(loop, demos=str(root / pool_id), demo_episodes=f"0:{cfg.small_demos}",
                                    first_round=str(root / recording_id(seed, "", 1)), deploy="final_model",
                                    epochs=None, train=runs)
    rows = {(r["arm"], r["mode"], int(r["round"])): r for r in done}

    def keep(row: dict[str, Any]) -> None:
        rows[(row["arm"], row["mode"], row["round"])] = row
        save([rows[key] for key in arm_keys(cfg) if key in rows])

    def bc(n_demos: int, k: int) -> None:
        earlier = loop.earlier_last_k if k < loop.rounds else None
        run = train(dataclasses.replace(scored(runs, earlier), repo_ids=[pool_id], root=str(root),
                                        episodes=f"{pool_id}=0:{n_demos}", run_name=f"bc_s{seed}_r{k}"))
        keep(_row(seed, "bc", "", k, {"labels_given": sum(run.frames_per_dataset.values()),
                                      "training_steps": runs.training_steps, **last_k_columns(run.last_k or {})}))

    start_model = out / f"bc_s{seed}_r0" / "final_model"  # deployed: nothing chose it
    unfinished = [m for m in cfg.modes if any(("dagger", m, k) not in rows for k in range(1, loop.rounds + 1))]
    trained = ("bc", "", 0) not in rows or (bool(unfinished) and not info_path(start_model).is_file())
    if trained:
        # Training is deterministic for a seed, so a model lost with the machine comes back the same.
        print(f"\n##### Seed {seed}: round 0, BC on {cfg.small_demos} demos")
        bc(cfg.small_demos, 0)
    if unfinished and loop.rounds:
        _record_first_round(rounds_of, start_model, again=trained)
    for mode in unfinished:
        print(f"\n##### Seed {seed}: --dagger-mode {mode}, round 1 shared, then {loop.rounds - 1} rounds of its own")
        result = run_rounds(dataclasses.replace(rounds_of, dagger_mode=mode, start_model=str(start_model),
                                                train=dataclasses.replace(runs, run_name=f"{mode}_s{seed}")))
        for r in result.rows[1:]:
            keep(_row(seed, "dagger", mode, int(r["round"]), r))
    small_frames = int(rows[("bc", "", 0)]["expert_frames"])
    for k in range(1, loop.rounds + 1):
        if ("bc", "", k) in rows:
            continue
        labels = max((int(r["expert_frames"]) for (arm, _, kk), r in rows.items() if arm == "dagger" and kk == k),
                     default=small_frames)
        n_bc = episodes_for_budget(pool.episode_lengths, labels)
        print(f"\n##### Seed {seed}: BC at round {k}'s budget ({labels} labels), {n_bc} demos")
        bc(n_bc, k)


def _record_first_round(rounds_of: LoopConfig, model: Path, again: bool) -> None:
    """Round 1's deployments of the round-0 ``model``, recorded once into ``rounds_of.first_round``
    with every deployment kept, for every mode to take its own episodes from. A finished
    recording is kept unless the model was trained again in this run (``again``)."""
    import shutil

    from sir.dagger.loop import own_recording
    from sir.dagger.record import record_corrections
    from sir.data.record.writer import SIR_META_FILENAME

    path = Path(rounds_of.first_round)
    if path.is_dir() and not again and (path / "meta" / SIR_META_FILENAME).is_file():
        print(f"Round 1: the deployments of {model} kept from {path}")
        return
    shutil.rmtree(path, ignore_errors=True)
    print(f"\n##### Round 1, shared by every mode: deployments of {model}")
    recorded = record_corrections(own_recording(rounds_of, model, 1, path.name, path.parent, keep_failures=True))
    if recorded.path is None:
        raise UserError(f"Round 1's {recorded.tried} deployments of {model} gave no episode to keep (no takeover, no "
                        "success); the modes have nothing to learn from.")


def _row(seed: int, arm: str, mode: str, k: int, r: dict[str, Any]) -> dict[str, Any]:
    """A model's row from its loop row (``sir.dagger.loop``'s columns): the labels its arm was
    given, its steps, its score (the mean of its last checkpoints) with their per-episode
    outcomes, and for DAgger the round's deployments (those of round k-1's model)."""
    return {"seed": seed, "arm": arm, "mode": mode, "round": k, "expert_frames": int(r["labels_given"]),
            "training_steps": r["training_steps"], "success_rate": r["last_k_success"],
            **{key: r.get(key) for key in ("last_k_steps", "last_k_rates", "eval_seed", "episode_successes",
                                           "deployments", *DEPLOYMENT_COLUMNS)}}


def parse_config(argv: list[str] | None = None) -> ExperimentConfig:
    return COMMAND_LINE.parse(argv, "python -m sir.dagger.experiment",
                              "Compare BC on more demos with BC on fewer demos plus DAgger rounds, each --dagger-mode "
                              "collecting its own rounds, at an equal number of expert labels, over several seeds.")


@cli_errors
def main(argv: list[str] | None = None) -> Path:
    cfg = parse_config(argv)
    run_experiment(cfg)
    return Path(cfg.results or cfg.out)


if __name__ == "__main__":
    main()
