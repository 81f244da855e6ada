"""Is B better than A? Models scored on the same episodes, compared episode by episode.

    python -m sir.eval.compare --checkpoint bc=checkpoints/bc/best_model --checkpoint dagger=checkpoints/dg/best_model
    python -m sir.eval.compare --results bc=runs/bc/eval/best_model/eval_results.json --checkpoint ...
    python -m sir.eval.compare --arm bc=runs/bc_s0,runs/bc_s1,runs/bc_s2 --arm dagger=runs/dg_s0,runs/dg_s1,runs/dg_s2

Each model not yet scored is evaluated (``sir.eval.evaluate``) on the comparison's episodes;
an ``eval_results.json`` already holding them is used as it is. The statistics are in
``sir.eval.paired``; the table and plot in ``sir.eval.comparison_report``.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sir import atomic, seeds
from sir.config import option, parse, validate
from sir.errors import UserError, cli_errors
from sir.eval.model_env import ModelEnvConfig

DEFAULT_EPISODES = 50
# The seed of episode 0 when neither --eval-seed nor a --results file says: the test range,
# on which nothing is chosen (sir.seeds).
DEFAULT_SEED = seeds.TEST.start
COMPARISON_JSON = "comparison.json"
COMPARISON_PNG = "comparison.png"
BEST_MODEL = "best_model"  # a run folder's chosen model (sir.training.run_folder, a layer above)

HELP = """Is B better than A? Compares models' success rates on the same episodes. The paired test applies when \
the models were scored on the same seeds (sir's fixed seeds: episode i starts from the state of seed+i, whatever the \
model), in the same env, with the same step limit: their outcomes then pair up episode by episode (McNemar's exact \
test on the episodes only one of them solves; rate B - A with Newcombe's paired interval). It does not apply to \
results scored on different seeds or in different envs, which met different episodes: those are refused here; \
compare their Wilson intervals only (python -m sir.eval.evaluate prints them). Models not yet scored are evaluated \
on the comparison's seeds. --arm compares several runs a side (one per training seed), paired by position: the \
per-seed differences, their mean with a t-interval, and a sign count. With more than two models (or arms), \
p-values are Holm-adjusted. Writes comparison.json and comparison.png to --output-dir."""


@dataclass
class CompareConfig(ModelEnvConfig):
    checkpoint: list[str] = option([], "a model folder (or a run folder: its best_model) to evaluate; repeat for "
                                   "each model", repeat=True, metavar="[NAME=]FOLDER")
    results: list[str] = option([], "an eval_results.json of python -m sir.eval.evaluate, used without evaluating "
                                "again; repeat for each", repeat=True, metavar="[NAME=]FILE")
    arm: list[str] = option([], "several runs of one recipe (one per training seed), each a run folder, model "
                            "folder or eval_results.json; arms are paired run by run, in order; repeat for each arm",
                            repeat=True, metavar="NAME=RUN,RUN,...")
    episodes: int | None = option(None, f"episodes every model is compared on (default: those the --results files "
                                  f"hold, else {DEFAULT_EPISODES})", minimum=1)
    eval_seed: int | None = option(None, f"seed of episode 0; episode i uses seed+i (default: the --results files', "
                                   f"else {DEFAULT_SEED})")
    max_steps: int | None = option(None, "step limit per episode (default: the --results files', else the EnvSpec's "
                                   "horizon)", minimum=1)
    output_dir: str | None = option(None, "where comparison.json, comparison.png and the new evaluations go "
                                    "(default: comparisons/<names>)")
    workers: int | None = option(None, "env worker processes (default: one per core; 1: none)", minimum=1)
    device: str | None = option(None, "cuda, mps or cpu (default: the best available)")


@dataclass
class Model:
    """One model of the comparison: a folder to evaluate or a file already scored."""

    name: str
    path: Path
    kind: str  # "checkpoint" or "results"
    record: dict[str, Any] | None = None  # what its eval_results.json holds, once read or evaluated
    file: Path | None = None  # that eval_results.json
    evaluated: bool = False

    def outcomes(self, seeds: list[int]) -> list[bool]:
        by_seed = {int(e["seed"]): bool(e["success"]) for e in self.record["per_episode"]}
        return [by_seed[s] for s in seeds]

    def summary(self, seeds: list[int]) -> dict[str, Any]:
        record = self.record or {}
        return {"path": str(self.path), "source": self.kind, "evaluated_now": self.evaluated,
                "checkpoint": record.get("checkpoint"), "model_step": record.get("model_step"),
                "eval_results": str(self.file), "max_steps": record.get("max_steps"),
                "env": _env(record), "outcomes": [int(o) for o in self.outcomes(seeds)]}


def parse_config(argv: list[str] | None = None) -> CompareConfig:
    return parse(CompareConfig, argv, "python -m sir.eval.compare", HELP)


def compare(cfg: CompareConfig) -> dict[str, Any]:
    """Score every model on the same episodes (evaluating those not yet scored), compare them
    pair by pair, print the table and write comparison.json and comparison.png; returns what
    comparison.json holds."""
    from sir.eval import comparison_report, paired
    from sir.runtime import sir_commit

    validate(cfg)
    models = _named([_model(text, "--checkpoint") for text in cfg.checkpoint]
                    + [_model(text, "--results") for text in cfg.results])
    arms = _arms(cfg.arm, models)
    everyone = models + [m for members in arms.values() for m in members]
    seed, episodes = _episodes(cfg, [m for m in everyone if m.record is not None])
    seeds = list(range(seed, seed + episodes))
    max_steps = _pairable(everyone, seeds, cfg.max_steps, cfg.env)

    out = Path(cfg.output_dir) if cfg.output_dir else Path("comparisons") / _folder_name(everyone, arms)
    out.mkdir(parents=True, exist_ok=True)
    for model in everyone:
        if model.record is None:
            model.record = _evaluate(model, cfg, seed, episodes, max_steps, out)
    max_steps = _pairable(everyone, seeds, cfg.max_steps, cfg.env)

    stats = paired.compare_all({m.name: m.outcomes(seeds) for m in models},
                               {name: [m.outcomes(seeds) for m in members] for name, members in arms.items()})
    for name, model in zip(stats["models"], models, strict=True):
        stats["models"][name].update(model.summary(seeds))
    for name, members in arms.items():
        for run, model in zip(stats["arms"][name]["runs"], members, strict=True):
            run.update(model.summary(seeds))
    comparison = {
        "eval_seed": seed, "episodes": episodes, "seeds": seeds, "max_steps": max_steps,
        "env": _env(everyone[0].record), "alpha": paired.ALPHA,
        "difference_interval": "Newcombe's square-and-add interval for paired proportions (1998, method 10)",
        "arm_interval": "Student's t-interval of the mean per-seed difference",
        **stats, "sir": sir_commit(),
    }
    atomic.write_json(out / COMPARISON_JSON, comparison)
    comparison_report.plot(out / COMPARISON_PNG, comparison)
    print(comparison_report.markdown(comparison))
    print(f"\nComparison: {out / COMPARISON_JSON}, {out / COMPARISON_PNG}")
    return comparison


# -- the models -----------------------------------------------------------------------------


def _split_name(text: str) -> tuple[str | None, str]:
    """``NAME=path`` → (NAME, path); a bare path → (None, path)."""
    name, sep, path = text.partition("=")
    if sep and name and "/" not in name:
        return name.strip(), path.strip()
    return None, text.strip()


def _model(text: str, flag: str, name: str | None = None) -> Model:
    """The model ``text`` names: a model folder, a run folder (its best_model) or an
    eval_results.json (or a folder holding one, for --results)."""
    from sir.eval.evaluate import EVAL_RESULTS

    given, path_text = _split_name(text)
    path = Path(path_text)
    if not path.exists():
        raise UserError(f"{flag} {text}: {path} does not exist.")
    if path.is_file() or (flag == "--results" and (path / EVAL_RESULTS).is_file()):
        file = path if path.is_file() else path / EVAL_RESULTS
        return Model(given or name or "", file, "results", _read_results(file), file)
    if flag == "--results":
        raise UserError(f"--results {text}: {path} is a folder without {EVAL_RESULTS}; give the eval_results.json "
                        "python -m sir.eval.evaluate wrote.")
    if not (path / "config.json").is_file() and (path / BEST_MODEL / "config.json").is_file():
        path = path / BEST_MODEL
    if not (path / "config.json").is_file():
        raise UserError(f"{flag} {text}: {path} holds no config.json, so it is neither a model folder nor a run "
                        f"folder with a {BEST_MODEL}.")
    return Model(given or name or "", path, "checkpoint")


def _arms(texts: list[str], models: list[Model]) -> dict[str, list[Model]]:
    """The --arm flags' arms, by name; refused unless two models or two arms are compared,
    names are distinct, and every arm holds as many runs."""
    arms = dict(_arm(text) for text in texts)
    if len(models) < 2 and len(arms) < 2:
        raise UserError("Give at least two models (--checkpoint, --results) or two arms (--arm) to compare.")
    shared = sorted(set(arms) & {m.name for m in models})
    if shared or len(arms) < len(texts):
        raise UserError(f"Two arms, or an arm and a model, are named {(shared or ['alike'])[0]}; give each a name "
                        "of its own.")
    if len({len(members) for members in arms.values()}) > 1:
        raise UserError(f"The arms hold {' and '.join(str(len(m)) for m in arms.values())} runs; runs are paired "
                        "by position (training seed), so every arm needs as many.")
    return arms


def _arm(text: str) -> tuple[str, list[Model]]:
    name, members = _split_name(text)
    items = [m.strip() for m in members.split(",") if m.strip()]
    if not name or not items:
        raise UserError(f"--arm {text} is not NAME=RUN,RUN,...; name the arm and list its runs.")
    return name, [_model(item, "--arm", f"{name}[{i}]") for i, item in enumerate(items)]


def _named(models: list[Model]) -> list[Model]:
    """Models without a NAME= take the shortest end of their path (the checkpoint's, for a
    results file) that tells them apart; two of one name are refused."""
    unnamed = [m for m in models if not m.name]
    paths = [Path(m.record.get("checkpoint") or m.path.parent) if m.record else m.path for m in unnamed]
    for depth in range(1, max((len(p.parts) for p in paths), default=0) + 1):
        names = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(names)) == len(names):
            break
    for model, path in zip(unnamed, paths, strict=True):
        model.name = "/".join(path.parts[-depth:])
    seen: set[str] = set()
    for model in models:
        if model.name in seen:
            raise UserError(f"Two models are named {model.name}; give each a name of its own (--checkpoint "
                            "NAME=FOLDER, --results NAME=FILE).")
        seen.add(model.name)
    return models


def _read_results(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path} cannot be read as JSON ({err}); give an eval_results.json of sir.eval.evaluate.") \
            from err
    episodes = record.get("per_episode") if isinstance(record, dict) else None
    if not isinstance(episodes, list) or not episodes or not all(isinstance(e, dict) and "seed" in e and "success" in e
                                                 for e in episodes):
        raise UserError(f"{path} holds no per-episode seeds and outcomes (per_episode); give an eval_results.json "
                        "written by python -m sir.eval.evaluate.")
    if len({int(e["seed"]) for e in episodes}) < len(episodes):
        raise UserError(f"{path} holds several episodes of one seed (an evaluation of several tasks); give one "
                        "task's eval_results.json.")
    return record


def _seeds(record: dict[str, Any]) -> list[int]:
    return sorted(int(e["seed"]) for e in record["per_episode"])


def _env(record: dict[str, Any] | None) -> str | None:
    tasks = {e.get("task") for e in (record or {}).get("per_episode", [])} - {None}
    return ",".join(sorted(tasks)) or None


def _checkpoint_env(folder: Path) -> str | None:
    from sir.envs.spec import EnvSpec

    spec = EnvSpec.load(folder)
    return spec.env_name if spec is not None else None


# -- the episodes ---------------------------------------------------------------------------


def _episodes(cfg: CompareConfig, scored: list[Model]) -> tuple[int, int]:
    """(seed of episode 0, episodes): as given, else as the --results files hold (which
    must agree), else the defaults."""
    firsts = {m.name: _seeds(m.record)[0] for m in scored if m.record["per_episode"]}
    counts = {m.name: len(m.record["per_episode"]) for m in scored}
    if cfg.eval_seed is None and len(set(firsts.values())) > 1:
        (a, sa), (b, sb) = _two_different(firsts)
        raise UserError(f"{a} was scored from seed {sa} and {b} from seed {sb}: files scored on different seeds "
                        "met different episodes and cannot be paired; evaluate them on the same --eval-seed, or "
                        "give their model folders with --checkpoint.")
    if cfg.episodes is None and len(set(counts.values())) > 1:
        (a, na), (b, nb) = _two_different(counts)
        raise UserError(f"{a} holds {na} episodes and {b} {nb}; pass --episodes {min(na, nb)} to compare the "
                        "episodes they share.")
    seed = cfg.eval_seed if cfg.eval_seed is not None else next(iter(firsts.values()), DEFAULT_SEED)
    episodes = cfg.episodes if cfg.episodes is not None else next(iter(counts.values()), DEFAULT_EPISODES)
    return seed, episodes


def _pairable(models: list[Model], seeds: list[int], max_steps: int | None, env: str | None) -> int | None:
    """The step limit every model is scored with (``max_steps`` when given). Models scored on
    other seeds, step limits or envs are refused: their episodes are not the same ones.
    ``env`` (--env) is the env of a model folder saved without sir's EnvSpec."""
    for model in models:
        if model.record is not None:
            _check_holds(model, seeds)
    _same({m.name: _env(m.record) if m.record else _checkpoint_env(m.path) or env for m in models}, "env")
    return _same({m.name: (m.record or {}).get("max_steps") for m in models}, "max_steps", max_steps, "--max-steps")


def _check_holds(model: Model, seeds: list[int]) -> None:
    have = set(_seeds(model.record))
    if not set(seeds) <= have:
        span = f"{min(have)}-{max(have)}" if have else "none"
        raise UserError(f"{model.name} ({model.path}) was scored on seeds {span}, not on all of this comparison's "
                        f"{seeds[0]}-{seeds[-1]}: files scored on different seeds met different episodes and cannot "
                        "be paired; evaluate it on these seeds, or give its model folder with --checkpoint.")


def _same(values: dict[str, Any], key: str, given: Any = None, flag: str = "") -> Any:
    """The one ``key`` (max_steps, env) that every model that says has, and ``given`` when
    given; models of different ones met different episodes and are refused."""
    known = {name: v for name, v in values.items() if v is not None}
    why = "met different episodes and cannot be paired; compare their Wilson intervals instead."
    if given is not None:
        other = next(((name, v) for name, v in known.items() if v != given), None)
        if other is not None:
            raise UserError(f"{flag} {given} was given but {other[0]} was scored with {key} {other[1]}: episodes "
                            f"of another {key} {why}")
        return given
    if len(set(known.values())) > 1:
        (a, va), (b, vb) = _two_different(known)
        raise UserError(f"{a} was scored with {key} {va} and {b} with {key} {vb}: models of different {key} {why}")
    return next(iter(known.values()), None)


def _two_different(values: dict[str, Any]) -> tuple[tuple[str, Any], tuple[str, Any]]:
    first = next(iter(values.items()))
    return first, next((k, v) for k, v in values.items() if v != first[1])


def _evaluate(model: Model, cfg: CompareConfig, seed: int, episodes: int, max_steps: int | None,
              out: Path) -> dict[str, Any]:
    # Through the module, so that a test can see whether any model was evaluated.
    from sir.eval import evaluate as evaluation

    folder = out / "eval" / re.sub(r"[^\w.-]+", "_", model.name)
    record = evaluation.evaluate(evaluation.EvalConfig(
        checkpoint=str(model.path), env=cfg.env, robot=cfg.robot, cameras=cfg.cameras, image_size=cfg.image_size,
        episodes=episodes, eval_seed=seed, max_steps=max_steps, output_dir=str(folder), workers=cfg.workers,
        device=cfg.device))
    model.evaluated, model.file = True, folder / evaluation.EVAL_RESULTS
    return record


def _folder_name(models: list[Model], arms: dict[str, list[Model]]) -> str:
    names = [m.name for m in models if not any(m in members for members in arms.values())] + list(arms)
    name = re.sub(r"[^\w.-]+", "-", "_vs_".join(names)).strip("-")
    return name if len(name) <= 80 else time.strftime("%Y%m%d-%H%M%S")


@cli_errors
def main(argv: list[str] | None = None) -> dict[str, Any]:
    return compare(parse_config(argv))


if __name__ == "__main__":
    main()
