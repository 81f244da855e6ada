"""Resumable training state inside a checkpoint_<step> folder: lerobot's own
``training_state/`` (optimizer, scheduler, step, and the python, numpy and torch RNGs)
plus sir's run state (best score, wandb run id, and the place in the data: pass and batch).
The RNGs are restored when the state is loaded; nothing the trainer sets up afterwards draws
from them (the DataLoader has its own generator), so the resumed run's first step draws what
the saved run's next step drew.

Together they make a resumed run continue exactly where the saved one was (see the
resume section of ``README.md`` for what is bit-identical and what is not)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sir.errors import UserError

TRAINING_STATE_DIR = "training_state"  # lerobot's name, written by its save_training_state
RUN_STATE_FILENAME = "sir_run_state.json"
DATA_KEY = "data"  # run state entry: the data position and what it depends on


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
    run_state_path = directory / TRAINING_STATE_DIR / RUN_STATE_FILENAME
    try:
        step, _, _ = lerobot_load(directory, optimizer, scheduler)
        run_state = json.loads(run_state_path.read_text()) if run_state_path.is_file() else {}
    except Exception as err:  # a truncated or hand-edited file: bad JSON, short safetensors, missing keys
        raise UserError(f"--resume {directory}: its {TRAINING_STATE_DIR}/ is damaged ({type(err).__name__}: "
                        f"{str(err).strip().splitlines()[0] if str(err).strip() else 'unreadable'}); resume from "
                        "another checkpoint_<step> folder.") from err
    return step, run_state


def data_record(position: dict[str, int], batch_size: int, processes: int, seed: int) -> dict[str, Any]:
    """The run state entry for the data position: the stream's pass and batch, and the
    settings that decide which samples those are."""
    return {**position, "batch_size": batch_size, "processes": processes, "seed": seed}


def data_position(run_state: dict[str, Any], batch_size: int, processes: int, seed: int,
                  say: Callable[[str], Any] = print) -> tuple[int, int]:
    """(pass, batch) where a resumed run's data continues: the saved place when the
    settings that decide the batches are the same, else the start of the next pass."""
    saved = run_state.get(DATA_KEY)
    if not saved:
        say("note: this checkpoint does not record its place in the data (written by an older sir); "
            "training draws the data again from pass 0, so it will not repeat the interrupted run exactly.")
        return 0, 0
    now = {"batch_size": batch_size, "processes": processes, "seed": seed}
    changed = [f"{k.replace('_', ' ')} {saved.get(k)} -> {v}" for k, v in now.items() if saved.get(k) != v]
    if changed:
        say(f"note: {', '.join(changed)} since the checkpoint; its place in the data means other batches now, "
            "so training continues from the start of the next pass.")
        return int(saved["pass"]) + 1, 0
    return int(saved["pass"]), int(saved["batch"])
