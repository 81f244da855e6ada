"""The one exception type that reaches the user as a sentence and exit code 2."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])

USAGE_EXIT_CODE = 2


class UserError(Exception):
    """Bad input the user can fix: printed as one sentence, exit code 2, no traceback."""


def cli_errors(main: F) -> F:
    """Wrap a CLI entry point so a UserError ends with its message and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(USAGE_EXIT_CODE) from None

    return wrapper  # type: ignore[return-value]
