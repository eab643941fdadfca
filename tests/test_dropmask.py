"""Keyed dropout masks (``--dropout-masks keyed``): a function of (seed, epoch, layer, vertex, column), so a
row gets the same mask wherever a strategy computes it, and exact strategies match the reference with dropout on."""
from __future__ import annotations

import pytest
import torch

from graphpar.strategies import dropmask
from graphpar.strategies.models import ModelSpec, dropout


@pytest.fixture(autouse=True)
def epoch_zero():
    dropmask.begin_epoch(seed=3, epoch=0, num_nodes=1000)


def test_noise_is_bernoulli_scaled_and_keeps_one_minus_p():
    noise = dropmask.keyed_noise(0.3, 1, None, 1000, 64)
    values = noise.unique().tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / 0.7)
    assert abs(float((noise > 0).float().mean()) - 0.7) < 0.01  # 64K draws: std 0.0018
    # columns and rows independent enough: no row or column is all kept or all dropped
    assert bool(((noise > 0).float().mean(1) < 1).all()) and bool(((noise > 0).float().mean(0) > 0.5).all())


def test_a_row_gets_its_mask_wherever_it_is_computed():
    """Any subset of rows, in any order, and any column slice read the whole graph's mask at those entries."""
    whole = dropmask.keyed_noise(0.5, 2, None, 1000, 16)
    rows = torch.tensor([999, 3, 500, 4])
    assert torch.equal(dropmask.keyed_noise(0.5, 2, rows, 4, 16), whole[rows])
    assert torch.equal(dropmask.keyed_noise(0.5, 2, rows, 4, 6, first_col=10), whole[rows][:, 10:16])


def test_masks_change_with_epoch_layer_and_seed():
    base = dropmask.keyed_noise(0.5, 1, None, 1000, 16)
    assert not torch.equal(base, dropmask.keyed_noise(0.5, 2, None, 1000, 16))
    dropmask.begin_epoch(seed=3, epoch=1, num_nodes=1000)
    assert not torch.equal(base, dropmask.keyed_noise(0.5, 1, None, 1000, 16))
    dropmask.begin_epoch(seed=4, epoch=0, num_nodes=1000)
    other = dropmask.keyed_noise(0.5, 1, None, 1000, 16)
    assert not torch.equal(base, other) and 0.4 < float(((base > 0) == (other > 0)).float().mean()) < 0.6
    dropmask.begin_epoch(seed=3, epoch=0, num_nodes=1000)
    assert torch.equal(base, dropmask.keyed_noise(0.5, 1, None, 1000, 16))


def test_rows_of_part_of_the_graph_must_be_named():
    with pytest.raises(RuntimeError, match="vertex ids"):
        dropmask.keyed_noise(0.5, 1, None, 10, 16)


def test_model_dropout_uses_the_keyed_noise_and_its_gradient():
    spec = ModelSpec.build("gcn", 8, 16, 4, 2, dropout=0.5, dropout_masks="keyed")
    h = torch.randn(1000, 16, requires_grad=True)
    out = dropout(spec, 1, h, True)
    noise = dropmask.keyed_noise(0.5, 1, None, 1000, 16)
    assert torch.equal(out, h * noise)
    out.sum().backward()
    assert torch.equal(h.grad, noise)
    assert dropout(spec, 1, h, False) is h and dropout(spec, 0, h, True) is h


@pytest.mark.parametrize("strategy,options,workers,layers", [
    ("partition", {}, 2, 2),
    ("pipeline", {"staleness": 0}, 4, 4),
    ("pipeline", {"staleness": 0, "graph_parts": 2}, 4, 4),
    ("tensor", {}, 2, 2),
])
def test_exact_strategies_match_the_reference_with_dropout_on(cora, strategy, options, workers, layers):
    """Dropout 0.5: ``check`` (keyed masks) finds the exact strategies' losses and weights equal to the
    reference's; with the default per-rank 'stream' masks they differ."""
    from dataclasses import replace

    from graphpar.bench.check import check_local, compare, run_reference
    from graphpar.bench.runtime.loop import train_local
    from tests.helpers import config

    cfg = config(strategy, workers=workers, layers=layers, epochs=8, dropout=0.5, options=options)
    result = check_local(cfg, cora)
    assert result.passed and result.loss_rel_diff < 1e-5, result.summary()
    streamed = replace(cfg, dropout_masks="stream")
    ranks = train_local(streamed, cora, keep_params=True)
    assert compare([e["loss"] for e in ranks[0]["epochs"]], ranks[0]["params"], *run_reference(streamed, cora)
                   ).loss_rel_diff > 1e-3
