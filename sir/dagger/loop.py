"""DAgger rounds: train on the demos, collect corrections with the best model, retrain on
the demos plus every round's corrections, and report success per round.

    python -m sir.dagger.loop --env Lift --demos data/lift_demos --rounds 3 \
        --episodes-per-round 20 --policy act --preset cpu
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sir import atomic
from sir.errors import UserError, cli_errors

ROUNDS_CSV = "dagger_rounds.csv"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m sir.dagger.loop",
        description="Run DAgger rounds with a scripted corrector: round 0 trains on the demos; each later round "
        "records corrections with the previous round's best model and retrains on demos + all corrections. "
        f"Writes {ROUNDS_CSV} (success rate per round) in the run folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--env", required=True, help="Robosuite env of the demos (checked against their EnvSpec)")
    p.add_argument("--demos", required=True, help="folder of the demo dataset, e.g. data/lift_demos")
    p.add_argument("--rounds", type=int, default=3, help="correction rounds after round 0")
    p.add_argument("--episodes-per-round", type=int, default=20, help="policy episodes watched per round")
    p.add_argument("--policy", default="act")
    p.add_argument("--preset", default="cpu", choices=["tiny", "cpu", "default"])
    p.add_argument("--training-steps", type=int, default=600, help="training steps of every round")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-freq", type=int, default=200)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--max-steps", type=int, default=None, help="episode step limit (default: the EnvSpec's horizon)")
    p.add_argument("--warm-start", action="store_true",
                   help="fine-tune each round from the previous best model instead of training from scratch")
    p.add_argument("--checkpoint-dir", default="checkpoints")
    p.add_argument("--run-name", default=None, help="default: dagger_<demos name>")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing run and its round datasets")
    p.add_argument("--train-args", default="", help="extra train_policy flags, quoted, e.g. \"--lr 1e-3\"")
    p.add_argument("--record-args", default="",
                   help="extra sir.dagger.record flags, quoted, e.g. \"--patience 30 --deviation 100\" for the takeover rule")
    args = p.parse_args(argv)
    if args.rounds < 0 or args.episodes_per_round < 1:
        p.error("--rounds must be 0 or more and --episodes-per-round at least 1")
    return args


def used_frames(run_dir: Path) -> tuple[dict[str, int], dict[str, Any]]:
    """Frames each dataset contributed to a round's training, and the best model's metrics."""
    info = json.loads((run_dir / "best_model" / "sir_checkpoint.json").read_text())
    return {d["repo_id"]: int(d["frames"]) for d in info["datasets"]}, info.get("metrics") or {}


@cli_errors
def main(argv: list[str] | None = None) -> Path:
    import shlex
    import shutil

    args = parse_args(argv)
    from sir.dagger.record import main as record
    from sir.envs.spec import EnvSpec
    from sir.training.train_policy import main as train

    demos = Path(args.demos)
    spec = EnvSpec.load(demos)
    if spec is None:
        raise UserError(f"{demos} is not a dataset recorded by sir (no meta/sir_env.json); record demos with sir.data.collect.")
    if spec.env_name != args.env:
        raise UserError(f"--demos {demos} were recorded in {spec.env_name}, not --env {args.env}.")
    root, demo_id = demos.parent, demos.name
    run_name = args.run_name or f"dagger_{demo_id}"
    base = Path(args.checkpoint_dir) / run_name
    round_ids = [f"{run_name}_r{k}" for k in range(1, args.rounds + 1)]
    existing = [root / r for r in round_ids if (root / r).exists()]
    if (base.exists() or existing) and not args.overwrite:
        raise UserError(f"{base if base.exists() else existing[0]} already exists; pass --overwrite or another --run-name.")
    for path in existing:
        shutil.rmtree(path)
    base.mkdir(parents=True, exist_ok=True)

    rows: list[dict[str, Any]] = []
    datasets = [demo_id]
    previous_best: Path | None = None
    for k in range(args.rounds + 1):
        if k > 0:
            print(f"\n##### Round {k}: corrections with {previous_best}")
            recorded = record(["--checkpoint", str(previous_best), "--episodes", str(args.episodes_per_round),
                               "--root", str(root), "--repo-id", round_ids[k - 1],
                               "--seed", str(50_000 + 1_000 * k + args.seed),
                               *(["--max-steps", str(args.max_steps)] if args.max_steps else []),
                               *shlex.split(args.record_args)])
            corrections = 0
            if recorded is not None:
                corrections = json.loads((recorded / "meta" / "sir_info.json").read_text())["corrected_successes"]
            if corrections:
                datasets.append(round_ids[k - 1])
            else:
                print(f"Round {k} produced no successful correction; retraining on the same data.")
        print(f"\n##### Round {k}: training on {', '.join(datasets)}")
        train_argv = [
            "--repo-ids", ",".join(datasets), "--root", str(root), "--policy", args.policy,
            "--preset", args.preset, "--training-steps", str(args.training_steps), "--batch-size", str(args.batch_size),
            "--eval-freq", str(args.eval_freq), "--eval-episodes", str(args.eval_episodes),
            "--max-steps", str(args.max_steps or spec.horizon), "--checkpoint-dir", str(base),
            "--run-name", f"round_{k}", "--seed", str(args.seed), "--overwrite", *shlex.split(args.train_args),
        ]
        if args.warm_start and previous_best is not None:
            train_argv += ["--policy-path", str(previous_best)]
        run_dir = train(train_argv)
        previous_best = run_dir / "best_model"
        frames, metrics = used_frames(run_dir)
        rows.append({
            "round": k, "datasets": "+".join(datasets), "demo_frames": frames.get(demo_id, 0),
            "correction_frames": sum(v for r, v in frames.items() if r != demo_id),
            "expert_labelled_frames": sum(frames.values()),
            "success_rate": metrics.get("success_rate"), "ci95_low": (metrics.get("success_ci95") or [None])[0],
            "ci95_high": (metrics.get("success_ci95") or [None, None])[1], "best_model": str(previous_best),
        })
        write_rounds(base, rows)
    print(f"\n{'round':>5}  {'expert frames':>13}  {'success':>8}")
    for r in rows:
        rate = "-" if r["success_rate"] is None else f"{100 * r['success_rate']:.1f}%"
        print(f"{r['round']:>5}  {r['expert_labelled_frames']:>13}  {rate:>8}")
    print(f"\nTable: {base / ROUNDS_CSV}")
    return base


def write_rounds(base: Path, rows: list[dict[str, Any]]) -> None:
    atomic.write_csv(base / ROUNDS_CSV, rows)


if __name__ == "__main__":
    main()
