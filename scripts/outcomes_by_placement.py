"""Success by where the object starts: the per-episode outcomes that sir's summaries keep
(``test_outcomes`` of a sir.results summary, ``outcomes`` of a file of several models), grouped by
the object's initial position along one axis, which each episode's seed fixes (sir.envs.reset_env).

    python scripts/outcomes_by_placement.py --task PickPlaceCan --object Can --axis y \\
        docs/results/validation/recipe_models_on_validation.json docs/results/validation/PickPlaceCan_*.json

Reads the summaries, resets the task's env once per episode seed (no policy runs), and prints each
bin's episodes and success rate over all the models given, then per model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sir.errors import UserError, cli_errors

AXES = {"x": 0, "y": 1, "z": 2}


def model_outcomes(path: Path, task: str) -> list[tuple[str, int, str]]:
    """(name, seed of episode 0, outcomes as "1"/"0" per episode) for each of ``task``'s models in
    a summary: a sir.results summary (its runs, scored from its test_seed) or a file of models
    (``models``, each with its task and outcomes, scored from the file's eval_seed)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is not a readable JSON summary ({err}); pass sir.results summaries.") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a summary (a JSON object); pass sir.results summaries.")
    if "runs" in data:
        if data.get("task") != task:
            return []
        if any("test_outcomes" not in r for r in data["runs"]):
            raise UserError(f"{path} keeps no per-episode outcomes (test_outcomes), as summaries before issue 32 "
                            "do; pass a summary written since.")
        return [(f"{path} seed {r['seed']}", data["test_seed"], r["test_outcomes"]) for r in data["runs"]]
    if "models" in data:
        return [(f"{path} {m['task']} seed {m['training_seed']}", data["eval_seed"], m["outcomes"])
                for m in data["models"] if m["task"] == task]
    raise UserError(f"{path} has neither runs (a sir.results summary) nor models; pass summaries that keep "
                    "per-episode outcomes.")


def initial_positions(task: str, obj: str, axis: int, seeds: list[int]) -> dict[int, float]:
    from sir.envs.factory import make_env, reset_env
    from sir.envs.spec import default_spec

    env = make_env(default_spec(task))
    try:
        out = {}
        for seed in seeds:
            obs = reset_env(env, seed)
            if f"{obj}_pos" not in obs:
                found = sorted(k[:-4] for k in obs if k.endswith("_pos") and "_to_" not in k and not k.startswith("robot"))
                raise UserError(f"{task} has no object {obj!r}; pass --object as one of {', '.join(found)}.")
            out[seed] = float(obs[f"{obj}_pos"][axis])
        return out
    finally:
        env.close()


def by_bins(models: list[tuple[str, int, str]], position: dict[int, float], bins: int) -> list[dict[str, Any]]:
    """Equal-width bins over the positions seen; each bin's episodes and success over the models."""
    low, high = min(position.values()), max(position.values())
    width = (high - low) / bins or 1.0
    rows = [{"from": low + i * width, "to": low + (i + 1) * width, "episodes": set(), "per_model": {}}
            for i in range(bins)]
    for name, first, outcomes in models:
        for i, outcome in enumerate(outcomes):
            b = min(int((position[first + i] - low) / width), bins - 1)
            rows[b]["episodes"].add(first + i)
            ok, n = rows[b]["per_model"].get(name, (0, 0))
            rows[b]["per_model"][name] = (ok + (outcome == "1"), n + 1)
    for row in rows:
        ok = sum(s for s, _ in row["per_model"].values())
        n = sum(n for _, n in row["per_model"].values())
        row["success"] = ok / n if n else None
        row["episodes"] = len(row["episodes"])
    return rows


@cli_errors
def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("summaries", nargs="+", help="summary files with per-episode outcomes")
    p.add_argument("--task", required=True, help="the task whose models are read (e.g. PickPlaceCan)")
    p.add_argument("--object", required=True, help="the object whose initial position groups the episodes "
                   "(robosuite's observation <object>_pos, e.g. Can)")
    p.add_argument("--axis", choices=sorted(AXES), default="y", help="axis of the position (default: y)")
    p.add_argument("--bins", type=int, default=4, help="equal-width bins over the positions seen (default: 4)")
    args = p.parse_args(argv)
    if args.bins < 1:
        raise UserError(f"--bins must be at least 1, not {args.bins}.")
    models = []
    for name in args.summaries:
        path = Path(name)
        if not path.is_file():
            raise UserError(f"{path} does not exist; pass sir.results summaries (docs/results/...json).")
        models += model_outcomes(path, args.task)
    if not models:
        raise UserError(f"None of the summaries holds a {args.task} model; check --task.")
    if len({name for name, _, _ in models}) < len(models):
        raise UserError("A summary was given twice; pass each once.")
    seeds = sorted({first + i for _, first, outcomes in models for i in range(len(outcomes))})
    rows = by_bins(models, initial_positions(args.task, args.object, AXES[args.axis], seeds), args.bins)
    print(f"{args.task}: success by the {args.object}'s initial {args.axis}, {len(models)} models, "
          f"{len(seeds)} episode seeds")
    for row in rows:
        if row["success"] is None:
            continue
        per = ", ".join(f"{100 * ok / n:.0f}" for ok, n in row["per_model"].values())
        print(f"  {args.axis} {row['from']:+.3f} to {row['to']:+.3f}: {row['episodes']} episodes, "
              f"{100 * row['success']:.0f}% over the models (per model: {per})")
    print("  models: " + "; ".join(name for name, _, _ in models))
    return rows


if __name__ == "__main__":
    main()
