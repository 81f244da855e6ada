"""BC versus DAgger, and the ways of learning from interventions, at an equal budget of expert labels.

    python -m sir.dagger.experiment --env PickPlaceCan --small-demos 10 --rounds 2 --seeds 0,1,2 \
        --modes successful-corrections,hg-dagger,iwr,sirius

For each seed: record a pool of scripted demos; the DAgger arm trains on the first
``--small-demos`` of them and runs ``--rounds`` of corrections, its rounds recorded by the
models of the first ``--modes`` entry; every further mode trains on the same demos and
corrections as the last round (the same labels, so the same budget); the BC arm trains on
as many demos from the pool as it takes to match the labels the DAgger arm was given (the
demo frames plus every frame the corrector labelled). Writes ``bc_vs_dagger.csv`` (one row
per seed and arm), ``bc_vs_dagger_summary.csv`` (mean and spread per arm over seeds) and
``bc_vs_dagger.png`` (success rate against expert labels). A seed already in the CSV,
from a run with the same settings, is kept and not run again.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sir import atomic
from sir.config import option, overrides_from_flags, parse, validate
from sir.data.mixture.weights import DEFAULT_MODE, MODES
from sir.errors import UserError, cli_errors
from sir.policies.registry import PRESETS

RESULTS_CSV = "bc_vs_dagger.csv"
RESULTS_PNG = "bc_vs_dagger.png"
SUMMARY_CSV = "bc_vs_dagger_summary.csv"
ARGS_JSON = "bc_vs_dagger_args.json"


@dataclass
class ExperimentConfig:
    env: str = option(None, "Robosuite env with a scripted expert", required=True)
    small_demos: int = option(10, "demos the DAgger arm starts from", minimum=1)
    pool_demos: int = option(60, "demos recorded per seed for the BC arm to draw from", minimum=1)
    rounds: int = option(2, minimum=0)
    episodes_per_round: int = option(10, minimum=1)
    seeds: list[int] = option([0, 1, 2], "experiment seeds, comma-separated")
    policy: str = option("act")
    preset: str = option("cpu", choices=PRESETS)
    training_steps: int = option(600, minimum=1)
    batch_size: int = option(32, minimum=1)
    eval_freq: int = option(200, minimum=0)
    eval_episodes: int = option(20, minimum=1)
    max_steps: int | None = option(None, "step limit of every rollout, evaluations and corrections alike "
                                   "(default: the EnvSpec's horizon)", minimum=1)
    root: str = option("data/bc_vs_dagger", "where the experiment's datasets go")
    out: str = option("checkpoints/bc_vs_dagger", "where runs and results go")
    train_args: str = option("", "extra train_policy flags, quoted")
    record_args: str = option("", "extra sir.dagger.record flags (the takeover rule), quoted")
    modes: list[str] = option([DEFAULT_MODE], "--dagger-mode values compared, comma-separated: the first mode's "
                              "models record the rounds; each further mode trains on the last round's data")


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
    from sir.training import TrainConfig

    validate(cfg)
    for mode in cfg.modes:
        if mode not in MODES:
            raise UserError(f"--modes takes {', '.join(MODES)}, not {mode!r}.")
    if len(set(cfg.modes)) != len(cfg.modes):
        raise UserError(f"--modes names a mode twice ({','.join(cfg.modes)}); give each once.")
    if "dagger_mode" in overrides_from_flags(TrainConfig, cfg.train_args, "--train-args"):
        raise UserError("Give the DAgger modes with --modes, not --dagger-mode in --train-args.")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = _kept_rows(cfg, out)
    summary = summarize(rows)
    for seed in cfg.seeds:
        if any(r["seed"] == seed for r in rows):
            print(f"Seed {seed}: kept from {out / RESULTS_CSV}")
            continue
        rows += _run_seed(cfg, seed)
        summary = write_results(out, rows)
        # Written after the rows it describes: a run stopped before its first seed leaves the
        # old settings beside the old rows, never new settings beside rows they did not make.
        atomic.write_json(out / ARGS_JSON, dataclasses.asdict(cfg))
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
    same = {k: v for k, v in saved.items() if k != "seeds"} == {
        k: v for k, v in dataclasses.asdict(cfg).items() if k != "seeds"}
    if not same or not rows or "mode" not in rows[0]:
        print(f"{out / RESULTS_CSV} holds another setting's results; running every seed again.")
        return []
    return [{**r, "seed": int(r["seed"]), "expert_frames": int(r["expert_frames"]),
             "success_rate": float(r["success_rate"])} for r in rows]


def _run_seed(cfg: ExperimentConfig, seed: int) -> list[dict[str, Any]]:
    from sir.dagger.loop import LoopConfig, run_rounds
    from sir.data.collect import CollectConfig, collect
    from sir.training import TrainConfig, train

    train_extra = overrides_from_flags(TrainConfig, cfg.train_args, "--train-args")
    root, out = Path(cfg.root), Path(cfg.out)
    pool_id = f"{cfg.env.lower()}_pool_s{seed}"
    pool = collect(CollectConfig(env=cfg.env, episodes=cfg.pool_demos, root=str(root), repo_id=pool_id,
                                 seed=10_000 * seed, skip_existing=True,
                                 **({"max_steps": cfg.max_steps} if cfg.max_steps else {})))
    common = {"policy": cfg.policy, "preset": cfg.preset, "training_steps": cfg.training_steps,
              "batch_size": cfg.batch_size, "eval_freq": cfg.eval_freq, "eval_episodes": cfg.eval_episodes,
              "max_steps": cfg.max_steps}
    first, *others = cfg.modes
    rounds = run_rounds(LoopConfig(
        env=cfg.env, demos=str(root / pool_id), demo_episodes=f"0:{cfg.small_demos}", rounds=cfg.rounds,
        episodes_per_round=cfg.episodes_per_round, checkpoint_dir=str(out), run_name=f"dagger_s{seed}",
        seed=seed, overwrite=True, train_args=f"--dagger-mode {first} {cfg.train_args}",
        record_args=cfg.record_args, **common))
    rows: list[dict[str, Any]] = []
    for r in rounds.rows:
        rows.append({"seed": seed, "arm": f"dagger_round_{r['round']}" if r["round"] else "bc_small",
                     "mode": first if r["round"] else "", "expert_frames": int(r["labels_given"]),
                     "success_rate": float(r["success_rate"])})
    last = rounds.rows[-1]
    for mode in others if cfg.rounds else []:
        print(f"\n##### --dagger-mode {mode} on the data of round {cfg.rounds}")
        run = train(dataclasses.replace(
            TrainConfig(repo_ids=last["datasets"].split("+"), root=str(root), dagger_mode=mode,
                        episodes=f"{pool_id}=0:{cfg.small_demos}", checkpoint_dir=str(rounds.base_dir),
                        run_name=f"round_{cfg.rounds}_{mode}", seed=seed, overwrite=True, **common),
            **train_extra))
        rows.append({"seed": seed, "arm": f"dagger_round_{cfg.rounds}_{mode}", "mode": mode,
                     "expert_frames": int(last["labels_given"]),
                     "success_rate": float(run.best_metrics["success_rate"])})
    n_bc = episodes_for_budget(pool.episode_lengths, int(last["labels_given"]))
    bc = train(dataclasses.replace(
        TrainConfig(repo_ids=[pool_id], root=str(root), episodes=f"{pool_id}=0:{n_bc}", checkpoint_dir=str(out),
                    run_name=f"bc_s{seed}", seed=seed, overwrite=True, **common),
        **train_extra))
    rows.append({"seed": seed, "arm": "bc_equal_budget", "mode": "", "expert_frames": sum(bc.frames_per_dataset.values()),
                 "success_rate": float(bc.best_metrics["success_rate"])})
    return rows


def parse_config(argv: list[str] | None = None) -> ExperimentConfig:
    return parse(ExperimentConfig, argv, "python -m sir.dagger.experiment",
                 "Compare BC on more demos with BC on fewer demos plus DAgger corrections, at an equal number "
                 "of expert-labelled frames, over several seeds.")


@cli_errors
def main(argv: list[str] | None = None) -> Path:
    cfg = parse_config(argv)
    run_experiment(cfg)
    return Path(cfg.out)


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per arm, over seeds: mean expert-labelled frames, mean and spread of success rate."""
    import numpy as np

    arms: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        arms.setdefault(r["arm"], []).append(r)
    out = []
    for arm, rs in arms.items():
        rates = np.array([r["success_rate"] for r in rs], dtype=float)
        out.append({"arm": arm, "mode": rs[0].get("mode", ""), "seeds": len(rs), "expert_frames": round(float(np.mean([r["expert_frames"] for r in rs]))),
                    "success_mean": float(rates.mean()), "success_std": float(rates.std(ddof=1)) if len(rs) > 1 else 0.0,
                    "success_min": float(rates.min()), "success_max": float(rates.max())})
    return out


def print_summary(summary: list[dict[str, Any]]) -> None:
    print(f"\n{'arm':<40} {'seeds':>5} {'expert labels':>13} {'success (mean ± sd)':>20}")
    for s in summary:
        print(f"{s['arm']:<40} {s['seeds']:>5} {s['expert_frames']:>13} "
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
    rounds = sorted((a for a in {r["arm"] for r in rows} if re.fullmatch(r"dagger_round_\d+", a)),
                    key=lambda a: int(a.rsplit("_", 1)[1]))
    dagger = [(r["expert_frames"], r["success_rate"]) for r in rows if r["arm"] in rounds]
    if dagger:
        ax.scatter(*zip(*dagger, strict=True), marker="^", color=colours["dagger"], alpha=0.4)
    # Means over seeds: each arm's curve starts from the shared small-demo model.
    means = {s["arm"]: s for s in summary}
    start = [means["bc_small"]] if "bc_small" in means else []
    recorder = means[rounds[0]]["mode"] if rounds else ""
    curves = (("bc", "BC on more demos", start + [means[a] for a in ("bc_equal_budget",) if a in means]),
              ("dagger", f"BC on few demos + DAgger rounds ({recorder or 'default mode'})",
               start + [means[a] for a in rounds]))
    for key, label, pts in curves:
        if pts:
            ax.errorbar([p["expert_frames"] for p in pts], [p["success_mean"] for p in pts],
                        yerr=[p["success_std"] for p in pts], color=colours[key], marker="o", capsize=3,
                        label=f"{label} (mean ± sd)")
    # Further modes trained on the last round's data: the same labels, so the same x.
    others = [s for s in summary if s["arm"].startswith("dagger_round_") and s["arm"] not in rounds]
    for i, s in enumerate(others):
        ax.errorbar([s["expert_frames"] + 15 * (i + 1)], [s["success_mean"]], yerr=[s["success_std"]],
                    marker="D", capsize=3, color=f"C{4 + i}", linestyle="none", label=f"{s['mode']} (mean ± sd)")
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
