"""graphpar.strategies: the registry and every strategy (each module registers itself on import).

Adding a strategy: write one module here with a ``@register``-ed ``Strategy`` subclass and import it below,
or, without touching graphpar, ship it in your own package and declare it under the entry-point group
``graphpar.strategies`` (setup.cfg ``[options.entry_points] graphpar.strategies = mine = mypkg.mine``):
every such module is imported when the registry loads, in the CLI and in every worker.
"""
import sys
from importlib.metadata import entry_points

from . import partition, pipeline, sampling, single, tensor  # noqa: F401  (registration happens on import)
from .base import ConfigError, Option, Strategy, TrainConfig, get_strategy, register, registered
from .comm import Communicator

ENTRY_POINT_GROUP = "graphpar.strategies"


def load_plugins() -> list[str]:
    """Import every module declared under ``graphpar.strategies``; one stderr line per module that fails."""
    loaded = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
            loaded.append(ep.name)
        except Exception as e:  # noqa: BLE001  (a broken plugin must not take the built-in strategies down)
            print(f"graphpar: strategy plugin {ep.name} ({ep.value}) not loaded: {type(e).__name__}: {e}",
                  file=sys.stderr)
    return loaded


load_plugins()

__all__ = ["Communicator", "ConfigError", "Option", "Strategy", "TrainConfig", "get_strategy", "load_plugins",
           "register", "registered"]
