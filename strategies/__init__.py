"""graphpar.strategies: the registry and every strategy (each module registers itself on import).

Adding a strategy: write one module here with a ``@register``-ed ``Strategy`` subclass and import it below.
"""
from . import partition, pipeline, sampling, single, tensor  # noqa: F401  (registration happens on import)
from .base import ConfigError, Option, Strategy, TrainConfig, get_strategy, register, registered
from .comm import Communicator

__all__ = ["Communicator", "ConfigError", "Option", "Strategy", "TrainConfig", "get_strategy", "register",
           "registered"]
