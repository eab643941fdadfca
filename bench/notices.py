"""Notices (deprecations) that wait until a command's input is known to be good.

    notices.defer(line)      # while checking input
    notices.flush()          # the command got past validation: print them once
    notices.discard()        # the input was refused: its one error line stays the only line

A refused command prints exactly one line (the error); a deprecated spelling that was also used is
then not worth a second line. A command that runs prints each notice once, on stderr, when it ends.
"""
from __future__ import annotations

import sys

_pending: list[str] = []


def defer(line: str) -> None:
    """Keep ``line`` (once) for the end of the command."""
    if line not in _pending:
        _pending.append(line)


def flush() -> None:
    """Print the kept notices on stderr and forget them."""
    for line in _pending:
        print(line, file=sys.stderr)
    _pending.clear()


def discard() -> None:
    _pending.clear()
