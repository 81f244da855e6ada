"""How well a held-out validation loss ranks a run's checkpoints against their success rates
(issue 32, part 4: ``--val-episodes``'s ``val/loss`` chooses best_model under ``--no-eval``).

    python -m sir.data.collect --env Stack --episodes 20 --seed 5000 --root valrank_data --repo-id stack_val
    (the same for PickPlaceCan and Lift: pickplacecan_val, lift_val)
    OMP_NUM_THREADS=1 python benchmarks/val_loss_ranks.py --root valrank_data \\
        --held-out stack_val,pickplacecan_val,lift_val --runs results/runs/Stack_s0 results/runs/Stack_s1 ... \\
        --out docs/results/val_loss_ranks.json

For every ``checkpoint_<step>/`` of every run folder:

- its validation loss on the held-out dataset whose EnvSpec is the run's (one of
  ``--held-out``, under ``--root``), computed by sir's own ``ValidationLoss`` exactly as
  training logs ``val/loss``: the run's data settings (``make_split_mixtures``' validation
  mixture: the run's DAgger mode, no shares), the checkpoint's own processors, the run's batch
  size, the same samples and the same seeded draws;
- its success rate from the run's ``metrics.jsonl`` (``eval/success_rate`` at that step: the
  evaluation during training, on the choosing seeds), and where best_model's selection
  evaluated it again, its confirming score (``best_model/sir_checkpoint.json``).

It prints a table per run and Spearman's rho between loss and success (``scipy.stats.spearmanr``;
rho < 0 means lower loss, higher success, i.e. the loss ranks well), per run and pooled over the
runs of a task, and writes them all to ``--out`` as JSON.

**Pooling.** Runs differ in their loss level, so the pool compares ranks within runs: each
run's checkpoints are ranked by loss and by success within the run (ties averaged), the runs'
ranks are put together, and the pooled rho is ``spearmanr`` of those. A run whose success is the
same at every checkpoint (Lift: 100% throughout) ranks nothing: its rho is undefined, said as
such, and it is left out of the pool.

**p-values are exact permutation p-values**, two-sided, under the null that within each run the
order of the losses is unrelated to success: every ordering of each run's losses (5! = 120 for a
run of five checkpoints, 120^3 orderings for a pool of three such runs). scipy's own p for
``spearmanr`` is a t approximation that is far off at five points (rho = 0.9 gives it 0.037;
exactly, 10 of the 120 orderings reach |rho| >= 0.9, p = 0.083): with five checkpoints a run
only |rho| = 1 reaches p < 0.05 (2/120 = 0.017).

**The held-out data are new demos of the same expert, not episodes held out of training.**
The results runs trained on every recorded demo (``--val-episodes`` not given), so nothing of
their data is unseen. New demos recorded by ``sir.data.collect`` with the same expert, the same
recording noise and the same step limit, from initial states of seeds no run trained on (in
``sir.seeds.DEMOS``, above the training data's), are draws from the same distribution as the
episodes ``--val-episodes`` would have held out: those are the last episodes of the same kind of
recording, equally a seeded initial state each, kept when the expert succeeds. What differs is
only that the checkpoints here trained on all 200 demos instead of 200 minus the held-out ones,
which changes the models compared, not how the loss ranks them. The run's normalization stats
never saw the held-out data in either case. (Two small differences, neither of which touches
the distribution: the expert's noise generator is seeded by the recording's first seed, so the
noise draws are other draws of the same noise; and a seed whose episode the expert fails is
skipped in both.) The loss is the imitation loss on the expert's own states; success is
measured on the states the policy visits itself, which is exactly what this measures.

A held-out dataset that is one the run trained on is accepted only for episodes the run did not
train on (``--episodes``, e.g. ``lift_demos=4:6``: what ``--val-episodes 2`` holds out of 6);
another one is refused when its seeds overlap the training data's (``meta/sir_info.json``'s
``first_seed`` and its episode count: the fewest seeds that recording used).
Run it with one torch thread (``OMP_NUM_THREADS=1``): a checkpoint costs a few forward passes.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections import Counter
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np

EXACT_UP_TO = 8  # checkpoints a run: 8! = 40320 orderings; more are sampled
SAMPLED = 100_000
LAYOUT = ("env_name", "robots", "controller", "state_keys", "env_state_keys", "cameras", "image_size")


# ---- rank correlation ---------------------------------------------------------------------


def rank_correlation(losses: list[list[float]], successes: list[list[float]]) -> dict[str, Any]:
    """Spearman's rho between loss and success over one run (one list each) or pooled over
    several (ranks within each run), with its exact two-sided permutation p (orderings of the
    losses within each run). ``rho`` is None, with a ``note``, where it is undefined: a run
    whose success (or loss) is the same at every checkpoint is left out of the pool."""
    from scipy.stats import rankdata, spearmanr

    kept = [(np.asarray(lo, float), np.asarray(s, float)) for lo, s in zip(losses, successes, strict=True)
            if len(set(s)) > 1 and len(set(lo)) > 1]
    left_out = len(losses) - len(kept)
    points = sum(len(lo) for lo, _ in kept)
    if not kept or points < 3:
        constant = [sorted(set(s)) for s in successes if len(set(s)) == 1]
        reason = (f"undefined: success is {', '.join(f'{100 * c[0]:.0f}%' for c in constant)} at every checkpoint"
                  if constant else "undefined: fewer than 3 checkpoints, or a constant loss")
        return {"rho": None, "p": None, "checkpoints": points, "runs": 0, "runs_left_out": left_out,
                "note": reason + " (no ranking to compare)"}
    # Within-run ranks, then ranked together: one run's are its plain Spearman ranks.
    x = rankdata(np.concatenate([rankdata(lo) for lo, _ in kept]))
    y = rankdata(np.concatenate([rankdata(s) for _, s in kept]))
    rho = float(spearmanr(x, y).statistic)
    sizes = [len(lo) for lo, _ in kept]
    groups = np.split(np.arange(points), np.cumsum(sizes)[:-1])
    p, method = _permutation_p([x[g] for g in groups], [y[g] for g in groups], rho)
    result = {"rho": rho, "p": p, "p_method": method, "checkpoints": points, "runs": len(kept),
              "runs_left_out": left_out}
    if left_out:
        result["note"] = f"{left_out} run(s) with the same success at every checkpoint left out"
    return result


def _permutation_p(xs: list[np.ndarray], ys: list[np.ndarray], observed: float) -> tuple[float, str]:
    """P(|rho| >= |observed|) over the orderings of each group's x. Within-group orderings keep
    the pooled x's mean and spread, so rho is affine in S = sum over groups of x_g . y_g, whose
    distribution is each group's convolved (ranks are multiples of 1/2: 4 S is an integer)."""
    x, y = np.concatenate(xs), np.concatenate(ys)
    n = len(x)
    scale = n * x.std() * y.std()

    def rho_of(s: np.ndarray) -> np.ndarray:
        return (s - n * x.mean() * y.mean()) / scale

    threshold = abs(observed) - 1e-9
    if max(len(g) for g in xs) > EXACT_UP_TO:
        rng = np.random.default_rng(0)
        s = sum(np.einsum("ij,j->i", np.array([rng.permutation(g) for _ in range(SAMPLED)]), h)
                for g, h in zip(xs, ys, strict=True))
        return float((np.abs(rho_of(s)) >= threshold).mean()), f"{SAMPLED} sampled within-run orderings"
    dist: Counter[int] = Counter({0: 1})
    for g, h in zip(xs, ys, strict=True):
        values = Counter(round(4 * float(np.dot(perm, h))) for perm in itertools.permutations(g))
        dist = _convolve(dist, values)
    sums = np.array(list(dist.keys()), float) / 4
    counts = np.array(list(dist.values()), float)
    return float(counts[np.abs(rho_of(sums)) >= threshold].sum() / counts.sum()), "exact"


def _convolve(a: Counter[int], b: Counter[int]) -> Counter[int]:
    out: Counter[int] = Counter()
    for (va, ca), (vb, cb) in itertools.product(a.items(), b.items()):
        out[va + vb] += ca * cb
    return out


# ---- a run's checkpoints, scores and losses -------------------------------------------------


def checkpoint_steps(run: Path) -> list[int]:
    return sorted(int(p.name.split("_", 1)[1]) for p in run.glob("checkpoint_*")
                  if p.name.split("_", 1)[1].isdigit() and (p / "config.json").is_file())


def success_by_step(run: Path) -> dict[int, float]:
    """``eval/success_rate`` at each evaluated step of ``metrics.jsonl`` (the last, if a
    resumed run logged a step twice)."""
    rates = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line) if line.strip() else {}
        if "eval/success_rate" in record:
            rates[int(record["step"])] = float(record["eval/success_rate"])
    return rates


def confirmations(run: Path) -> tuple[dict[int, float], int | None, int | None]:
    """(confirming success rate by step, its episodes, best_model's step) from best_model's record."""
    path = run / "best_model" / "sir_checkpoint.json"
    if not path.is_file():
        return {}, None, None
    info = json.loads(path.read_text())
    selection = info.get("selection") or {}
    rates = {int(c["step"]): float(c["confirmation"]["success_rate"])
             for c in selection.get("candidates", []) if c.get("confirmation")}
    episodes = (selection.get("confirmation") or {}).get("episodes")
    return rates, episodes, info.get("step")


def data_config(saved: dict[str, Any], repo_id: str, root: str, episodes: dict[str, Any] | None) -> Any:
    """The run's data settings on the held-out dataset, as ``make_split_mixtures`` builds its
    validation mixture: every selected episode read in order, no shares or balancing."""
    from sir.data.mixture.config import DataConfig

    cfg = DataConfig(**{f.name: saved[f.name] for f in fields(DataConfig) if f.name in saved})
    return replace(cfg, repo_ids=[repo_id], root=root, episodes=episodes, dataset_weights=None,
                   balance_datasets=False, balance_episodes=False)


def held_out_for(spec: Any, candidates: dict[str, Any]) -> str:
    """The held-out dataset whose observation layout is the run's."""
    layout = {k: spec.to_dict()[k] for k in LAYOUT}
    fits = [r for r, s in candidates.items() if s is not None and {k: s.to_dict()[k] for k in LAYOUT} == layout]
    if len(fits) != 1:
        have = ", ".join(f"{r} ({s.env_name if s else 'no EnvSpec'})" for r, s in candidates.items())
        raise SystemExit(f"{'No' if not fits else 'More than one'} held-out dataset has the {spec.env_name} run's "
                         f"observation layout (of {have}).")
    return fits[0]


def check_unseen(saved: dict[str, Any], resolved: Any, episodes: list[int], run: Path) -> dict[str, Any]:
    """Refuse held-out episodes the run trained on (the same dataset) or whose seeds overlap
    its data's; says what is known of the held-out seeds."""
    from sir import seeds

    first = _first_seed(resolved.root)
    note = {"first_seed": first, "seed_role": seeds.role_of(first) if first is not None else None}
    for data in saved.get("_resolved", {}).get("datasets", []):
        if Path(data["root"]).resolve() == resolved.root.resolve():
            trained = sorted(set(episodes) & set(data["episodes"]))
            if trained:
                raise SystemExit(f"{run.name} trained on episodes {trained[:5]} of {resolved.repo_id}: hold out "
                                 "others with --episodes, or record new demos.")
            continue
        theirs = _first_seed(Path(data["root"]))
        if first is not None and theirs is not None and seeds.overlap(
                (first, len(episodes)), (theirs, int(data["total_episodes"]))):
            raise SystemExit(f"The seeds of {resolved.repo_id} ({first} on) overlap those of {data['repo_id']}, "
                             f"which {run.name} trained on ({theirs} on, {data['total_episodes']} episodes).")
        note.setdefault("training_data", []).append(
            {"repo_id": data["repo_id"], "first_seed": theirs, "episodes": int(data["total_episodes"])})
    return note


def _first_seed(root: Path) -> int | None:
    path = Path(root) / "meta" / "sir_info.json"
    return json.loads(path.read_text()).get("first_seed") if path.is_file() else None


def run_losses(run: Path, repo_id: str, root: str, episodes: dict[str, Any] | None) -> dict[str, Any]:
    """Every checkpoint's validation loss on the held-out data, with its scores."""
    from sir.data import make_mixture
    from sir.policies.checkpoint import load_checkpoint
    from sir.training.validation import ValidationLoss

    saved = json.loads((run / "train_config.json").read_text())
    steps = checkpoint_steps(run)
    if not steps:
        raise SystemExit(f"{run} holds no checkpoint_<step> folders.")
    mixture = make_mixture(data_config(saved, repo_id, root, episodes), verbose=False)
    seeds = check_unseen(saved, mixture.infos[0], mixture.infos[0].used_episodes, run)
    rates = success_by_step(run)
    confirmed, confirm_episodes, best_step = confirmations(run)
    rows, fitted, began = [], False, time.perf_counter()
    for step in steps:
        policy, preprocessor, _, _, _ = load_checkpoint(run / f"checkpoint_{step}", device="cpu")
        if not fitted:  # the run's checkpoints share one config: its windows, fitted once
            mixture.fit_policy(policy.config)
            validation, fitted = ValidationLoss(mixture, int(saved["batch_size"])), True
        rows.append({"step": step, "val_loss": validation(policy, preprocessor), "success_rate": rates.get(step),
                     "confirmation": confirmed.get(step)})
    scored = [r for r in rows if r["success_rate"] is not None]
    info = mixture.infos[0]
    return {
        "run": run.name, "path": str(run), "task": saved.get("_resolved", {}).get("env_spec", {}).get("env_name"),
        "training_seed": saved.get("seed"),
        "held_out": {"repo_id": repo_id, "episodes": len(info.used_episodes), "frames": info.frames,
                     "samples": validation.samples, **seeds},
        "batch_size": int(saved["batch_size"]), "eval_episodes": saved.get("eval_episodes"),
        "confirm_episodes": confirm_episodes, "best_model_step": best_step, "checkpoints": rows,
        "unscored_steps": [r["step"] for r in rows if r["success_rate"] is None],
        "lowest_loss_step": min(rows, key=lambda r: r["val_loss"])["step"],  # what --no-eval would keep
        "loss_falls_with_step": all(a["val_loss"] > b["val_loss"] for a, b in itertools.pairwise(rows)),
        "correlation": rank_correlation([[r["val_loss"] for r in scored]], [[r["success_rate"] for r in scored]]),
        "loss_s": time.perf_counter() - began,
    }


# ---- report ----------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _rho(c: dict[str, Any]) -> str:
    if c["rho"] is None:
        return c["note"]
    return f"rho {c['rho']:+.2f}, p {c['p']:.2g} ({c['p_method']}, {c['checkpoints']} checkpoints)"


def print_run(r: dict[str, Any]) -> None:
    h = r["held_out"]
    print(f"\n{r['run']} ({r['task']}, training seed {r['training_seed']}; held out: {h['repo_id']}, "
          f"{h['episodes']} episodes from seed {h['first_seed']}, {h['samples']} samples; loss in {r['loss_s']:.0f} s)")
    print(f"| step | val loss | success ({r['eval_episodes']} ep.) | confirming ({r['confirm_episodes']} ep.) |")
    print("| ---: | ---: | ---: | ---: |")
    for c in r["checkpoints"]:
        best = " (best_model)" if c["step"] == r["best_model_step"] else ""
        print(f"| {c['step']}{best} | {c['val_loss']:.4f} | {_pct(c['success_rate'])} | {_pct(c['confirmation'])} |")
    print(f"Spearman between val loss and success: {_rho(r['correlation'])}"
          + ("; the val loss falls at every checkpoint" if r["loss_falls_with_step"] else ""))
    print(f"Lowest val loss (what --no-eval keeps): step {r['lowest_loss_step']}; "
          f"best_model: step {r['best_model_step']}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", required=True, help="run folders (checkpoint_<step>/, metrics.jsonl)")
    p.add_argument("--root", required=True, help="folder holding the held-out datasets")
    p.add_argument("--held-out", required=True, help="held-out datasets under --root, comma-separated; each run "
                   "uses the one with its observation layout")
    p.add_argument("--episodes", default=None, help="episodes of the held-out datasets, as --episodes of "
                   "train_policy (e.g. lift_demos=4:6; default: all)")
    p.add_argument("--out", default=None, help="JSON file to write (default: none)")
    args = p.parse_args(argv)
    from sir.data.mixture.episodes import parse_episode_spec
    from sir.data.resolve import parse_repo_ids, resolve_dataset
    from sir.envs.spec import EnvSpec

    began = time.perf_counter()
    candidates = {r: EnvSpec.load(resolve_dataset(r, args.root).root) for r in parse_repo_ids(args.held_out)}
    selection = parse_episode_spec(args.episodes, list(candidates))
    runs = []
    for folder in map(Path, args.runs):
        spec = EnvSpec.load(folder / f"checkpoint_{checkpoint_steps(folder)[0]}") if checkpoint_steps(folder) else None
        if spec is None:
            raise SystemExit(f"{folder} holds no sir checkpoint_<step> folder with its EnvSpec.")
        repo_id = held_out_for(spec, candidates)
        chosen = {repo_id: selection[repo_id]} if repo_id in selection else None
        runs.append(run_losses(folder, repo_id, args.root, chosen))
        print_run(runs[-1])
    pooled = {}
    for task in dict.fromkeys(r["task"] for r in runs):
        mine = [r for r in runs if r["task"] == task]
        scored = [[c for c in r["checkpoints"] if c["success_rate"] is not None] for r in mine]
        pooled[task] = {"run_names": [r["run"] for r in mine], **rank_correlation(
            [[c["val_loss"] for c in s] for s in scored], [[c["success_rate"] for c in s] for s in scored])}
    print("\n| task | rho per run (p) | pooled rho (ranks within run) | pooled p |")
    print("| --- | --- | ---: | ---: |")
    for task, c in pooled.items():
        per_run = ", ".join(f"{r['run']} {r['correlation']['rho']:+.2f} (p {r['correlation']['p']:.2g})"
                            if r["correlation"]["rho"] is not None else f"{r['run']} undefined"
                            for r in runs if r["task"] == task)
        shown = ("-", "-") if c["rho"] is None else (f"{c['rho']:+.2f}", f"{c['p']:.2g}")
        print(f"| {task} | {per_run} | {shown[0]} | {shown[1]} |" + (f" {c['note']}" if c.get("note") else ""))
    result = {"command": "OMP_NUM_THREADS=1 python benchmarks/val_loss_ranks.py " + " ".join(argv or sys.argv[1:]),
              "runs": runs, "pooled": pooled, "wall_s": time.perf_counter() - began}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return result


if __name__ == "__main__":
    main()
