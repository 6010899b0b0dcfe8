"""The lines synthgen says to the user on stderr, apart from progress bars and results on stdout."""

import sys


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def one_line(message: str) -> str:
    """A message folded to one line, as every error is shown: `synthgen: <message>`."""
    return f"synthgen: {' '.join(message.split())}"
