"""Graph-partition data parallelism: partitioner, halo exchange, the strategy."""
from .strategy import GraphPartition

__all__ = ["GraphPartition"]
