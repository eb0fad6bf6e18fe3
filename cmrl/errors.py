"""The one error hierarchy of cmrl: every error that a user's input can cause.

Entry points (scripts/*.py) catch `UserError` and print its message as one or two lines, without a
traceback (set CMRL_TRACEBACK=1 to see it). Each message names what was wrong and what to do.

    UserError
    ├── ConfigError      a configuration value is missing, of the wrong type, out of range or
    │                    inconsistent with the data, the environment or a run being resumed
    ├── DatasetError     a dataset is missing, malformed or holds values cmrl cannot train on
    ├── CheckpointError  a checkpoint cannot be written or read, or does not fit the run asked for
    ├── DivergenceError  training produced a non-finite loss or parameter
    └── MissingDependencyError  an optional package a requested feature needs is not installed

`ConfigError` and `DatasetError` are also `ValueError`s, so code that validates values can be used
where a ValueError is expected.

`user_errors(prog)` is the one way an entry point turns these into `prog: error: message` and exit
status 2.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

TRACEBACK_ENV = "CMRL_TRACEBACK"  # set to 1 to see the traceback of a user error


class UserError(Exception):
    """Something the user supplied is wrong; the message says what and what to do."""


class ConfigError(UserError, ValueError):
    """A configuration value is missing, of the wrong type, out of range, or inconsistent with the data."""


class DatasetError(UserError, ValueError):
    """A dataset is missing, malformed or holds values cmrl cannot train on.

    The message always says which dataset, file, key or field was at fault and what to do about it.
    """


class CheckpointError(UserError):
    """A checkpoint cannot be written or read; the message says which file and what to do."""


class DivergenceError(UserError):
    """Training produced a non-finite loss or parameter; the message names the step and the value."""


class MissingDependencyError(UserError, ImportError):
    """An optional package that a requested feature needs is not installed; the message names the fix."""


def report_error(err: BaseException, prog: str = "cmrl") -> None:
    """Print an error as ``prog: error: message`` on stderr."""
    print(f"{prog}: error: {err}", file=sys.stderr, flush=True)


def show_traceback() -> bool:
    """Whether CMRL_TRACEBACK asks for tracebacks of user errors (any value but empty or 0)."""
    return os.environ.get(TRACEBACK_ENV, "") not in ("", "0")


@contextmanager
def user_errors(prog: str = "cmrl", also: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Run the body; a UserError (or an instance of one of ``also``) is printed as ``prog: error: message``
    and ends the process with exit status 2 and no traceback (with CMRL_TRACEBACK=1 it propagates)."""
    caught: tuple[type[BaseException], ...] = (UserError, *also)
    try:
        yield
    except caught as err:
        if show_traceback():
            raise
        report_error(err, prog)
        raise SystemExit(2) from None
