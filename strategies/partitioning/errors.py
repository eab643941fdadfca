"""The partitioning library's one error: bad input it can name the fix for (the CLI prints it as one line).

A ``ConfigError`` (strategies/errors.py, a leaf module, not the strategy API): whoever catches a
strategy's configuration errors catches these too."""
from ..errors import ConfigError


class PartitionError(ConfigError):
    """A partitioner, partition folder or part file that a run cannot use; the message names the fix."""
