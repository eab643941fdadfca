"""The README's toy strategy, run as written: one module registers it, and the check API finds it exact."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from helpers import config, train_rank_with

from graphpar.bench.check import check_config, compare, run_reference
from graphpar.bench.runtime.spmd import run_spmd
from graphpar.datasets import load_dataset
from graphpar.strategies import get_strategy, registered

README = Path(__file__).resolve().parent.parent / "README.md"


def toy_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    found = [b for b in blocks if 'name = "toy"' in b]
    assert len(found) == 1, "README's Contributing section shows one toy strategy"
    return found[0]


@pytest.fixture(scope="module")
def toy_module(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    (folder / "toy_strategy.py").write_text(toy_source())
    sys.path.insert(0, str(folder))  # spawned ranks inherit sys.path
    try:
        __import__("toy_strategy")
        yield "toy_strategy"
    finally:
        sys.path.remove(str(folder))


def test_one_module_registers_the_toy(toy_module):
    assert "toy" in registered()
    assert get_strategy("toy").description.startswith("every rank the whole graph")


def test_the_toy_is_exact_at_p2(toy_module):
    graph = load_dataset("cora")
    cfg = check_config(config("toy", workers=2, epochs=5))
    ranks = run_spmd(train_rank_with, 2, ([toy_module], cfg.as_dict(), graph, True))
    ref_losses, ref_params = run_reference(cfg, graph)
    result = compare([e["loss"] for e in ranks[0]["epochs"]], ranks[0]["params"], ref_losses, ref_params)
    assert result.passed, result.summary()
    assert set(ranks[0]["params"]) == set(ref_params)
    calls = sum(e["comm"]["grad/allreduce"]["calls"] for e in ranks[0]["epochs"])
    assert calls == 5  # one data-parallel gradient all-reduce per epoch
