"""Check a dataset mixture before training on it.

    python -m sir.data.verify --repo-ids lift_demos,lift_dagger --root data \\
        [--dataset-weights 1,2] [--episodes "lift_demos=0:25"] [--num-samples 1000]

Builds the mixture exactly as training would, then prints a table per dataset (episodes
and frames total and used, fps, DAgger label counts), the features kept and dropped, the
aggregated normalization statistics, and the realized share of each dataset and of each
class of sample (demo, policy, pre-intervention, intervention; see ``--dagger-mode``) among
samples drawn through the training sampler, next to the intended share. Any incompatibility
(missing dataset, fps or feature mismatch, bad weights, no successful corrections, an empty
episode selection) ends with one sentence and exit code 2.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from sir.config import option, parse
from sir.data.mixture.config import DataConfig
from sir.errors import UserError, cli_errors


@dataclass
class VerifyConfig(DataConfig):
    """The mixture to check (the trainer's dataset settings) and how hard to look at it."""

    num_samples: int = option(1000, "samples to draw through the sampler", minimum=1)
    batch_size: int = option(8, "size of the one batch loaded as a check", minimum=1)


def parse_config(argv: list[str] | None = None) -> VerifyConfig:
    cfg = parse(VerifyConfig, argv, "python -m sir.data.verify",
                "Check that datasets can be trained on together and show how they will be mixed.")
    if not cfg.repo_ids:
        raise UserError("--repo-ids is required (comma-separated dataset names).")
    return cfg


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join("  " + line for line in lines)


def _vec(values: np.ndarray) -> str:
    return np.array2string(np.asarray(values).reshape(-1), precision=3, suppress_small=True, max_line_width=10_000)


def draw(mix, num_samples: int, seed: int) -> np.ndarray:
    """Sample indices drawn the way the trainer's DataLoader draws them."""
    from sir.data.mixture.sampling import make_dataloader

    sampler = make_dataloader(mix, batch_size=1, seed=seed).sampler
    drawn: list[int] = []
    while len(drawn) < num_samples:
        drawn.extend(itertools.islice(iter(sampler), num_samples - len(drawn)))
    return np.asarray(drawn, dtype=np.int64)


def class_rows(mix, drawn: np.ndarray) -> list[list[str]]:
    """Per class of sample: how many the mixture has, the share its --dagger-mode's source
    gives it over the pooled mixture (where the mode sets one), its intended share (under the
    sampler) and its realized share among ``drawn``."""
    from sir.data.mixture.weights import CLASS_NAMES

    every = mix.class_of(np.arange(len(mix)))
    probs = np.full(len(mix), 1 / len(mix)) if mix.sampler is None else mix.sampler.probabilities()
    counts = np.bincount(every, minlength=len(CLASS_NAMES))
    rule = mix.class_shares()
    intended = np.bincount(every, weights=probs, minlength=len(CLASS_NAMES))
    realized = np.bincount(mix.class_of(drawn), minlength=len(CLASS_NAMES)) / len(drawn)
    return [[name, str(n), "-" if rule is None else f"{100 * r:.1f}%", f"{100 * q:.1f}%", f"{100 * p:.1f}%",
             f"{100 * (p - q):+.1f}"]
            for name, n, r, q, p in zip(CLASS_NAMES, counts, rule if rule is not None else counts, intended, realized,
                                        strict=True)]


def label_summary(info) -> str:
    """A DAgger dataset's labels as a person's log would sum them up."""
    if info.dagger_mode is None:
        return "not a DAgger dataset"
    if info.dagger is None:
        return f"every frame ({info.dagger_mode})"
    d = info.dagger
    frames = d["policy_frames"] + d["human_frames"]
    outcomes = ("outcomes not recorded" if info.labels is not None and info.labels.success is None else
                f"{d['successful_episodes']}/{d['episodes']} episodes successful "
                f"({d.get('autonomous_successes', 0)} without help)")
    return (f"policy {d['policy_frames']} / human {d['human_frames']} frames (intervention ratio "
            f"{d['human_frames'] / max(frames, 1):.2f}), {d.get('takeovers', 0) / max(d['episodes'], 1):.2f} takeovers "
            f"per episode, {outcomes}; {info.dagger_mode}")


def report(mix, num_samples: int, batch_size: int, seed: int) -> None:
    print(f"\nDatasets ({len(mix.repo_ids)}, {mix.fps} fps):")
    rows = []
    for i, info in enumerate(mix.infos):
        labels = label_summary(info)
        rows.append([str(i), info.repo_id, f"{len(info.used_episodes)}/{info.total_episodes}",
                     f"{info.frames}/{info.total_frames}", str(info.fps), labels, info.revision or "local"])
    print(_table(rows, ["#", "repo_id", "episodes used/total", "frames used/total", "fps", "DAgger labels",
                        "revision"]))
    print(f"  root: {', '.join(str(i.root) for i in mix.infos)}")
    for info in mix.infos:
        if info.labels is not None and not info.labels.is_sirs:
            print(f"  labels of {info.repo_id}: {info.labels.describe()}")

    print("\nFeatures served:")
    print(_table([[k, f["dtype"], str(tuple(f["shape"]))] for k, f in mix.features.items()],
                 ["feature", "dtype", "shape"]))
    if mix.disabled_features:
        print(f"  dropped (not in every dataset): {', '.join(mix.disabled_features)}")
    specs = {i.repo_id: i.env_spec for i in mix.infos}
    for repo_id, spec in specs.items():
        print(f"  EnvSpec of {repo_id}: "
              + (f"{spec.env_name}, robots {spec.robots}, cameras {spec.cameras or 'none'}" if spec
                 else "none (meta/sir_env.json missing)"))

    print(f"\nNormalization statistics over the {mix.num_frames} used frames:")
    for key, stats in mix.stats.items():
        if not (key.startswith("observation") or key.startswith("action")):
            continue
        print(f"  {key}")
        for name in ("mean", "std", "min", "max", "q01", "q99"):
            if name in stats:
                print(f"    {name:<5} {_vec(stats[name])}")

    drawn = draw(mix, num_samples, seed)
    realized = np.bincount(mix.dataset_of(drawn), minlength=len(mix.repo_ids)) / len(drawn)
    how = "shuffle over frames" if mix.sampler is None else type(mix.sampler).__name__
    print(f"\nSampling: {len(drawn)} indices drawn through the training sampler ({how}):")
    rows = [[r, f"{100 * q:.1f}%", f"{100 * p:.1f}%", f"{100 * (p - q):+.1f}"]
            for r, q, p in zip(mix.repo_ids, mix.requested_shares, realized, strict=True)]
    print(_table(rows, ["dataset", "requested", "realized", "difference (points)"]))
    per_episode = np.unique(mix.episode_of(drawn), return_counts=True)[1]
    print(f"  episodes drawn: {len(per_episode)} of the {mix.num_episodes} used, "
          f"{per_episode.min()} to {per_episode.max()} samples each")
    print("\nClasses of samples (source's rule: the pooled share the mode's source gives; intended: the "
          "probability under the sampler; see --dagger-mode):")
    print(_table(class_rows(mix, drawn), ["class", "samples", "source's rule", "intended", "realized",
                                          "difference (points)"]))

    from sir.data.mixture.sampling import make_dataloader

    loader = make_dataloader(mix, batch_size=min(batch_size, len(mix)))
    batch = next(iter(loader))
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in batch.items() if hasattr(v, "shape"))
    print(f"\nOne batch loaded through the training DataLoader: {shapes}")


@cli_errors
def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(argv)
    from sir.data.mixture import make_mixture

    mix = make_mixture(cfg)
    if len(mix) == 0:
        raise UserError("The mixture has no frames to train on.")
    report(mix, cfg.num_samples, cfg.batch_size, cfg.seed)
    print("\nOK: the datasets can be trained on together.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
