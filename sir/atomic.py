"""Files written whole or not at all: into a hidden temporary file beside the target, then
renamed over it, so a reader (or a run killed mid-write) never sees half a file."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
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
