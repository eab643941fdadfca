"""graphpar.datasets: every graph as one plain-tensor form (GraphData), cached on disk."""
from .catalog import DatasetError, availability, data_root, load_dataset, validate_spec
from .graph import GraphData
from .synthetic import PRESETS, generate_rmat

__all__ = ["DatasetError", "GraphData", "PRESETS", "availability", "data_root", "generate_rmat",
           "load_dataset", "validate_spec"]
