"""Shared fixtures. Every dataset a test uses is made here or in the test: nothing comes
from a hub (HF_HUB_OFFLINE is set), and wandb runs offline."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def lift_demos(tmp_path_factory):
    """(root, repo_id) of 6 scripted Lift demos, state only, recorded by sir.data.collect."""
    from sir.data.collect import main as collect

    root = tmp_path_factory.mktemp("datasets")
    collect(["--env", "Lift", "--episodes", "6", "--root", str(root), "--repo-id", "lift_demos", "--seed", "0"])
    return root, "lift_demos"
