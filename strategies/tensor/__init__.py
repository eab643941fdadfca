"""Tensor parallelism (NeutronTP): feature-split aggregation, row-split NN."""
from .strategy import TensorParallel

__all__ = ["TensorParallel"]
