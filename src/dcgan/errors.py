"""Errors that mean "the user has something to fix": printed as a message, never as a traceback."""

from __future__ import annotations

import sys
from typing import Callable

from dcgan.lifetime import end_with_starter


class UserError(Exception):
    """A problem with the user's input or environment, with what to do about it."""

    exit_code = 2


class ConfigError(UserError):
    pass


class DataError(UserError):
    pass


class CheckpointError(UserError):
    pass


def run_stage(main: Callable[[], None]) -> None:
    """Entry point for a stage script: a UserError becomes a clear message and its exit status (2, or
    128 + N for a run stopped by signal N). The stage ends when whatever started it dies (lifetime.py)."""
    end_with_starter()
    try:
        main()
    except UserError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
