"""Resumable training state inside a checkpoint_<step> folder: lerobot's own
``training_state/`` (optimizer, scheduler, step, RNG) plus sir's run state (best score,
wandb run id)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sir.errors import UserError

TRAINING_STATE_DIR = "training_state"  # lerobot's name, written by its save_training_state
RUN_STATE_FILENAME = "sir_run_state.json"


def save_training_state(folder: Path, step: int, optimizer: Any, scheduler: Any, run_state: dict[str, Any]) -> None:
    from lerobot.utils.train_utils import save_training_state as lerobot_save

    lerobot_save(folder, step, optimizer, scheduler)
    (folder / TRAINING_STATE_DIR / RUN_STATE_FILENAME).write_text(json.dumps(run_state, indent=2, default=str) + "\n")


def load_training_state(directory: str | Path, optimizer: Any, scheduler: Any) -> tuple[int, dict[str, Any]]:
    """Restore optimizer, scheduler and RNG states; return (step, sir's run state)."""
    from lerobot.utils.train_utils import load_training_state as lerobot_load

    directory = Path(directory)
    if not (directory / TRAINING_STATE_DIR).is_dir():
        raise UserError(f"--resume {directory} holds no {TRAINING_STATE_DIR}/; resume from a checkpoint_<step> folder "
                        "(best_model and final_model keep weights only).")
    step, _, _ = lerobot_load(directory, optimizer, scheduler)
    run_state_path = directory / TRAINING_STATE_DIR / RUN_STATE_FILENAME
    run_state = json.loads(run_state_path.read_text()) if run_state_path.is_file() else {}
    return step, run_state
