"""BC versus DAgger at an equal budget of expert-labelled frames.

    python -m sir.dagger.experiment --env NutAssemblySquare --small-demos 10 --rounds 2 --seeds 0,1,2

For each seed: record a pool of scripted demos; the DAgger arm trains on the first
``--small-demos`` of them and runs ``--rounds`` of corrections; the BC arm trains on as
many demos from the pool as it takes to match the DAgger arm's expert-labelled frames.
Writes ``bc_vs_dagger.csv`` (one row per seed and arm), ``bc_vs_dagger_summary.csv`` (mean
and spread per arm over seeds) and ``bc_vs_dagger.png`` (success rate against expert frames).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

from sir import atomic
from sir.errors import cli_errors

RESULTS_CSV = "bc_vs_dagger.csv"
RESULTS_PNG = "bc_vs_dagger.png"
SUMMARY_CSV = "bc_vs_dagger_summary.csv"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m sir.dagger.experiment",
        description="Compare BC on more demos with BC on fewer demos plus DAgger corrections, at an equal number "
        "of expert-labelled frames, over several seeds.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--env", required=True)
    p.add_argument("--small-demos", type=int, default=10, help="demos the DAgger arm starts from")
    p.add_argument("--pool-demos", type=int, default=60, help="demos recorded per seed for the BC arm to draw from")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--episodes-per-round", type=int, default=10)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated experiment seeds")
    p.add_argument("--policy", default="act")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--training-steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-freq", type=int, default=200)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--max-steps", type=int, default=None,
                   help="step limit of every rollout, evaluations and corrections alike (default: the EnvSpec's horizon)")
    p.add_argument("--root", default="data/bc_vs_dagger", help="where the experiment's datasets go")
    p.add_argument("--out", default="checkpoints/bc_vs_dagger", help="where runs and results go")
    p.add_argument("--train-args", default="", help="extra train_policy flags, quoted")
    p.add_argument("--record-args", default="", help="extra sir.dagger.record flags (the takeover rule), quoted")
    return p.parse_args(argv)


def episode_frames(dataset: Path) -> list[int]:
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    meta = LeRobotDatasetMetadata(dataset.name, root=dataset)
    return [int(n) for n in meta.episodes["length"]]


def episodes_for_budget(lengths: list[int], budget: int) -> int:
    """The fewest leading episodes whose frames reach ``budget`` (all of them at most)."""
    total = 0
    for i, n in enumerate(lengths, start=1):
        total += n
        if total >= budget:
            return i
    return len(lengths)


@cli_errors
def main(argv: list[str] | None = None) -> Path:
    import shlex

    args = parse_args(argv)
    from sir.dagger.loop import main as dagger_loop
    from sir.dagger.loop import used_frames
    from sir.data.collect import main as collect
    from sir.training.train_policy import main as train

    root, out = Path(args.root), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        pool_id = f"{args.env.lower()}_pool_s{seed}"
        collect(["--env", args.env, "--episodes", str(args.pool_demos), "--root", str(root), "--repo-id", pool_id,
                 "--seed", str(10_000 * seed), "--skip-existing",
                 *(["--max-steps", str(args.max_steps)] if args.max_steps else [])])
        lengths = episode_frames(root / pool_id)
        common = ["--policy", args.policy, "--preset", args.preset, "--training-steps", str(args.training_steps),
                  "--batch-size", str(args.batch_size), "--eval-freq", str(args.eval_freq),
                  "--eval-episodes", str(args.eval_episodes),
                  *(["--max-steps", str(args.max_steps)] if args.max_steps else [])]

        base = dagger_loop([
            "--env", args.env, "--demos", str(root / pool_id), "--rounds", str(args.rounds),
            "--episodes-per-round", str(args.episodes_per_round), "--checkpoint-dir", str(out),
            "--run-name", f"dagger_s{seed}", "--seed", str(seed), "--overwrite", *common,
            "--record-args", args.record_args,
            "--train-args", f"--episodes {pool_id}=0:{args.small_demos} {args.train_args}",
        ])
        with (base / "dagger_rounds.csv").open() as f:
            for r in csv.DictReader(f):
                rows.append({"seed": seed, "arm": f"dagger_round_{r['round']}" if r["round"] != "0" else "bc_small",
                             "expert_frames": int(r["expert_labelled_frames"]), "success_rate": float(r["success_rate"])})
        budget = rows[-1]["expert_frames"]
        n_bc = episodes_for_budget(lengths, budget)
        run = train(["--repo-ids", pool_id, "--root", str(root), "--episodes", f"{pool_id}=0:{n_bc}",
                     "--checkpoint-dir", str(out), "--run-name", f"bc_s{seed}", "--seed", str(seed), "--overwrite",
                     *common, *shlex.split(args.train_args)])
        frames, metrics = used_frames(run)
        rows.append({"seed": seed, "arm": "bc_equal_budget", "expert_frames": sum(frames.values()),
                     "success_rate": float(metrics["success_rate"])})
        summary = write_results(out, rows)
    atomic.write_json(out / "bc_vs_dagger_args.json", vars(args))
    print_summary(summary)
    print(f"\nResults: {out / RESULTS_CSV}, {out / SUMMARY_CSV}, {out / RESULTS_PNG}")
    return out


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per arm, over seeds: mean expert-labelled frames, mean and spread of success rate."""
    import numpy as np

    arms: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        arms.setdefault(r["arm"], []).append(r)
    out = []
    for arm, rs in arms.items():
        rates = np.array([r["success_rate"] for r in rs], dtype=float)
        out.append({"arm": arm, "seeds": len(rs), "expert_frames": round(float(np.mean([r["expert_frames"] for r in rs]))),
                    "success_mean": float(rates.mean()), "success_std": float(rates.std(ddof=1)) if len(rs) > 1 else 0.0,
                    "success_min": float(rates.min()), "success_max": float(rates.max())})
    return out


def print_summary(summary: list[dict[str, Any]]) -> None:
    print(f"\n{'arm':<18} {'seeds':>5} {'expert frames':>13} {'success (mean ± sd)':>20}")
    for s in summary:
        print(f"{s['arm']:<18} {s['seeds']:>5} {s['expert_frames']:>13} "
              f"{100 * s['success_mean']:>12.1f}% ± {100 * s['success_std']:.1f}")


def write_results(out: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    atomic.write_csv(out / RESULTS_CSV, rows)
    summary = summarize(rows)
    atomic.write_csv(out / SUMMARY_CSV, summary)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colours = {"bc": "tab:orange", "dagger": "tab:green"}
    for arm, marker, colour in (("bc_small", "s", "tab:blue"), ("bc_equal_budget", "o", colours["bc"])):
        pts = [(r["expert_frames"], r["success_rate"]) for r in rows if r["arm"] == arm]
        if pts:
            ax.scatter(*zip(*pts, strict=True), marker=marker, color=colour, alpha=0.4)
    dagger = [(r["expert_frames"], r["success_rate"]) for r in rows if r["arm"].startswith("dagger")]
    if dagger:
        ax.scatter(*zip(*dagger, strict=True), marker="^", color=colours["dagger"], alpha=0.4)
    # Means over seeds: each arm's curve starts from the shared small-demo model.
    means = {s["arm"]: s for s in summary}
    start = [means["bc_small"]] if "bc_small" in means else []
    curves = (("bc", "BC on more demos", start + [means[a] for a in ("bc_equal_budget",) if a in means]),
              ("dagger", "BC on few demos + DAgger rounds",
               start + [means[a] for a in sorted(means) if a.startswith("dagger_round_")]))
    for key, label, pts in curves:
        if pts:
            ax.errorbar([p["expert_frames"] for p in pts], [p["success_mean"] for p in pts],
                        yerr=[p["success_std"] for p in pts], color=colours[key], marker="o", capsize=3,
                        label=f"{label} (mean ± sd)")
    ax.set_xlabel("expert-labelled frames")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic.save_figure(fig, out / RESULTS_PNG)
    plt.close(fig)
    return summary


if __name__ == "__main__":
    main()
