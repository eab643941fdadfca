"""graphpar.strategies: the registry and every strategy (each module registers itself on import)."""
from . import single  # noqa: F401
from .base import ConfigError, Option, Strategy, TrainConfig, get_strategy, register, registered
from .comm import Communicator

for _module in ("tensor", "partition", "pipeline"):
    try:
        __import__(f"{__name__}.{_module}")
    except ModuleNotFoundError as _e:  # a strategy not written yet is simply absent from the registry
        if _e.name != f"{__name__}.{_module}":
            raise

__all__ = ["Communicator", "ConfigError", "Option", "Strategy", "TrainConfig", "get_strategy", "register",
           "registered"]
