"""Errors that end a command with one line instead of a traceback."""


class BadInput(Exception):
    """The user's input cannot be used (flag, file, config): exit status 2."""


class RunStopped(Exception):
    """The run cannot go on (quota spent, key refused, most requests failing): exit status 1.

    Everything written before it was raised is kept.
    """


class Interrupted(Exception):
    """The user interrupted a run; what was written is kept and a rerun resumes: exit status 130."""
