"""Checkpoints: lerobot's ``save_pretrained`` for the policy and both processor pipelines,
plus the EnvSpec and a small JSON of step, metrics and data provenance.

Every checkpoint is written to a temporary folder and renamed into place, so a run
killed at any moment leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sir.envs.spec import EnvSpec
from sir.errors import UserError

INFO_FILENAME = "sir_checkpoint.json"
ADAPTER_DIR = "adapter"
PREPROCESSOR_DIR = "preprocessor"
POSTPROCESSOR_DIR = "postprocessor"


def save_checkpoint(
    directory: str | Path,
    policy: Any,
    preprocessor: Any,
    postprocessor: Any,
    spec: EnvSpec,
    info: dict[str, Any],
    write_extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write a model folder. ``write_extra(folder)`` adds more to it before it is swapped
    in (the trainer's resumable training state)."""
    directory = Path(directory)
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    exportable(policy).save_pretrained(tmp)
    if hasattr(policy, "peft_config"):
        policy.save_pretrained(tmp / ADAPTER_DIR)
    preprocessor.save_pretrained(tmp / PREPROCESSOR_DIR)
    postprocessor.save_pretrained(tmp / POSTPROCESSOR_DIR)
    spec.save(tmp)
    (tmp / INFO_FILENAME).write_text(json.dumps(info, indent=2, default=str) + "\n")
    if write_extra is not None:
        write_extra(tmp)
    # Swap in two renames: the old checkpoint stays whole until the new one is complete.
    old = directory.parent / f".{directory.name}.old-{os.getpid()}"
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def load_checkpoint(directory: str | Path, device: str | None = None) -> tuple[Any, Any, Any, EnvSpec, dict]:
    """(policy, preprocessor, postprocessor, EnvSpec, info) from a sir checkpoint."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class
    from lerobot.processor import PolicyProcessorPipeline
    from lerobot.processor.converters import (
        batch_to_transition,
        policy_action_to_transition,
        transition_to_batch,
        transition_to_policy_action,
    )

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise UserError(f"No model at {directory} (no config.json); point --checkpoint at a best_model, "
                        "final_model or checkpoint_<step> folder.")
    spec = EnvSpec.load(directory)
    if spec is None:
        raise UserError(f"{directory} holds no {'sir_env.json'}; it was not written by sir, so pass the env with --env/--robot.")
    cfg = PreTrainedConfig.from_pretrained(directory)
    if device is not None:
        cfg.device = device
    policy = get_policy_class(cfg.type).from_pretrained(directory, config=cfg)
    # The processors sit in preprocessor/ and postprocessor/ (the layout sir's checkpoints
    # promise), so each is loaded from its folder; make_pre_post_processors reads one folder.
    overrides = {"device_processor": {"device": cfg.device}}
    preprocessor = PolicyProcessorPipeline.from_pretrained(
        directory / PREPROCESSOR_DIR, config_filename="policy_preprocessor.json", overrides=overrides,
        to_transition=batch_to_transition, to_output=transition_to_batch,
    )
    postprocessor = PolicyProcessorPipeline.from_pretrained(
        directory / POSTPROCESSOR_DIR, config_filename="policy_postprocessor.json",
        to_transition=policy_action_to_transition, to_output=transition_to_policy_action,
    )
    info_path = directory / INFO_FILENAME
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    return policy, preprocessor, postprocessor, spec, info


def exportable(policy: Any) -> Any:
    """A plain lerobot policy to save: LoRA adapters merged into a copy of the weights,
    so the saved model loads with ``from_pretrained`` and needs no peft."""
    if not hasattr(policy, "merge_and_unload"):
        return policy
    return copy.deepcopy(policy).merge_and_unload()
