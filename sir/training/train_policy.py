"""Train a LeRobot policy on LeRobot datasets, evaluating it in Robosuite as it trains.

    python -m sir.training.train_policy --repo-ids lift_demos --root data --policy act

The command parses its flags (and ``--config`` files) into a ``TrainConfig`` and calls
``sir.training.train`` (or the sequential stages); everything it does is that function's.
"""

from __future__ import annotations

from pathlib import Path

from sir.errors import cli_errors
from sir.training.config import parse_config


@cli_errors
def main(argv: list[str] | None = None) -> Path | None:
    """Returns the run directory (the sequential run's base folder with --sequential)."""
    cfg, list_policies = parse_config(argv)
    if list_policies:
        from sir.policies import policy_table

        print(policy_table())
        return None
    if cfg.sequential:
        from sir.training.sequential import run_sequential

        return run_sequential(cfg).base_dir
    from sir.training.trainer import train

    return train(cfg).run_dir


if __name__ == "__main__":
    main()
