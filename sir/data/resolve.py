"""Which folder holds each dataset named on the command line.

``--repo-ids a,b`` names datasets; with ``--root`` each is ``<root>/<repo_id>``, otherwise
it lives in the Hugging Face cache (``HF_LEROBOT_HOME/<repo_id>``) and is downloaded there
through lerobot when it is missing and the hub may be reached. ``user/name@revision`` pins
a hub revision (a commit, branch or tag): the cached copy is used when it came from that
revision, otherwise lerobot fetches the revision into the cache (online only).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sir.errors import UserError
from sir.hub import hub_offline

INFO_FILE = Path("meta") / "info.json"
# huggingface_hub's snapshot_download leaves one of these per file: commit hash on line 1.
_HUB_METADATA = Path(".cache") / "huggingface" / "download" / "meta" / "info.json.metadata"
# sir's note of the pinned revision it last fetched (line 1) and the commit it was (line 2).
_PINNED = Path(".cache") / "huggingface" / "sir_pinned_revision"


@dataclass(frozen=True)
class ResolvedDataset:
    repo_id: str  # as named on the command line, with its @revision if pinned
    root: Path
    # The hub commit the files came from (the pinned revision when the commit is unknown);
    # None for a dataset recorded locally.
    revision: str | None = None


def split_revision(repo_id: str) -> tuple[str, str | None]:
    """``"user/name@rev"`` -> ``("user/name", "rev")``; ``"user/name"`` -> ``("user/name", None)``."""
    name, at, revision = repo_id.partition("@")
    if at and (not name or not revision or "@" in revision):
        raise UserError(f"--repo-ids entry {repo_id!r} is not <name> or <user/name>@<revision>.")
    return name, revision if at else None


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


def dataset_path(root: str | Path, repo_id: str, flag: str = "--repo-ids") -> Path:
    """``<root>/<repo_id>``, the one place a repo id becomes a local folder: refused when
    ``root`` is a file or when ``repo_id`` would lead out of ``root`` (an absolute path,
    ``..``) or to ``root`` itself, so nothing is read or written outside the root."""
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise UserError(f"--root {root} is a file, not a folder; pass the folder that holds the datasets.")
    parts = Path(repo_id).parts
    if not repo_id.strip() or Path(repo_id).is_absolute() or ".." in parts or parts in ((), (".",)):
        raise UserError(f"{flag} {repo_id!r} is not a dataset name inside {root}; give a name such as lift_demos "
                        "or user/name, and the folder that holds it with --root.")
    return root / repo_id


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


def _matches(path: Path, pinned: str, commit: str | None) -> bool:
    """Whether the cached copy at ``path`` (files of ``commit``) came from revision ``pinned``."""
    if commit is not None and commit.startswith(pinned):
        return True
    note = path / _PINNED
    lines = note.read_text().splitlines() if note.is_file() else []
    return len(lines) >= 2 and lines[0] == pinned and lines[1] == (commit or "")


def resolve_dataset(repo_id: str, root: str | Path | None = None) -> ResolvedDataset:
    """The local folder of ``repo_id`` (``name`` or ``user/name[@revision]``), downloading it
    into the HF cache when allowed."""
    name, pinned = split_revision(repo_id)
    if root is not None:
        if pinned is not None:
            raise UserError(f"--repo-ids entry '{repo_id}' pins a hub revision, but --root reads local folders; "
                            f"drop @{pinned} or drop --root to use the Hugging Face cache.")
        path = dataset_path(root, name)
        if not (path / INFO_FILE).is_file():
            raise UserError(
                f"Dataset '{repo_id}' not found: {path} has no meta/info.json; record it with "
                f"`python -m sir.data.collect --repo-id {repo_id} --root {root}` or fix --root."
            )
        return ResolvedDataset(repo_id, path, _cached_revision(path))

    path = dataset_path(hub_cache_dir(), name)
    cached = _has_data(path)
    commit = _cached_revision(path) if cached else None
    if cached and (pinned is None or _matches(path, pinned, commit)):
        return ResolvedDataset(repo_id, path, commit or pinned)
    if hub_offline():
        if cached:
            raise UserError(
                f"Dataset '{name}' in the local cache ({path}) is of revision {commit or 'unknown'}, not {pinned}, "
                f"and HF_HUB_OFFLINE forbids fetching {pinned}; go online, or drop @{pinned} to use the cached copy."
            )
        raise UserError(
            f"Dataset '{repo_id}' is not in the local cache (looked in {path}) and HF_HUB_OFFLINE "
            f"forbids downloading it; pass --root with the folder that holds it, or go online."
        )
    return _download(repo_id, name, pinned, path, refresh=cached)


def _download(repo_id: str, name: str, pinned: str | None, path: Path, refresh: bool) -> ResolvedDataset:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from sir.data.video import video_backend

    try:
        # Without a pin, LeRobotDataset picks the revision tag matching its codebase version;
        # it fetches metadata, data and videos into the cache folder (again, for another pin).
        dataset = LeRobotDataset(name, root=path, revision=pinned, force_cache_sync=refresh,
                                 video_backend=video_backend())
    except Exception as err:  # any hub or network failure is the user's to act on
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"Could not download dataset '{repo_id}' from the Hugging Face Hub into {path} ({first_line})."
        ) from err
    commit = _cached_revision(path)
    if pinned is not None:
        (path / _PINNED).parent.mkdir(parents=True, exist_ok=True)
        (path / _PINNED).write_text(f"{pinned}\n{commit or ''}\n")
    return ResolvedDataset(repo_id, path, commit or dataset.revision)

