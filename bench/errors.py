"""Exit codes, the bad-input errors (the CLI turns each into one line, exit 2) and the record error."""
from __future__ import annotations

from graphpar.datasets import DatasetError
from graphpar.strategies import ConfigError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Bad input: one line, exit 2."""


class RecordError(RuntimeError):
    """A result could not be written (disk full, file too large, a folder that cannot be made): one line,
    exit 1; the file keeps what it held before."""


# every error that means "bad input, one line names the fix": the CLI exits 2, sweeps skip the configuration
# (a partitioning library's PartitionError is a ConfigError)
BAD_INPUT: tuple[type[Exception], ...] = (UsageError, ConfigError, DatasetError)
