"""Shared fixtures: real graphs from ../shared/datasets, small synthetic graphs, the slow-test tier."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("OUTDATED_IGNORE", "1")
os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")

FULL = os.environ.get("GRAPHPAR_FULL_TESTS") == "1"
slow = pytest.mark.skipif(not FULL, reason="slow tier: set GRAPHPAR_FULL_TESTS=1 (make test-full)")


@pytest.fixture(scope="session", autouse=True)
def _isolated_data_root(tmp_path_factory):
    """Caches go to a per-session directory unless the user points GRAPHPAR_DATA somewhere."""
    if "GRAPHPAR_DATA" not in os.environ:
        os.environ["GRAPHPAR_DATA"] = str(tmp_path_factory.mktemp("graphpar-data"))
    yield


@pytest.fixture(scope="session")
def cora():
    from graphpar.datasets import load_dataset

    return load_dataset("cora")


@pytest.fixture(scope="session")
def small_directed():
    """A directed R-MAT graph with isolated vertices and vertices without in-edges."""
    from graphpar.datasets import load_dataset

    return load_dataset("rmat:nodes=300,edges=1500,feat=13,classes=5,seed=3")
