"""Process-wide choices every command makes the same way: the torch device, seeding, and
keeping library chatter off the console; and the sir commit that is running, for the records
results carry."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from sir.errors import UserError


def pick_device(requested: str | None) -> str:
    """The requested device, refused in one sentence when absent (lerobot's own check
    asserts); otherwise lerobot's automatic choice (cuda, mps, xpu, cpu)."""
    import torch
    from lerobot.utils.utils import auto_select_torch_device

    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("--device cuda was asked for but no CUDA GPU is visible; use --device cpu.")
        if requested == "mps" and not torch.backends.mps.is_available():
            raise UserError("--device mps was asked for but MPS is not available; use --device cpu.")
        if requested.split(":")[0] not in {"cuda", "mps", "cpu", "xpu"}:
            raise UserError(f"--device {requested} is not a torch device; use cuda, mps or cpu.")
        return requested
    return auto_select_torch_device().type


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch (every device) seeded through lerobot's own helper."""
    from lerobot.utils.random_utils import set_seed

    set_seed(seed)


def quiet_libraries() -> None:
    # lerobot warns at import that no GPU is present and that configs switch device; sir
    # prints the device it uses in the header instead.
    logging.getLogger().setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*Converting input from bool.*")


def sir_commit(repo: Path | None = None) -> dict[str, Any] | None:
    """The git commit of the sir checkout that is running, and whether its code had changes.

    ``dirty`` counts tracked files outside ``docs/``: the results sir writes there (summaries,
    pages, plots) are its outputs, and a run that writes them into its own checkout has not
    changed the code that made them."""
    import subprocess

    here = repo or Path(__file__).resolve().parent
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=here, capture_output=True, text=True,
                             check=True).stdout.strip()
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=top, capture_output=True, text=True, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)docs"],
                                cwd=top, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None  # not a git checkout (an installed wheel)
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
