"""``--push-to-hub REPO``: the run's model folder on the Hugging Face Hub when training ends.

The best model is pushed (the final one when the run had no evaluation), with the model
card lerobot's ``push_model_to_hub`` writes (``generate_model_card``). Whether the push can
happen is checked when the run starts (``sir.hub.check_push``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sir.errors import UserError
from sir.hub import push_folder
from sir.training.run_folder import RunFolder


def publish(run: RunFolder, has_best: bool, repo_id: str, policy: Any, dataset_ids: list[str]) -> str:
    """Push the run's best model (its final one when it had no evaluation); the line to print."""
    folder = run.best_model if has_best else run.final_model
    return f"Pushed {folder} to {repo_id}: {push_model(folder, repo_id, policy, dataset_ids)}"


def model_card(policy: Any, dataset_ids: list[str]) -> str | None:
    """lerobot's card (its template; tags robotics, lerobot and the policy type; license;
    datasets), or None when the hub refuses it (``generate_model_card`` validates online)."""
    cfg = policy.config
    try:
        datasets = [name.partition("@")[0] for name in dataset_ids]
        return str(policy.generate_model_card(datasets, cfg.type, getattr(cfg, "license", None),
                                              getattr(cfg, "tags", None)))
    except Exception:  # a card is a courtesy: the model goes up without one
        return None


def push_model(folder: Path, repo_id: str, policy: Any, dataset_ids: list[str]) -> str:
    """Upload ``folder`` (a model folder of ``policy``) to ``repo_id``; the commit's URL. A
    failure says, in one sentence, that the folder is kept and how to upload it by hand."""
    try:
        return push_folder(folder, repo_id, model_card(policy, dataset_ids),
                           private=bool(getattr(policy.config, "private", False)))
    except Exception as err:  # the network, the hub or the token: the model stays on disk
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"Training finished but pushing {folder} to {repo_id} failed ({reason}); upload it later "
                        f"with `hf upload {repo_id} {folder}`.") from err
