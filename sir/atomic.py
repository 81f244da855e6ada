"""Files written whole or not at all: into a hidden temporary file beside the target, then
renamed over it, so a reader (or a run killed mid-write) never sees half a file.

Temporary names carry the writer's PID (``.<name>.tmp-<pid>``, ``.<name>.old-<pid>``), so
what a killed process left behind is recognised and removed by the next one.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
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


def dead_leftovers(folder: str | Path) -> list[tuple[Path, str]]:
    """The temporary files and folders in ``folder`` whose process is gone, with the name of
    what each was building, in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for entry in sorted(folder.iterdir()):
        match = LEFTOVER.match(entry.name)
        if match is not None and not process_alive(int(match["pid"])):
            found.append((entry, match["name"]))
    return found


def remove_leftovers(folder: str | Path, keep: Callable[[Path], bool] | None = None) -> str | None:
    """Remove the temporary files and folders in ``folder`` whose process is gone (a live
    PID's may still be in use), except those ``keep`` accepts; returns the line that says
    what was removed, or None."""
    folder = Path(folder)
    removed, folders = [], 0
    for entry, _ in dead_leftovers(folder):
        if keep is not None and keep(entry):
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


class ProcessLock:
    """Holds ``path`` for this process alone, as an exclusive ``flock`` on a file that holds
    its PID (for the refusal's sentence). The kernel drops the lock when the process ends,
    however it ends (SIGKILL too), so a dead holder never blocks the next one and there is
    no stale lock to judge by PID. ``owner`` is the PID of the live holder that refused us."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.fd: int | None = None
        self.owner: int | None = None

    def acquire(self) -> bool:
        """True when this process now holds the lock; False when a live process does."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.read(fd, 32).decode(errors="replace").strip()
                os.close(fd)
                self.owner = int(text) if text.isdigit() else None
                return False
            # The holder before us may have removed the file between our open and flock (and a
            # third process made a new one): the lock counts only on the file the path names.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still held, so no one locks a removed file
        os.close(self.fd)
        self.fd = None


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
