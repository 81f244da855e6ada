"""The ``--list-policies`` table: every policy, what it needs, its presets, and whether
this machine can build it now (packages installed, hub files cached, nothing to download)."""

from __future__ import annotations

from dataclasses import dataclass

from sir.policies import availability
from sir.policies.registry import POLICIES, PolicyEntry


@dataclass(frozen=True)
class Status:
    buildable: bool
    note: str


def policy_status(entry: PolicyEntry) -> Status:
    """Whether ``entry`` can be built here now, and if not, the first thing missing."""
    if entry.unsupported:
        return Status(False, entry.unsupported.note)
    missing = availability.missing_packages(entry.packages)
    if missing:
        return Status(False, f"missing package(s) {', '.join(missing)}")
    repos = ([entry.base_model] if entry.base_model else []) + [a.repo_id for a in entry.hub_assets]
    absent = [r for r in dict.fromkeys(repos) if not availability.hub_repo_available(r)]
    if absent:
        return Status(False, f"not in HF cache: {', '.join(absent)} (or give --pretrained-path)")
    if entry.imagenet_presets and not availability.torchvision_weights_available():
        presets = "/".join(entry.imagenet_presets)
        return Status(True, f"yes; {presets} preset with cameras needs ImageNet resnet18 weights (missing)")
    return Status(True, "yes")


def policy_table() -> str:
    """A plain-text table of every registered policy, for ``--list-policies``."""
    rows = [("policy", "needs", "presets", "buildable here now")]
    for entry in POLICIES.values():
        status = policy_status(entry)
        rows.append((entry.name, ", ".join(entry.needs()) or "-", "/".join(entry.presets), status.note))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = []
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
        if i == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * len(row[3]))
    lines.append("")
    lines.append("Presets: tiny (tests), cpu (small models for 2 CPU cores; see docs/policies.md for step times), "
                 "default (lerobot's own sizes).")
    lines.append("Nothing is downloaded: hub weights and tokenizers must already be in the Hugging Face cache "
                 f"({availability.hf_cache_dir()}) or given with --pretrained-path.")
    return "\n".join(lines)
