"""Partitioning, shared by every family that cuts a graph into parts (below the strategy API).

- ``partitioner``: METIS / random / contiguous vertex-to-part assignments (cached, deterministic), and
  their quality (edge cut, halo sizes);
- ``halo``: each part's local view (owned vertices, halo grouped by owner, the rows to send each peer)
  and the halo exchange as a reusable, byte-counted, differentiable piece;
- ``parts_io``: partitions on disk, one tensor file per part, loaded per rank;
- ``errors``: ``PartitionError`` (bad input, one line).

It imports the counted communicator, the tags, the kernels and the model math, never the strategy API
(``strategies/base.py``) nor a family (``strategies/<family>/``): tests/test_layering.py checks it.
"""
from .errors import PartitionError

__all__ = ["PartitionError"]
