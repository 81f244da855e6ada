"""Checkpoints in lerobot's own layout, so lerobot's loaders read them as they are: the
policy's ``save_pretrained`` (config.json, model.safetensors) and both processor pipelines'
(policy_preprocessor.json, policy_postprocessor.json and their state files) in one folder,
beside sir's EnvSpec (sir_env.json) and a small JSON of step, metrics and data provenance
(sir_checkpoint.json). Folders written before this layout, with the pipelines in
preprocessor/ and postprocessor/ subfolders, still load.

Every checkpoint is built in a temporary folder and swapped into place atomically, so at
every instant the named folder holds either the old checkpoint or the new one, whole.
"""

from __future__ import annotations

import copy
import ctypes
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sir import atomic
from sir.envs.spec import EnvSpec
from sir.errors import UserError

INFO_FILENAME = "sir_checkpoint.json"
ADAPTER_DIR = "adapter"
PREPROCESSOR_CONFIG = "policy_preprocessor.json"  # lerobot's names for the pipelines' configs
POSTPROCESSOR_CONFIG = "policy_postprocessor.json"
LEGACY_PREPROCESSOR_DIR = "preprocessor"  # sir's layout before lerobot's
LEGACY_POSTPROCESSOR_DIR = "postprocessor"


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
    tmp = atomic.temporary_path(directory)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    exportable(policy).save_pretrained(tmp)
    if hasattr(policy, "peft_config"):
        policy.save_pretrained(tmp / ADAPTER_DIR)
    preprocessor.save_pretrained(tmp, config_filename=PREPROCESSOR_CONFIG)
    postprocessor.save_pretrained(tmp, config_filename=POSTPROCESSOR_CONFIG)
    spec.save(tmp)
    write_info(tmp, info)
    if write_extra is not None:
        write_extra(tmp)
    make_readable(tmp)
    swap_into_place(tmp, directory)
    return directory


def install_model(source: Path, directory: str | Path, copy: bool = False, **info: Any) -> Path:
    """Move (or ``copy``) the model folder ``source`` to ``directory``, swapped in as
    ``save_checkpoint`` swaps, its sir_checkpoint.json updated with ``info``: a trainer's
    snapshot, evaluated in the background, becomes its best_model without being written
    again."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temporary_path(directory)
    shutil.rmtree(tmp, ignore_errors=True)
    if copy:
        shutil.copytree(source, tmp)
    else:
        Path(source).rename(tmp)
    write_info(tmp, {**(read_info(tmp) or {}), **info})
    swap_into_place(tmp, directory)
    return directory


def info_path(folder: str | Path) -> Path:
    """A model folder's record of what made it: step, metrics, datasets, weights, and how
    a best_model was chosen."""
    return Path(folder) / INFO_FILENAME


def read_info(folder: str | Path) -> dict[str, Any] | None:
    """The record of a model folder; None when it has none (a model lerobot trained).
    A damaged record raises ``ValueError``."""
    path = info_path(folder)
    return json.loads(path.read_text()) if path.is_file() else None


def write_info(folder: str | Path, info: dict[str, Any]) -> None:
    atomic.write_json(info_path(folder), info)


def make_readable(folder: Path) -> None:
    """Give every file the mode an ordinary file gets (0644 under the usual umask):
    safetensors writes model.safetensors 0600, unreadable to the group that shares a run."""
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(0o666 & ~umask)


def swap_into_place(tmp: Path, directory: Path) -> None:
    """Move the complete folder ``tmp`` to ``directory``. An existing folder is exchanged
    with it in one step (Linux's renameat2), so a kill at any instant leaves ``directory``
    old or new, never missing; the old one, now at ``tmp``, is then removed (or, after a
    kill, by the next run as a leftover)."""
    if not directory.exists():
        tmp.rename(directory)
        return
    if exchange(tmp, directory):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    # No atomic exchange here (another OS, or a filesystem without RENAME_EXCHANGE): two
    # renames, the old checkpoint set aside whole until the new one is in. A kill between
    # them leaves no folder at ``directory``, only the old one at its .old- name.
    old = atomic.temporary_path(directory, "old")
    directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with renameat2(RENAME_EXCHANGE); False where the system
    cannot (no such call in the C library, or refused by the kernel or filesystem)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def load_checkpoint(directory: str | Path, device: str | None = None,
                    spec: EnvSpec | None = None) -> tuple[Any, Any, Any, EnvSpec, dict]:
    """(policy, preprocessor, postprocessor, EnvSpec, info) from a sir or lerobot model
    folder, the processors loaded by lerobot's own ``make_pre_post_processors``. ``spec``
    stands in for a folder saved without sir's EnvSpec (a model lerobot trained)."""
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors
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
    spec = EnvSpec.load(directory) or spec
    if spec is None:
        raise UserError(f"{directory} holds no sir_env.json (it was not trained by sir); name its env with "
                        "--env (and --robot, --cameras).")
    cfg = read_config(directory)
    if device is not None:
        cfg.device = device
    check_weights(directory)
    policy = get_policy_class(cfg.type).from_pretrained(directory, config=cfg)
    overrides = {"device_processor": {"device": cfg.device}}
    check_processor_files(directory)
    if (directory / PREPROCESSOR_CONFIG).is_file():
        preprocessor, postprocessor = make_pre_post_processors(
            cfg, pretrained_path=str(directory), preprocessor_overrides=overrides)
    elif (directory / LEGACY_PREPROCESSOR_DIR / PREPROCESSOR_CONFIG).is_file():
        # make_pre_post_processors reads both pipelines from one folder; these sit in two.
        preprocessor = PolicyProcessorPipeline.from_pretrained(
            directory / LEGACY_PREPROCESSOR_DIR, config_filename=PREPROCESSOR_CONFIG, overrides=overrides,
            to_transition=batch_to_transition, to_output=transition_to_batch,
        )
        postprocessor = PolicyProcessorPipeline.from_pretrained(
            directory / LEGACY_POSTPROCESSOR_DIR, config_filename=POSTPROCESSOR_CONFIG,
            to_transition=policy_action_to_transition, to_output=transition_to_policy_action,
        )
    else:
        raise UserError(f"{directory} holds no {PREPROCESSOR_CONFIG} (its normalization and processors); "
                        "it is incomplete: point --checkpoint at a whole model folder.")
    return policy, preprocessor, postprocessor, spec, read_info(directory) or {}


def read_config(source: Path | str) -> Any:
    """The lerobot config of a model folder (or of a hub id in the local cache), refused in
    one sentence when damaged. A config saved by a newer lerobot loads when the keys the
    installed one lacks leave the model as saved (``sir.policies.newer_lerobot``): they are
    dropped, with one line naming them."""
    from lerobot.configs.policies import PreTrainedConfig

    from sir.policies import newer_lerobot

    path = config_file(source)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path} cannot be read as a lerobot policy config ({_first_line(err)}); restore the model "
                        "folder from a copy or train it again.") from err
    readable, dropped = newer_lerobot.readable_config(raw, path)
    try:
        if not dropped:
            cfg = PreTrainedConfig.from_pretrained(path.parent)
        else:
            # lerobot's own decoder, on the config without the newer keys.
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "config.json").write_text(json.dumps(readable))
                cfg = PreTrainedConfig.from_pretrained(tmp)
    except Exception as err:  # bad JSON, unknown policy type, fields of another lerobot version
        raise UserError(f"{path} cannot be read as a lerobot policy config ({_first_line(err)}); "
                        "restore the model folder from a copy or train it again.") from err
    if dropped:
        print(newer_lerobot.dropped_line(path, dropped), flush=True)
    return cfg


def config_file(source: Path | str) -> Path:
    """The config.json of a local model folder, or of a hub id's cached snapshot (as
    lerobot's ``PreTrainedConfig.from_pretrained`` finds it)."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        return folder / "config.json"
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id=str(source), filename="config.json"))
    except Exception as err:
        raise UserError(f"No config.json for {source} in the local Hugging Face cache ({_first_line(err)}); give a "
                        "local model folder.") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def check_processor_files(directory: Path) -> None:
    """Refuse, by name, a processor step of a newer lerobot before lerobot's loader fails on it."""
    from sir.policies.newer_lerobot import check_processor_steps

    for folder in (directory, directory / LEGACY_PREPROCESSOR_DIR, directory / LEGACY_POSTPROCESSOR_DIR):
        for name in (PREPROCESSOR_CONFIG, POSTPROCESSOR_CONFIG):
            if (folder / name).is_file():
                check_processor_steps(folder / name)


def check_weights(directory: Path) -> None:
    """Refuse a damaged model.safetensors (a truncated copy, say) before lerobot loads it:
    safetensors checks that the header and the file's length agree when it opens the file."""
    from safetensors import safe_open

    path = directory / "model.safetensors"
    if not path.is_file():
        return  # lerobot's loader says what it looked for (a hub id, another file name)
    try:
        with safe_open(str(path), framework="pt") as weights:
            weights.keys()
    except Exception as err:
        raise UserError(f"{path} is damaged ({err}); restore the model folder from a copy or train it "
                        "again.") from err


def exportable(policy: Any) -> Any:
    """A plain lerobot policy to save: LoRA adapters merged into a copy of the weights,
    so the saved model loads with ``from_pretrained`` and needs no peft."""
    if not hasattr(policy, "merge_and_unload"):
        return policy
    return copy.deepcopy(policy).merge_and_unload()
