"""Starting from a saved model: its config, its normalization stats merged with the new
data's, and LoRA adapters (peft) for large policies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sir.errors import UserError


def load_base_config(policy_path: str | Path, policy: str | None) -> Any:
    """The saved model's lerobot config; refuses a folder that holds no model."""
    from sir.policies.checkpoint import check_weights, read_config

    path = Path(policy_path)
    if not (path / "config.json").is_file():
        raise UserError(f"--policy-path {path} holds no model (no config.json); point it at a best_model, "
                        "final_model or checkpoint_<step> folder.")
    cfg = read_config(path)
    check_weights(path)
    if policy is not None and policy != cfg.type:
        raise UserError(f"--policy-path {path} holds a '{cfg.type}' policy but --policy is '{policy}'; "
                        f"drop --policy or pass --policy {cfg.type}.")
    return cfg


def check_features_match(cfg: Any, features: dict[str, Any], policy_path: str | Path) -> None:
    """The new data must feed the saved model the inputs and actions it was built for."""
    for key, ft in {**cfg.input_features, **cfg.output_features}.items():
        if key not in features:
            raise UserError(f"The model at {policy_path} takes '{key}', which the datasets do not have.")
        if tuple(features[key].shape) != tuple(ft.shape):
            raise UserError(f"The model at {policy_path} takes '{key}' of shape {tuple(ft.shape)} but the datasets "
                            f"give {tuple(features[key].shape)}.")


def saved_stats(policy_path: str | Path) -> dict[str, dict[str, np.ndarray]] | None:
    """The normalization stats inside a saved preprocessor: in the model folder (lerobot's
    layout, sir's since) or in its preprocessor/ subfolder (sir's earlier layout)."""
    from lerobot.processor import PolicyProcessorPipeline

    from sir.policies.checkpoint import (
        LEGACY_PREPROCESSOR_DIR,
        PREPROCESSOR_CONFIG,
        check_processor_files,
    )

    path = Path(policy_path)
    folder = path / LEGACY_PREPROCESSOR_DIR if (path / LEGACY_PREPROCESSOR_DIR).is_dir() else path
    if not (folder / PREPROCESSOR_CONFIG).is_file():
        return None
    check_processor_files(path)
    pipeline = PolicyProcessorPipeline.from_pretrained(folder, config_filename=PREPROCESSOR_CONFIG)
    for step in pipeline.steps:
        stats = getattr(step, "stats", None)
        if stats:
            return {k: {s: np.asarray(v.cpu() if hasattr(v, "cpu") else v) for s, v in d.items()}
                    for k, d in stats.items()}
    return None


def merge_stats(old: dict[str, dict[str, np.ndarray]] | None,
                new: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """Stats of the old training data and the new pooled by lerobot's
    ``aggregate_feature_stats``, so fine-tuning does not re-normalize the old task away.

    Means and variances pool exactly (count-weighted; equal weights when a side has no
    count), min/max are global. Quantiles cannot be pooled from summaries, so they are the
    count-weighted average of both sides: an approximation, and only QUANTILE-mode
    normalizers read them.
    """
    from lerobot.datasets.compute_stats import aggregate_feature_stats

    if not old:
        return new
    merged: dict[str, dict[str, np.ndarray]] = {}
    for key, cur in new.items():
        prev = old.get(key)
        if (prev is None or not {"mean", "std"} <= set(prev) or not {"mean", "std"} <= set(cur)
                or np.size(prev["mean"]) != np.size(cur["mean"])):
            merged[key] = cur
            continue
        counted = "count" in prev and "count" in cur
        sides = []
        for side in (prev, cur):
            # lerobot's normalizer keeps shape-(1,) stats as scalars; bring them back to the data's shape.
            s = {k: np.asarray(v, float).reshape(np.shape(cur[k])) for k, v in side.items()
                 if k in cur and k != "count" and np.size(v) == np.size(cur[k])}
            s.setdefault("min", s["mean"])
            s.setdefault("max", s["mean"])
            s["count"] = np.asarray(side["count"]).ravel()[:1] if counted else np.ones(1)
            sides.append(s)
        out = {**cur, **aggregate_feature_stats(sides)}
        out["count"] = np.array([sum(int(np.asarray(side.get("count", [0])).ravel()[0]) for side in (prev, cur))])
        merged[key] = out
    return merged


def wrap_with_lora(policy: Any, rank: int, alpha: int | None, dropout: float) -> Any:
    """LoRA adapters on every linear layer through lerobot's own peft wrapper."""
    if not policy.config.pretrained_path:
        # lerobot refuses LoRA from scratch too: adapters on random weights learn little.
        raise UserError("--lora-rank trains adapters on a pretrained model; pass --policy-path as well.")
    return policy.wrap_with_peft(peft_cli_overrides={
        "method_type": "lora", "r": rank, "lora_alpha": alpha or 2 * rank, "lora_dropout": dropout,
        "target_modules": "all-linear",
    })
