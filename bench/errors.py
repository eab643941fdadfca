"""Exit codes and the one bad-input error every layer raises (the CLI turns it into one line, exit 2)."""
from __future__ import annotations

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Bad input: one line, exit 2."""


class RecordError(RuntimeError):
    """A result could not be written (disk full, file too large, a folder that cannot be made): one line,
    exit 1; the file keeps what it held before."""
