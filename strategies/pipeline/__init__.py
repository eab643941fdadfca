"""Layer pipelining (GNNPipe): schedule and stage cut, the chunked stage, the hybrid (graph-partitioned) stage."""
from .strategy import LayerPipeline

__all__ = ["LayerPipeline"]
