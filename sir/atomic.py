"""Files written whole or not at all: into a hidden temporary file beside the target, then
renamed over it, so a reader (or a run killed mid-write) never sees half a file.

Temporary names carry the writer's PID (``.<name>.tmp-<pid>``, ``.<name>.old-<pid>``), so
what a killed process left behind is recognised and removed by the next one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)$")


def temporary_path(path: str | Path, kind: str = "tmp") -> Path:
    """The hidden name beside ``path`` under which this process builds it (kind "tmp") or
    sets its previous version aside (kind "old")."""
    path = Path(path)
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_leftovers(folder: str | Path) -> str | None:
    """Remove the temporary files and folders in ``folder`` whose process is gone (a live
    PID's may still be in use); returns the line that says what was removed, or None."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    removed, folders = [], 0
    for entry in sorted(folder.iterdir()):
        match = LEFTOVER.match(entry.name)
        if match is None or process_alive(int(match["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            folders += 1
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry.name)
    if not removed:
        return None
    files = len(removed) - folders
    counts = [f"{n} temporary {kind}{'s' if n > 1 else ''}" for n, kind in ((folders, "folder"), (files, "file")) if n]
    return f"Removed {' and '.join(counts)} left by a stopped run in {folder}: {', '.join(removed)}"


def write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    tmp = temporary_path(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns or rows[0]), restval="")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())


def save_figure(fig: Any, path: str | Path) -> Path:
    """A matplotlib figure as PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return write_bytes(path, buffer.getvalue())
