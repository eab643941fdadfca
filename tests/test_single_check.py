"""The reference itself: GCN accuracy on Cora, and the torch twin equals the DGL layers."""
import pytest

from graphpar.bench.check import check_local
from graphpar.strategies import TrainConfig


def test_gcn_on_cora_reaches_published_accuracy(cora):
    from graphpar.bench.runtime.loop import train_local

    cfg = TrainConfig(strategy="single", dataset="cora", epochs=200, options={"single_impl": "dgl"})
    acc = train_local(cfg, cora, keep_params=False)[0]["accuracy"]["test_acc"]
    assert 0.79 <= acc <= 0.84, f"GCN on Cora: {acc:.3f} test accuracy, literature reports ~0.815"


@pytest.mark.parametrize("model", ["gcn", "sage", "decoupled"])
def test_twin_equals_dgl_reference(cora, small_directed, model):
    for graph in (cora, small_directed):
        cfg = TrainConfig(strategy="single", dataset=graph.name, model=model, layers=3, hidden=12, epochs=5,
                          options={"single_impl": "twin"}, kernel="torch")
        result = check_local(cfg, graph)
        assert result.passed, result.summary()
