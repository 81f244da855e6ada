"""Which folder holds each dataset named on the command line.

``--repo-ids a,b`` names datasets; with ``--root`` each is ``<root>/<repo_id>``, otherwise
it lives in the Hugging Face cache (``HF_LEROBOT_HOME/<repo_id>``) and is downloaded there
when it is missing and the hub may be reached.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sir.errors import UserError

INFO_FILE = Path("meta") / "info.json"
# huggingface_hub's snapshot_download leaves one of these per file: commit hash on line 1.
_HUB_METADATA = Path(".cache") / "huggingface" / "download" / "meta" / "info.json.metadata"


@dataclass(frozen=True)
class ResolvedDataset:
    repo_id: str
    root: Path
    # The hub commit the files came from; None for a dataset recorded locally.
    revision: str | None = None


def parse_repo_ids(text: str | list[str]) -> list[str]:
    """``"a, b"`` or ``["a", "b"]`` -> ``["a", "b"]``; empty or repeated names are errors."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    ids = [s.strip() for s in parts if s.strip()]
    if not ids:
        raise UserError("--repo-ids is empty; give one or more dataset names separated by commas.")
    dupes = sorted({s for s in ids if ids.count(s) > 1})
    if dupes:
        raise UserError(f"--repo-ids names {dupes[0]!r} twice; list each dataset once.")
    return ids


def hub_offline() -> bool:
    """Whether downloads are forbidden (read at call time, so a changed environment counts)."""
    import huggingface_hub.constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(huggingface_hub.constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> Path:
    # Looked up on each call so that tests (and users) can point it elsewhere.
    from lerobot.utils import constants

    return Path(constants.HF_LEROBOT_HOME)


def _has_data(path: Path) -> bool:
    return (path / INFO_FILE).is_file() and any((path / "data").glob("*/*.parquet"))


def _cached_revision(path: Path) -> str | None:
    meta = path / _HUB_METADATA
    if not meta.is_file():
        return None
    lines = meta.read_text().splitlines()
    return (lines[0].strip() or None) if lines else None


def resolve_dataset(repo_id: str, root: str | Path | None = None) -> ResolvedDataset:
    """The local folder of ``repo_id``, downloading it into the HF cache when allowed."""
    if root is not None:
        path = Path(root).expanduser() / repo_id
        if not (path / INFO_FILE).is_file():
            raise UserError(
                f"Dataset '{repo_id}' not found: {path} has no meta/info.json; record it with "
                f"`python -m sir.data.collect --repo-id {repo_id} --root {root}` or fix --root."
            )
        return ResolvedDataset(repo_id, path, _cached_revision(path))

    path = hub_cache_dir() / repo_id
    if _has_data(path):
        return ResolvedDataset(repo_id, path, _cached_revision(path))
    if hub_offline():
        raise UserError(
            f"Dataset '{repo_id}' is not in the local cache (looked in {path}) and HF_HUB_OFFLINE "
            f"forbids downloading it; pass --root with the folder that holds it, or go online."
        )
    return _download(repo_id, path)


def _download(repo_id: str, path: Path) -> ResolvedDataset:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from sir.data.video import video_backend

    try:
        # LeRobotDataset picks the revision tag matching its codebase version and fetches
        # metadata, data and videos into the cache folder.
        dataset = LeRobotDataset(repo_id, root=path, video_backend=video_backend())
    except Exception as err:  # any hub or network failure is the user's to act on
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"Could not download dataset '{repo_id}' from the Hugging Face Hub into {path} ({first_line})."
        ) from err
    return ResolvedDataset(repo_id, path, _cached_revision(path) or dataset.revision)


def resolve_root(repo_id: str, root: str | Path | None = None) -> Path:
    """The local folder of ``repo_id`` (see ``resolve_dataset``)."""
    return resolve_dataset(repo_id, root).root
