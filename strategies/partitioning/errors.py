"""The partitioning library's one error: bad input it can name the fix for (the CLI prints it as one line)."""


class PartitionError(ValueError):
    """A partitioner, partition folder or part file that a run cannot use; the message names the fix."""
