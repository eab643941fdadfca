"""graphpar: distributed full-graph GNN training benchmarks (``graphpar --help``, ``python -m graphpar``).

Importing any part of graphpar selects DGL's PyTorch backend first, so DGL never guesses (and never
prints "DGL backend not selected") in the CLI, the workers or the tests.
"""
from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

os.environ.setdefault("DGLBACKEND", "pytorch")


def _version() -> str:
    try:
        return version("graphpar")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__version__ = _version()
