"""Mini-batch data parallelism with distributed neighbour sampling."""
from .strategy import Sampling

__all__ = ["Sampling"]
