"""Fixtures: real graphs carried in datasets/data/, small synthetic graphs, the slow-test tier.

A test that needs a real graph calls ``need_graph(name)``: it skips with one line saying how to get
the graph when it is not here, except that ``GRAPHPAR_REQUIRE_DATA=1`` (set by .ci/run) makes the
absence of a graph this repository carries a failure.
"""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("DGLBACKEND", "pytorch")
os.environ.setdefault("OUTDATED_IGNORE", "1")
os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")

FULL = os.environ.get("GRAPHPAR_FULL_TESTS") == "1"
REQUIRE_DATA = os.environ.get("GRAPHPAR_REQUIRE_DATA") == "1"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` (registered in setup.cfg) run only with GRAPHPAR_FULL_TESTS=1 (make test-full)."""
    if FULL:
        return
    skip = pytest.mark.skip(reason="slow tier: set GRAPHPAR_FULL_TESTS=1 (make test-full)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

# The real graphs datasets/data/ holds (the rest download on first use).
CARRIED = ("cora", "citeseer", "pubmed", "amazon-computers", "coauthor-cs", "coauthor-physics", "facebook-page-page")


def need_graph(name: str):
    """The folder of real graph ``name``, or a one-line skip (a failure under GRAPHPAR_REQUIRE_DATA=1 for carried graphs)."""
    from graphpar.datasets.catalog import REAL, data_root, find_real, repo_data_dir
    from graphpar.datasets.download import how_to_get

    where = find_real(name)
    if where is not None:
        return where
    if name in CARRIED and REQUIRE_DATA:
        pytest.fail(f"{name}: missing from {repo_data_dir()}, which this repository carries (git checkout datasets/data)")
    pytest.skip(f"{name} not here: {how_to_get(name, data_root() / REAL[name].folder)}")


@pytest.fixture(scope="session", autouse=True)
def _isolated_data_root(tmp_path_factory):
    """Caches go to a per-session directory unless the user points GRAPHPAR_DATA somewhere."""
    if "GRAPHPAR_DATA" not in os.environ:
        os.environ["GRAPHPAR_DATA"] = str(tmp_path_factory.mktemp("graphpar-data"))
    yield


@pytest.fixture(scope="session")
def cora():
    from graphpar.datasets import load_dataset

    need_graph("cora")
    return load_dataset("cora")


@pytest.fixture(scope="session")
def small_directed():
    """A directed R-MAT graph with isolated vertices and vertices without in-edges."""
    from graphpar.datasets import load_dataset

    return load_dataset("rmat:nodes=300,edges=1500,feat=13,classes=5,seed=3")


@pytest.fixture(autouse=True)
def _no_pending_notices():
    """Notices one test deferred (bench/notices.py) never reach the next test's stderr."""
    from graphpar.bench import notices

    notices.discard()
    yield
    notices.discard()
