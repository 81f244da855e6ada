"""The policy registry: lerobot policies chosen by name, with presets and validation."""

from sir.policies.build import build_config
from sir.policies.checks import check_data_needs, validate_config
from sir.policies.registry import POLICIES, PRESETS, HubAsset, PolicyEntry, get_entry
from sir.policies.table import policy_status, policy_table

__all__ = [
    "POLICIES",
    "PRESETS",
    "HubAsset",
    "PolicyEntry",
    "build_config",
    "check_data_needs",
    "get_entry",
    "policy_status",
    "policy_table",
    "validate_config",
]
