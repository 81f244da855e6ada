"""What this machine holds of the files and packages a policy needs, checked without a network.

Nothing here downloads: the Hugging Face cache is read with ``local_files_only`` and
torchvision's weights are looked up in torch's hub folder, so the answers hold offline.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

# torchvision's ImageNet ResNet-18, which ACT's default preset starts its backbone from.
RESNET18_IMAGENET_FILE = "resnet18-f37072fd.pth"


def hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def is_local_dir(name_or_path: str | os.PathLike | None) -> bool:
    return name_or_path is not None and Path(name_or_path).expanduser().is_dir()


def hub_repo_available(repo_id: str) -> bool:
    """True when ``repo_id`` is a local folder or has a snapshot in the local Hugging Face cache."""
    if is_local_dir(repo_id):
        return True
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, local_files_only=True)
    except Exception:  # LocalEntryNotFoundError, or an id the hub would reject
        return False
    return True


def missing_packages(modules: tuple[str, ...]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def torchvision_weights_path(filename: str = RESNET18_IMAGENET_FILE) -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def torchvision_weights_available(filename: str = RESNET18_IMAGENET_FILE) -> bool:
    return torchvision_weights_path(filename).is_file()
