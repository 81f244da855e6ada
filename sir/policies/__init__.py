"""The policy registry: lerobot policies chosen by name, with presets and validation."""

from sir.policies.registry import POLICIES, PRESETS, build_config, get_entry

__all__ = ["POLICIES", "PRESETS", "build_config", "get_entry"]
