"""The configuration error every part of strategies/ raises (a leaf module: anything may import it).

The strategy API (``base.py``) re-exports it; the partitioning library below that API raises its own
subclass (``PartitionError``) without importing the API. The CLI prints either as one line, exit 2.
"""


class ConfigError(ValueError):
    """A configuration the strategy or graph cannot take; the message names every factor and the fix."""
