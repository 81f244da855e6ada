"""The Hugging Face Hub: whether it may be reached, and publishing a model folder.

``--push-to-hub REPO`` is checked when a command starts (offline, not logged in, no network:
one sentence, before any work) and carried out at its end with huggingface_hub's
``create_repo`` and ``upload_folder``, the calls lerobot's ``push_model_to_hub`` makes. sir
uploads its model folder as it is (lerobot's layout: config, weights, both processors, plus
sir_env.json and sir_checkpoint.json) rather than re-saving the policy as lerobot does, so
that the pushed model evaluates and fine-tunes like the local one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from sir.errors import UserError


def hub_offline() -> bool:
    """Whether downloads and uploads are forbidden (read at call time, so a changed
    environment counts)."""
    import huggingface_hub.constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(huggingface_hub.constants.HF_HUB_OFFLINE)


def check_push(repo_id: str, flag: str = "--push-to-hub") -> str:
    """Refuse, in one sentence, a push that could not happen: a malformed repo id, the hub
    offline, no token, or a hub that does not answer. Returns the account's name."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise UserError(f"{flag} {repo_id!r} is not a Hugging Face repo id such as user/name ({err}).") from err
    if hub_offline():
        raise UserError(f"{flag} {repo_id} needs the Hugging Face Hub but HF_HUB_OFFLINE is set; unset it, "
                        f"or drop {flag} and upload the model folder later.")
    token = get_token()
    if not token:
        raise UserError(f"{flag} {repo_id} needs a Hugging Face token; run `hf auth login` or set HF_TOKEN first.")
    try:
        return HfApi().whoami(token=token)["name"]
    except Exception as err:  # no network, a revoked token...: the user's to act on
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{flag} {repo_id}: the Hugging Face Hub did not accept the token ({reason}); "
                        f"check the network and `hf auth whoami`, or drop {flag}.") from err


def push_folder(folder: str | Path, repo_id: str, card: str | None = None, private: bool = False) -> str:
    """Upload the model ``folder`` to the model repo ``repo_id`` (created if missing) in one
    commit, with ``card`` as its README.md; returns the commit's URL."""
    from huggingface_hub import HfApi

    api = HfApi()
    repo_id = api.create_repo(repo_id=repo_id, private=private, exist_ok=True).repo_id
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        staged = Path(tmp) / "model"
        shutil.copytree(folder, staged)
        if card is not None:
            (staged / "README.md").write_text(card)
        info = api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=staged,
                                 commit_message=f"Upload {Path(folder).name} (sir)")
    return info.commit_url
