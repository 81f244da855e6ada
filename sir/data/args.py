"""The command-line flags that choose and mix datasets, shared by every CLI that trains or
inspects a mixture, so that ``sir.data.verify`` checks exactly what training would use."""

from __future__ import annotations

import argparse
from typing import Any


def add_mixture_arguments(parser: argparse.ArgumentParser, require_repo_ids: bool = True) -> None:
    g = parser.add_argument_group("datasets")
    g.add_argument("--repo-ids", required=require_repo_ids,
                   help="datasets to train on, separated by commas, e.g. lift_demos,lift_dagger")
    g.add_argument("--root", default=None,
                   help="folder holding <root>/<repo_id> (default: the Hugging Face cache, downloading when online)")
    g.add_argument("--episodes", default=None,
                   help='episodes per dataset, e.g. "lift_demos=0:25,lift_dagger=all", or a YAML/JSON file')
    g.add_argument("--dataset-weights", default=None,
                   help="share of samples from each dataset, e.g. 1,2 (normalized; one per --repo-ids entry)")
    g.add_argument("--balance-datasets", action="store_true", help="draw the same share from every dataset")
    g.add_argument("--balance-episodes", action="store_true", help="make every episode equally likely")
    g.add_argument("--no-dagger-filter", action="store_true",
                   help="train on every frame of DAgger datasets, not only their successful human corrections")
    g.add_argument("--seed", type=int, default=0, help="seed of the weighted sampler (default: 0)")


def mixture_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of ``make_mixture`` from the parsed flags."""
    return {
        "repo_ids": args.repo_ids,
        "root": args.root,
        "episodes": args.episodes,
        "weights": args.dataset_weights,
        "balance_datasets": args.balance_datasets,
        "balance_episodes": args.balance_episodes,
        "dagger_filter": not args.no_dagger_filter,
        "seed": args.seed,
    }
