"""DAgger rounds: train on the demos, collect corrections with the best model, retrain on
the demos plus every round's corrections, and report success per round.

    python -m sir.dagger.loop --env Lift --demos data/lift_demos --rounds 3 \
        --episodes-per-round 20 --policy act --preset cpu

``run_rounds(LoopConfig) -> LoopResult`` is the library function; the command parses into
the config and calls it. Training and recording run through ``sir.training.train`` and
``sir.dagger.record.record_corrections``, whose results give the table's numbers.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sir import atomic
from sir.config import option, flags_given, parse, validate
from sir.data.mixture.weights import DEFAULT_MODE
from sir.errors import UserError, cli_errors
from sir.policies.registry import PRESETS

ROUNDS_CSV = "dagger_rounds.csv"
# Correction seeds sit far from demo seeds (0...) and evaluation seeds (100000...).
CORRECTION_SEED = 50_000


@dataclass
class LoopConfig:
    env: str = option(None, "Robosuite env of the demos (checked against their EnvSpec)", required=True)
    demos: str = option(None, "folder of the demo dataset, e.g. data/lift_demos", required=True)
    demo_episodes: str | None = option(None, "episodes of the demos to train on, e.g. 0:10 (default: all)")
    rounds: int = option(3, "correction rounds after round 0", minimum=0)
    episodes_per_round: int = option(20, "policy episodes watched per round", minimum=1)
    policy: str = option("act", "policy type")
    preset: str = option("cpu", "model size", choices=PRESETS)
    training_steps: int = option(600, "training steps of every round", minimum=1)
    batch_size: int = option(32, minimum=1)
    eval_freq: int = option(200, minimum=0)
    eval_episodes: int = option(20, minimum=1)
    max_steps: int | None = option(None, "episode step limit (default: the EnvSpec's horizon)", minimum=1)
    warm_start: bool = option(False, "fine-tune each round from the previous best model instead of training from scratch")
    checkpoint_dir: str = option("checkpoints")
    run_name: str | None = option(None, "default: dagger_<demos name>")
    seed: int = option(0)
    overwrite: bool = option(False, "replace an existing run and its round datasets")
    train_args: str = option("", 'extra train_policy flags, quoted, e.g. "--lr 1e-3"')
    record_args: str = option("", 'extra sir.dagger.record flags, quoted, e.g. "--patience 15 --agree 0.2" '
                              "for the rule by which the scripted corrector takes over and hands back")
    label_budget: int | None = option(None, "corrector labels (frames) per round: recording stops after the "
                                      "episode that reaches it (--episodes-per-round is then a cap)", minimum=1)
    corrections_only: bool = option(False, "save only the corrected episodes of a round; by default every "
                                    "deployment is kept, the policy's own successes too, as Sirius keeps them")
    keep_timeouts: bool = option(False, "also keep episodes that ran out of steps without success (Sirius drops "
                                 "them; --dagger-mode hg-dagger keeps them always, since HG-DAgger aggregates every "
                                 "label the expert gave, whatever the outcome)")
    epochs: float | None = option(None, "train each round for this many passes over its data (demos plus every "
                                  "round's saved frames), at least --training-steps: the rule every arm shares",
                                  minimum=0)
    start_model: str | None = option(None, "a round-0 model folder to start from instead of training round 0 "
                                     "(the experiment gives every mode the same one)")


@dataclass
class LoopResult:
    base_dir: Path
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per round, as in dagger_rounds.csv


def run_rounds(cfg: LoopConfig) -> LoopResult:
    from sir.dagger.record import RecordConfig, record_corrections
    from sir.envs.layout import rebuild_spec
    from sir.envs.spec import EnvSpec
    from sir.training import TrainConfig, train

    validate(cfg)
    train_extra = flags_given(TrainConfig, cfg.train_args, "--train-args")
    record_extra = flags_given(RecordConfig, cfg.record_args, "--record-args")
    mode = train_extra.get("dagger_mode", DEFAULT_MODE)
    demos = Path(cfg.demos)
    spec = EnvSpec.load(demos) or rebuild_spec(demos)  # lerobot's editing tools drop sir_env.json
    if spec is None:
        raise UserError(f"{demos} holds no dataset sir can roll out (no meta/sir_env.json, and its task and robot type "
                        "name no Robosuite env); record demos with sir.data.collect.")
    if spec.env_name != cfg.env:
        raise UserError(f"--demos {demos} were recorded in {spec.env_name}, not --env {cfg.env}.")
    root, demo_id = demos.parent, demos.name
    run_name = cfg.run_name or f"dagger_{demo_id}"
    base = Path(cfg.checkpoint_dir) / run_name
    round_ids = [f"{run_name}_r{k}" for k in range(1, cfg.rounds + 1)]
    existing = [root / r for r in round_ids if (root / r).exists()]
    if (base.exists() or existing) and not cfg.overwrite:
        raise UserError(f"{base if base.exists() else existing[0]} already exists; pass --overwrite or another --run-name.")
    for path in existing:
        shutil.rmtree(path)
    base.mkdir(parents=True, exist_ok=True)

    result = LoopResult(base)
    datasets = [demo_id]
    max_steps = cfg.max_steps or spec.horizon
    previous_best: Path | None = Path(cfg.start_model) if cfg.start_model else None
    corrector_frames = 0  # every frame the corrector labelled so far, kept by training or not
    data_frames = 0  # frames on disk the rounds train on: the demos used, then every round's saved frames
    for k in range(cfg.rounds + 1):
        recorded = None
        if k > 0:
            print(f"\n##### Round {k}: deployments of {previous_best}")
            recorded = record_corrections(dataclasses.replace(
                RecordConfig(checkpoint=str(previous_best), repo_id=round_ids[k - 1], root=str(root),
                             episodes=cfg.episodes_per_round, seed=CORRECTION_SEED + 1_000 * k + cfg.seed,
                             max_steps=cfg.max_steps, auto_save_on_success=not cfg.corrections_only,
                             drop_failures=not keeps_failures(mode, cfg.keep_timeouts),
                             label_budget=cfg.label_budget),
                **record_extra))
            corrector_frames += recorded.corrector_frames
            data_frames += recorded.frames
            if recorded.path is not None and _trainable(mode, recorded):
                datasets.append(round_ids[k - 1])
            else:
                print(f"Round {k} kept nothing --dagger-mode {mode} trains on; retraining on the same data.")
        if k == 0 and cfg.start_model:
            metrics, frames = _saved_model(previous_best)
            data_frames = frames.get(demo_id, 0)
            steps = None
        else:
            steps = training_steps(cfg.training_steps, cfg.epochs, cfg.batch_size, data_frames)
            print(f"\n##### Round {k}: training on {', '.join(datasets)} ({steps} steps)")
            run = train(dataclasses.replace(
                TrainConfig(repo_ids=list(datasets), root=str(root), policy=cfg.policy, preset=cfg.preset,
                            training_steps=steps, batch_size=cfg.batch_size, eval_freq=cfg.eval_freq,
                            eval_episodes=cfg.eval_episodes, max_steps=max_steps, checkpoint_dir=str(base),
                            run_name=f"round_{k}", seed=cfg.seed, overwrite=True,
                            episodes=f"{demo_id}={cfg.demo_episodes}" if cfg.demo_episodes else None,
                            policy_path=str(previous_best) if cfg.warm_start and previous_best is not None else None),
                **train_extra))
            previous_best, metrics, frames = run.best_model, run.best_metrics or {}, run.frames_per_dataset
            if k == 0:
                data_frames = frames.get(demo_id, 0)
        ci = metrics.get("success_ci95") or [None, None]
        result.rows.append({
            "round": k, "datasets": "+".join(datasets), "demo_frames": frames.get(demo_id, 0),
            "correction_frames": sum(v for r, v in frames.items() if r != demo_id),
            "expert_labelled_frames": sum(frames.values()),
            # The labels the expert gave: the demos trained on and every corrector frame recorded,
            # including those of deployments not kept, which no mode trains on.
            "labels_given": frames.get(demo_id, 0) + corrector_frames,
            "training_steps": steps,
            **_deployment_columns(recorded),
            "success_rate": metrics.get("success_rate"), "ci95_low": ci[0], "ci95_high": ci[1],
            "best_model": str(previous_best),
        })
        atomic.write_csv(base / ROUNDS_CSV, result.rows)
    print(f"\n{'round':>5}  {'labels given':>12}  {'intervention ratio':>18}  {'alone':>6}  {'success':>8}")
    for r in result.rows:
        rate = "-" if r["success_rate"] is None else f"{100 * r['success_rate']:.1f}%"
        ratio = "-" if r["intervention_ratio"] is None else f"{r['intervention_ratio']:.2f}"
        alone = "-" if r["autonomous_success_rate"] is None else f"{100 * r['autonomous_success_rate']:.0f}%"
        print(f"{r['round']:>5}  {r['labels_given']:>12}  {ratio:>18}  {alone:>6}  {rate:>8}")
    print(f"\nTable: {base / ROUNDS_CSV}")
    return result


def training_steps(steps: int, epochs: float | None, batch_size: int, data_frames: int) -> int:
    """``steps`` (--training-steps), or with ``epochs`` that many passes over the data if more:
    the rule every round, and every arm of the experiment, trains by."""
    if epochs is None:
        return steps
    return max(steps, math.ceil(epochs * data_frames / batch_size))


def keeps_failures(mode: str, keep_timeouts: bool) -> bool:
    """Whether a round saves the deployments that ran out of steps without success: Sirius's
    collection drops them; HG-DAgger aggregates every expert label whatever the outcome
    (Kelly et al. 2019), so its rounds keep the failed corrections, whose human frames it
    trains on."""
    return keep_timeouts or mode == "hg-dagger"


def _trainable(mode: str, recorded: Any) -> bool:
    """Whether a round's saved episodes hold a frame ``mode`` trains on (a dataset without
    one is refused by the mixture, naming it)."""
    if mode == DEFAULT_MODE:
        return recorded.corrected_successes > 0
    if mode == "hg-dagger":
        return recorded.human_frames > 0
    if mode == "sirius":
        return recorded.successes > 0
    return recorded.episodes > 0


def _deployment_columns(recorded: Any) -> dict[str, Any]:
    """A round's deployments as a person's log sums them up (empty for round 0)."""
    if recorded is None:
        return {"deployments": None, "deployment_frames": None, "corrector_labels": None, "intervention_ratio": None,
                "takeovers_per_episode": None, "autonomous_success_rate": None, "saved_episodes": None}
    tried = max(recorded.tried, 1)
    return {"deployments": recorded.tried, "deployment_frames": recorded.deployment_frames,
            "corrector_labels": recorded.corrector_frames, "intervention_ratio": recorded.intervention_ratio(),
            "takeovers_per_episode": recorded.takeovers / tried,
            "autonomous_success_rate": recorded.policy_successes / tried, "saved_episodes": recorded.episodes}


def _saved_model(folder: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """(metrics, frames per dataset) recorded in a sir model folder's sir_checkpoint.json."""
    import json

    try:
        saved = json.loads((folder / "sir_checkpoint.json").read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"--start-model {folder} is not a sir model folder ({err}); give a best_model folder.") from err
    return saved.get("metrics") or {}, {d["repo_id"]: int(d["frames"]) for d in saved.get("datasets", [])}


def parse_config(argv: list[str] | None = None) -> LoopConfig:
    return parse(LoopConfig, argv, "python -m sir.dagger.loop",
                 "Run DAgger rounds with a scripted corrector: round 0 trains on the demos; each later round "
                 "records corrections with the previous round's best model and retrains on demos + all corrections. "
                 f"Writes {ROUNDS_CSV} (success rate per round) in the run folder.")


@cli_errors
def main(argv: list[str] | None = None) -> Path:
    return run_rounds(parse_config(argv)).base_dir


if __name__ == "__main__":
    main()
