"""The commit record of a recording in progress, so that a killed recording loses at most
the episode it was in.

After each finished episode the writer closes lerobot's files (each episode then lies in
files of its own, never written again) and writes ``meta/sir_recording.json`` atomically:
the files that make up the finished episodes, the texts lerobot rewrites in place at every
episode (``info.json``, ``stats.json``), and what the recorder needs to go on. Rolling back
to that record removes what the episode in progress had written and restores those texts,
which leaves a LeRobotDataset of the finished episodes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sir import atomic

JOURNAL = "meta/sir_recording.json"
# A DAgger recording's log, a JSON line per episode run (kept or not): its takeovers and
# corrections (``sir.dagger.record``). The recorder adds an episode's line before its frames.
CORRECTIONS = "meta/sir_corrections.jsonl"
# lerobot rewrites these at every episode (meta.save_episode), before the episode is whole;
# sir's log grows with every episode run, kept or not.
REWRITTEN = ("meta/info.json", "meta/stats.json", CORRECTIONS)


def commit(folder: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Record ``folder`` as it is now (its files, the rewritten texts) with ``record``."""
    files = sorted(
        rel for rel in (p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if rel != JOURNAL
    )
    texts = {name: (folder / name).read_text() for name in REWRITTEN if (folder / name).is_file()}
    full = {**record, "files": files, "texts": texts}
    atomic.write_json(folder / JOURNAL, full)
    return full


def read(folder: Path) -> dict[str, Any] | None:
    """The last commit record in ``folder``; None when there is none (or it is unreadable)."""
    try:
        record = json.loads((folder / JOURNAL).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("files"), list) else None


def finished_episodes(folder: Path) -> int:
    record = read(folder) if folder.is_dir() else None
    return int(record.get("episodes", 0)) if record else 0


def roll_back(folder: Path, record: dict[str, Any]) -> None:
    """Bring ``folder`` back to ``record``: files made since are removed (the episode in
    progress, lerobot's temporary images and videos), the rewritten texts restored."""
    keep = set(record["files"]) | {JOURNAL}
    for path in sorted(folder.rglob("*"), reverse=True):  # a folder's contents before the folder
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        elif path.relative_to(folder).as_posix() not in keep:
            path.unlink()
    for name, text in record["texts"].items():
        atomic.write_text(folder / name, text)


def same(a: Any, b: Any) -> bool:
    """Equal once both are JSON (tuples and lists alike)."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)
