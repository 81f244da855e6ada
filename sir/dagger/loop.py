"""DAgger rounds: train on the demos, collect corrections with the round's model (best_model,
or final_model with --deploy), retrain on the demos plus every round's corrections, and
report success per round.

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

from sir import atomic, seeds
from sir.command_line import CommandLine, Flag, FlagString, nested
from sir.config import flag, option, validate
from sir.dagger.record import RecordConfig
from sir.data.mixture.weights import DEFAULT_MODE, MODES
from sir.errors import UserError, cli_errors
from sir.policies.checkpoint import info_path, read_info
from sir.training.config import TrainConfig

ROUNDS_CSV = "dagger_rounds.csv"
CORRECTION_SEED = seeds.CORRECTIONS.start  # round k of experiment seed s: + 1000 k + s
# The loop's training, where it differs from train_policy's defaults: small enough for a CPU.
LOOP_TRAINING = {"policy": "act", "preset": "cpu", "training_steps": 600, "batch_size": 32, "eval_freq": 200,
                 "eval_episodes": 20}


def loop_training(**changes: Any) -> TrainConfig:
    """The ``TrainConfig`` every round starts from: the loop's defaults, then ``changes``."""
    return TrainConfig(**{**LOOP_TRAINING, **changes})


@dataclass
class LoopConfig:
    env: str = option(None, "Robosuite env of the demos (checked against their EnvSpec)", required=True)
    demos: str = option(None, "folder of the demo dataset, e.g. data/lift_demos", required=True)
    demo_episodes: str | None = option(None, "episodes of the demos to train on, e.g. 0:10 (default: all)")
    rounds: int = option(3, "correction rounds after round 0", minimum=0)
    episodes_per_round: int = option(20, "policy episodes watched per round", minimum=1)
    warm_start: bool = option(False, "fine-tune each round from the previous best model instead of training from "
                              "scratch")
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
    first_round: str | None = option(None, "a recording of round 1 beside the demos, made once from --start-model "
                                     "with every deployment kept (the experiment's, shared by its modes): round 1 "
                                     "trains on the episodes of it that this --dagger-mode's own recording would "
                                     "have kept, instead of recording again")
    deploy: str = option("best_model", "the model of each round that the next round deploys: best_model (chosen on "
                         "the evaluations during training) or final_model (the last step's, which nothing chose: "
                         "the experiment's, whose evaluations are on test episodes)",
                         choices=["best_model", "final_model"])
    earlier_last_k: int | None = option(None, "score the models of the rounds before the last by their last K "
                                        "checkpoints instead of --last-k (the experiment's: 1, the final one; "
                                        "the last round's models carry its claim and get every evaluation)",
                                        minimum=1)
    dagger_mode: str = option(DEFAULT_MODE, "which frames of the rounds every round trains on (train_policy's "
                              "--dagger-mode), and so which deployments a round keeps", choices=MODES)
    # How every round trains. The loop sets per round the datasets (repo_ids, root, and episodes
    # with --demo-episodes), the steps (training_steps, or more with --epochs), dagger_mode, and
    # the run folder: round_<k> under checkpoint_dir/run_name (default dagger_<demos name>),
    # which are the loop's own. seed and max_steps are the deployments' too.
    train: TrainConfig = nested(loop_training, "how every round trains")
    # How every round records its deployments: the corrector and its takeover rule. The loop
    # sets per round the model, the dataset, the episodes, seeds and step limit, what is kept,
    # and the label budget.
    record: RecordConfig = nested(RecordConfig, "how every round records its deployments")


@dataclass
class LoopResult:
    base_dir: Path
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per round, as in dagger_rounds.csv


def run_rounds(cfg: LoopConfig) -> LoopResult:
    from sir.dagger.record import record_corrections
    from sir.envs.layout import rebuild_spec
    from sir.envs.spec import EnvSpec
    from sir.training import train

    validate(cfg)
    mode = cfg.dagger_mode
    demos = Path(cfg.demos)
    spec = EnvSpec.load(demos) or rebuild_spec(demos)  # lerobot's editing tools drop sir_env.json
    if spec is None:
        raise UserError(f"{demos} holds no dataset sir can roll out (no meta/sir_env.json, and its task and robot type "
                        "name no Robosuite env); record demos with sir.data.collect.")
    if spec.env_name != cfg.env:
        raise UserError(f"--demos {demos} were recorded in {spec.env_name}, not --env {cfg.env}.")
    root, demo_id = demos.parent, demos.name
    run_name = cfg.train.run_name or f"dagger_{demo_id}"
    base = Path(cfg.train.checkpoint_dir) / run_name
    round_ids = [f"{run_name}_r{k}" for k in range(1, cfg.rounds + 1)]
    if cfg.first_round and cfg.rounds:
        round_ids[0] = _check_first_round(cfg, root)
    existing = [root / r for r in round_ids[1 if cfg.first_round else 0:] if (root / r).exists()]
    if (base.exists() or existing) and not cfg.train.overwrite:
        raise UserError(f"{base if base.exists() else existing[0]} already exists; pass --overwrite or another "
                        "--run-name.")
    for path in existing:
        shutil.rmtree(path)
    base.mkdir(parents=True, exist_ok=True)

    result = LoopResult(base)
    datasets = [demo_id]
    # --episodes of every round's training: the demos used, and the shared round 1's episodes this mode keeps.
    selection = [f"{demo_id}={cfg.demo_episodes}"] if cfg.demo_episodes else []
    max_steps = cfg.train.max_steps or spec.horizon
    deployed: Path | None = Path(cfg.start_model) if cfg.start_model else None
    corrector_frames = 0  # every frame the corrector labelled so far, kept by training or not
    data_frames = 0  # frames on disk the rounds train on: the demos used, then every round's saved frames
    for k in range(cfg.rounds + 1):
        recorded = None
        if k == 1 and cfg.first_round:
            print(f"\n##### Round 1: the deployments of {deployed} recorded in {root / round_ids[0]}")
            own = own_recording(cfg, deployed, 1, round_ids[0], root)
            recorded, kept = kept_episodes(root / round_ids[0], own)
            if recorded.path is not None:
                selection.append(f"{round_ids[0]}=" + ",".join(map(str, kept)))
        elif k > 0:
            print(f"\n##### Round {k}: deployments of {deployed}")
            recorded = record_corrections(own_recording(cfg, deployed, k, round_ids[k - 1], root))
        if recorded is not None:
            corrector_frames += recorded.corrector_frames
            data_frames += recorded.frames
            if recorded.path is not None and _trainable(mode, recorded):
                datasets.append(round_ids[k - 1])
            else:
                print(f"Round {k} kept nothing --dagger-mode {mode} trains on; retraining on the same data.")
        if k == 0 and cfg.start_model:
            metrics, frames, last_k = _saved_model(deployed)
            data_frames = frames.get(demo_id, 0)
            steps = None
        else:
            steps = training_steps(cfg.train.training_steps, cfg.epochs, cfg.train.batch_size, data_frames)
            print(f"\n##### Round {k}: training on {', '.join(datasets)} ({steps} steps)")
            chosen = [part for part in selection if part.split("=", 1)[0] in datasets]
            run = train(dataclasses.replace(
                scored(cfg.train, cfg.earlier_last_k if k < cfg.rounds else None, steps), repo_ids=list(datasets),
                root=str(root), training_steps=steps, max_steps=max_steps,
                checkpoint_dir=str(base), run_name=f"round_{k}", overwrite=True, dagger_mode=mode,
                episodes=",".join(chosen) if chosen else cfg.train.episodes,
                policy_path=str(deployed) if cfg.warm_start and deployed is not None
                else cfg.train.policy_path))
            metrics, frames, last_k = run.best_metrics or {}, run.frames_per_dataset, run.last_k or {}
            deployed = run.final_model if cfg.deploy == "final_model" else run.best_model
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
            **last_k_columns(last_k),
            "deployed_model": str(deployed),
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


def own_recording(cfg: LoopConfig, model: Path, k: int, repo_id: str, root: Path,
                  keep_failures: bool | None = None) -> RecordConfig:
    """How round ``k`` records the deployments of ``model``: the corrector's rule from
    ``cfg.record``, the round's seeds (the same for every mode), the label budget, and what it
    saves: every success unless --corrections-only, failures as the mode keeps them
    (``keep_failures`` overrides: the experiment's shared round 1 keeps every deployment)."""
    if keep_failures is None:
        keep_failures = keeps_failures(cfg.dagger_mode, cfg.keep_timeouts)
    return dataclasses.replace(
        cfg.record, checkpoint=str(model), repo_id=repo_id, root=str(root), episodes=cfg.episodes_per_round,
        seed=CORRECTION_SEED + 1_000 * k + cfg.train.seed, max_steps=cfg.train.max_steps,
        auto_save_on_success=not cfg.corrections_only, drop_failures=not keep_failures,
        label_budget=cfg.label_budget)


def kept_episodes(path: Path, own: RecordConfig) -> tuple[Any, list[int]]:
    """Of the finished recording at ``path``, what a recording by ``own`` would have saved of
    the same deployments: (its RecordingResult, the recording's indices of those episodes).

    The deployments' counts (tried, successes, takeovers, every corrector label given, kept
    or not) are the recording's: what a mode keeps changes none of them, so the label budget
    each mode spent is the same. The saved counts (episodes, frames, human frames) are of the
    kept episodes; ``path`` is None when none is kept."""
    import json

    from sir.dagger.record import saves
    from sir.data.record.runner import RecordingResult
    from sir.data.record.writer import SIR_META_FILENAME

    info = json.loads((path / "meta" / SIR_META_FILENAME).read_text())
    runs = info["episodes"]  # every deployment, in order, with whether the recording saved it
    saved = [e for e in runs if e["saved"]]
    kept = [i for i, e in enumerate(saved) if saves(own, e["success"], e["takeover_step"] is not None)]
    result = RecordingResult(
        path=path if kept else None, episodes=len(kept), frames=sum(saved[i]["frames"] for i in kept),
        episode_lengths=[saved[i]["frames"] for i in kept], tried=len(runs), successes=sum(e["success"] for e in runs),
        interventions=info["interventions"], policy_successes=info["policy_successes"],
        corrected_successes=info["corrected_successes"], per_episode=runs,
        human_frames=sum(c["steps"] for i in kept for c in saved[i].get("corrections") or []),
        deployment_frames=info["deployment_frames"], corrector_frames=info["corrector_frames"],
        takeovers=info["takeovers"])
    return result, kept


def _check_first_round(cfg: LoopConfig, root: Path) -> str:
    """The name of ``cfg.first_round``, refused unless it is a finished recording beside the
    demos, of --start-model's deployments, that saved every episode this mode keeps."""
    import json

    from sir.data.record.writer import SIR_META_FILENAME

    path = Path(cfg.first_round)
    if cfg.train.episodes:
        raise UserError("--first-round chooses its episodes by --dagger-mode; give the demos' with --demo-episodes, "
                        "not --episodes.")
    try:
        info = json.loads((path / "meta" / SIR_META_FILENAME).read_text())
    except (OSError, ValueError):
        info = {}
    if path.parent.resolve() != root.resolve() or "corrector_frames" not in info:
        raise UserError(f"--first-round {path} is not a finished DAgger recording beside the demos in {root}.")
    if not cfg.start_model or info.get("checkpoint") != str(Path(cfg.start_model).resolve()):
        raise UserError(f"--first-round {path} holds the deployments of {info.get('checkpoint')}; give that model "
                        "as --start-model, or record round 1 again.")
    own = own_recording(cfg, Path(cfg.start_model), 1, path.name, root)
    if (info.get("drop_failures") and not own.drop_failures) or (
            own.auto_save_on_success and not info.get("auto_save_on_success")):
        raise UserError(f"--first-round {path} did not save every deployment --dagger-mode {cfg.dagger_mode} keeps "
                        "(record it keeping failures and the policy's own successes).")
    return path.name


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


def scored(train: Any, last_k: int | None, steps: int | None = None) -> Any:
    """``train`` evaluating only its last ``last_k`` checkpoints, --eval-freq steps apart
    (unchanged for None): the evaluations that give a model's score where nothing is chosen."""
    if not last_k:
        return train
    steps = steps or train.training_steps
    return dataclasses.replace(train, last_k=last_k, eval_start=max(0, steps - (last_k - 1) * train.eval_freq))


def last_k_columns(last_k: dict[str, Any]) -> dict[str, Any]:
    """A round's model scored by nothing that chose it: the mean success of its last --last-k
    evaluations, their steps and rates, and per episode how many of them succeeded in it
    (from ``eval_seed`` on), which pairs two models episode by episode."""
    def words(values: Any) -> str:
        return " ".join(map(str, values or []))

    return {"last_k_success": last_k.get("success_mean"), "last_k_steps": words(last_k.get("steps")),
            "last_k_rates": words(last_k.get("rates")), "eval_seed": last_k.get("first_seed"),
            "episode_successes": words(last_k.get("episode_successes"))}


def _saved_model(folder: Path) -> tuple[dict[str, Any], dict[str, int], dict[str, Any]]:
    """(metrics, frames per dataset, last-k record) of a sir model folder's model record."""
    try:
        saved = read_info(folder)
    except (OSError, ValueError) as err:
        saved, why = None, str(err)
    else:
        why = f"no {info_path(folder).name}"
    if saved is None:
        raise UserError(f"--start-model {folder} is not a sir model folder ({why}); give a best_model or "
                        "final_model folder.")
    return (saved.get("metrics") or {}, {d["repo_id"]: int(d["frames"]) for d in saved.get("datasets", [])},
            saved.get("last_k") or {})


# Settings of every round's recording that the loop decides: --record-args may not give them.
RECORDING_BY_THE_LOOP = {
    name: f"--record-args may not set {flag(name)}: {why}." for name, why in (
        ("checkpoint", "each round deploys the previous round's model (--deploy)"),
        ("repo_id", "each round records into <demos root>/<run name>_r<k>"),
        ("root", "each round records beside the demos"),
        ("seed", "each round's deployments are seeded from --seed"),
        ("max_steps", "give --max-steps, the step limit of deployments and evaluations alike"),
        ("auto_save_on_success", "every successful deployment is kept unless --corrections-only"),
        ("drop_failures", "deployments that ran out of steps are dropped unless --keep-timeouts"))}
# --record-args flags that the loop has a flag of its own for (recording is all they set).
RECORDING_MOVES = {"episodes": "episodes_per_round", "label_budget": "label_budget"}
TRAINING_BY_THE_LOOP = {
    name: f"--train-args may not set {flag(name)}: every round trains on --demos and the rounds' corrections."
    for name in ("repo_ids", "root")}

COMMAND_LINE = CommandLine(LoopConfig, [
    "env", "demos", "demo_episodes", "rounds", "episodes_per_round",
    Flag("train.policy", "policy type"), Flag("train.preset", "model size"),
    Flag("train.training_steps", "training steps of every round"), "train.batch_size", "train.eval_freq",
    "train.eval_episodes", Flag("train.max_steps", "episode step limit (default: the EnvSpec's horizon)"),
    "warm_start", "train.checkpoint_dir", Flag("train.run_name", "default: dagger_<demos name>"),
    Flag("train.seed", "seed of training and of the rounds' deployments"),
    Flag("train.overwrite", "replace an existing run and its round datasets"),
    "dagger_mode",
    FlagString("train_args", "train", 'extra train_policy flags, quoted, e.g. "--lr 1e-3" (a --dagger-mode there '
               "is the loop's)", moves={"dagger_mode": "dagger_mode"}, refuses=TRAINING_BY_THE_LOOP),
    FlagString("record_args", "record", 'extra sir.dagger.record flags, quoted, e.g. "--patience 15 --agree 0.2" '
               "for the rule by which the scripted corrector takes over and hands back",
               moves=RECORDING_MOVES, refuses=RECORDING_BY_THE_LOOP),
    "label_budget", "corrections_only", "keep_timeouts", "epochs", "start_model", "first_round", "deploy",
    "earlier_last_k",
])


def parse_config(argv: list[str] | None = None) -> LoopConfig:
    return COMMAND_LINE.parse(
        argv, "python -m sir.dagger.loop",
        "Run DAgger rounds with a scripted corrector: round 0 trains on the demos; each later round records "
        "corrections with the previous round's best model and retrains on demos + all corrections. "
        f"Writes {ROUNDS_CSV} (success rate per round) in the run folder.")


@cli_errors
def main(argv: list[str] | None = None) -> Path:
    return run_rounds(parse_config(argv)).base_dir


if __name__ == "__main__":
    main()
