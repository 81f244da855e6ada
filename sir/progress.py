"""Progress of a command's loop, one rule for every command: a tqdm bar in a terminal; in a
batch job (stdout not a terminal: a log file, a pipe) no redraws, but plain lines on stdout,
one per reporting interval, so a log holds what happened and no line grows as
carriage-return redraws (tqdm's bar written to a file is one such line)."""

from __future__ import annotations

import math
import sys
import time
from typing import Any

LINES_PER_LOOP = 10  # plain lines a loop prints over its whole length, by default


def stdout_is_terminal() -> bool:
    """Whether progress is drawn as a bar."""
    return sys.stdout.isatty()


class Progress:
    """``total`` units of work (``unit``: "ep", "step"), from ``initial``.

    ``update(n, **status)`` counts ``n`` more done and sets the counters shown beside it. In
    a batch job a line is printed every ``every`` units (default: a tenth of the loop, so
    about ten lines whatever its length), at the last unit, and at ``close`` for a loop that
    ended early; ``update(report=True|False)`` decides for one update instead.
    """

    def __init__(self, total: int, desc: str, unit: str = "it", *, initial: int = 0, every: int | None = None,
                 leave: bool = True, enabled: bool = True, interactive: bool | None = None):
        from tqdm import tqdm

        self.total, self.desc, self.unit, self.initial = total, desc, unit, initial
        self.n = self.reported = initial
        self.every = every or max(1, math.ceil(max(total - initial, 1) / LINES_PER_LOOP))
        self.enabled = enabled
        self.interactive = stdout_is_terminal() if interactive is None else interactive
        self.status: dict[str, Any] = {}
        self.started = time.perf_counter()
        self.bar = None
        if enabled and self.interactive:
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=leave, dynamic_ncols=True)

    def update(self, n: int = 1, report: bool | None = None, **status: Any) -> None:
        self.n += n
        self.status.update(status)
        if self.bar is not None:
            if status:
                self.bar.set_postfix(self.status, refresh=False)
            self.bar.update(n)
            return
        if not self.enabled:
            return
        if report is None:
            report = n > 0 and (self.n - self.reported >= self.every or self.n >= self.total)
        if report:
            self.report()

    def report(self) -> None:
        print(self.line(), flush=True)
        self.reported = self.n

    def line(self) -> str:
        elapsed = time.perf_counter() - self.started
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.n) / rate if rate > 0 else 0.0
        status = ", ".join(f"{k}={v}" for k, v in self.status.items())
        return " | ".join(part for part in (
            f"{self.desc}: {self.n}/{self.total} {self.unit}", status, f"{rate:.2f} {self.unit}/s",
            f"ETA {duration(eta)}") if part)

    def write(self, text: str) -> None:
        """A message between progress updates (the bar redraws below it)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.n > self.reported:
            self.report()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
