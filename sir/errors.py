"""How a command ends when it cannot go on: bad input (``UserError``: one sentence, exit code
2) and Ctrl-C (one line saying what was kept, exit code 130), never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])

USAGE_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as shells report a command Ctrl-C stopped

_kept: str | None = None  # what a Ctrl-C would leave behind now, as note_kept last said


class UserError(Exception):
    """Bad input the user can fix: printed as one sentence, exit code 2, no traceback."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, after the interrupted work kept what it could; the message says what."""


def note_kept(what: str | None) -> None:
    """Say what a Ctrl-C from now on leaves behind (e.g. "last checkpoint <path>"; None:
    nothing worth naming): the line a command that is interrupted without a more precise
    ``Interrupted`` prints."""
    global _kept
    _kept = what


def interrupted_line(err: KeyboardInterrupt) -> str:
    return f"interrupted: {str(err) or _kept or 'stopped before finishing'}"


def interrupt_in(err: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C behind ``err``, if any. A KeyboardInterrupt raised while C code runs a
    Python callback can come out wrapped (numba's unpickling, used by robosuite's jitted
    functions, turns it into a SystemError caused by it), so the causes are followed."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def cli_errors(main: F) -> F:
    """Wrap a CLI entry point so a UserError ends with its message and exit code 2, and
    Ctrl-C with one line (what was kept) and exit code 130."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(USAGE_EXIT_CODE) from None
        except KeyboardInterrupt as err:
            print(interrupted_line(err), file=sys.stderr)
            raise SystemExit(INTERRUPTED_EXIT_CODE) from None
        except Exception as err:
            interrupt = interrupt_in(err)
            if interrupt is None:
                raise
            print(interrupted_line(interrupt), file=sys.stderr)
            raise SystemExit(INTERRUPTED_EXIT_CODE) from None

    return wrapper  # type: ignore[return-value]
