"""Errors that end a command with one line instead of a traceback."""

from typing import Optional

import msgspec


class BadInput(Exception):
    """The user's input cannot be used (flag, file, config): exit status 2."""


class RunStopped(Exception):
    """The run cannot go on (quota spent, key refused, most requests failing): exit status 1.

    Everything written before it was raised is kept.
    """


class Interrupted(Exception):
    """The user interrupted a run; what was written is kept and a rerun resumes: exit status 130."""


class BudgetReached(RunStopped):
    """The next request would take the run past its budget (--budget): the run stops sending, the
    requests in flight finish, and a rerun with a higher budget resumes. Exit status 1."""

    def __init__(self, message: str, enough: Optional[float] = None):
        super().__init__(message)
        self.enough = enough  # a budget that would let the run finish, as far as can be told


# What a reader of JSON counts as a value it cannot read: msgspec's DecodeError (not JSON, or not the
# shape asked for: ValidationError is one), and RecursionError, which msgspec raises instead for a value
# nested past Python's recursion limit (a line of 3,000 "[" was a traceback in stats, export, curate).
UNDECODABLE = (msgspec.DecodeError, RecursionError)
