"""Whether datasets can be trained on together, and which features the mixture keeps.

A policy reads every ``observation.*`` feature and the action (lerobot's
``dataset_to_policy_features`` turns exactly those into policy inputs and outputs), so each
of them must exist in every dataset with the same shape; otherwise the mixture refuses, naming
the dataset and the feature, rather than dropping an input silently. Other features
(rewards, DAgger labels, extras) present in only some datasets are dropped with a warning.
The frame rate must match, since windows are counted in frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sir.data.labels import LABEL_COLUMNS
from sir.envs.spec import EnvSpec
from sir.errors import UserError


def is_policy_feature(key: str, feature: dict) -> bool:
    return feature["dtype"] in ("image", "video") or key.startswith("observation") or key.startswith("action")


def _shape(feature: dict) -> tuple[int, ...]:
    return tuple(int(d) for d in feature["shape"])


def _kind(feature: dict) -> str:
    # An image stored as PNG and one stored as video decode to the same tensor.
    return "visual" if feature["dtype"] in ("image", "video") else feature["dtype"]


@dataclass
class FeaturePlan:
    features: dict[str, dict]  # kept, in the first dataset's order
    disabled: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def plan_features(repo_ids: list[str], features: list[dict[str, dict]], fps: list[int]) -> FeaturePlan:
    first = repo_ids[0]
    for repo_id, rate in zip(repo_ids[1:], fps[1:], strict=True):
        if rate != fps[0]:
            raise UserError(
                f"Dataset '{repo_id}' records at {rate} fps but '{first}' at {fps[0]} fps; "
                f"datasets trained on together must share one frame rate."
            )
    every_key = list(dict.fromkeys(k for f in features for k in f))
    kept: dict[str, dict] = {}
    disabled: list[str] = []
    reasons: dict[str, str] = {}
    for key in every_key:
        having = [(r, f[key]) for r, f in zip(repo_ids, features, strict=True) if key in f]
        missing = [r for r, f in zip(repo_ids, features, strict=True) if key not in f]
        owner, ref = having[0]
        policy = is_policy_feature(key, ref)
        if missing and policy:
            raise UserError(
                f"Dataset '{missing[0]}' lacks the policy input '{key}' that '{owner}' has; "
                f"every dataset must provide the same observation and action features."
            )
        mismatch = next(((r, f) for r, f in having[1:] if _shape(f) != _shape(ref) or _kind(f) != _kind(ref)), None)
        if mismatch is not None and policy:
            r, f = mismatch
            raise UserError(
                f"Feature '{key}' is {_kind(f)} of shape {_shape(f)} in '{r}' but {_kind(ref)} of shape "
                f"{_shape(ref)} in '{owner}'; datasets trained on together must agree on it."
            )
        if missing:
            disabled.append(key)
            reasons[key] = f"missing from {', '.join(repr(m) for m in missing)}"
        elif mismatch is not None:
            disabled.append(key)
            reasons[key] = f"differs between '{owner}' and '{mismatch[0]}'"
        else:
            kept[key] = dict(ref)
    warnings = []
    labels = [k for k in disabled if k in LABEL_COLUMNS]
    others = [k for k in disabled if k not in LABEL_COLUMNS]
    if others:
        warnings.append(
            "dropping features not shared by every dataset: "
            + "; ".join(f"'{k}' ({reasons[k]})" for k in others)
        )
    notes = []
    if labels:
        notes.append(f"DAgger labels ({', '.join(labels)}) are left out of samples, as not every dataset has them")
    return FeaturePlan(kept, disabled, warnings, notes)


def env_spec_differences(repo_ids: list[str], specs: list[EnvSpec | None]) -> list[str]:
    """One line per dataset whose EnvSpec differs from the first dataset's."""
    lines = []
    ref_id, ref = repo_ids[0], specs[0]
    ref_dict: dict[str, Any] | None = ref.to_dict() if ref is not None else None
    for repo_id, spec in zip(repo_ids[1:], specs[1:], strict=True):
        if spec is None and ref is None:
            continue
        if spec is None or ref_dict is None:
            has, lacks = (ref_id, repo_id) if spec is None else (repo_id, ref_id)
            lines.append(f"'{has}' carries an EnvSpec (meta/sir_env.json) but '{lacks}' does not")
            continue
        other = spec.to_dict()
        fields = [k for k in ref_dict if ref_dict[k] != other.get(k)]
        if fields:
            detail = ", ".join(f"{k}: {ref_dict[k]!r} vs {other.get(k)!r}" for k in fields)
            lines.append(f"EnvSpec of '{repo_id}' differs from '{ref_id}' ({detail})")
    return lines
