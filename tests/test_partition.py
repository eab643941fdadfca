"""Graph-partition strategy: partitioners and cache, the local view, exactness, bytes per tag, staleness.

    .venv/bin/python -m pytest -q tests/test_partition.py        (GRAPHPAR_FULL_TESTS=1 adds the slow tier)

Spawning P gloo processes costs more than training these graphs, so each world size trains a batch of
configurations in one set of processes (``train_batch``) and the tests compare the batch's results
with the single-process DGL reference the way ``check_local`` does.
"""
from __future__ import annotations

import sys
from dataclasses import replace

import pytest
import torch
from helpers import one_thread, train_batch

from graphpar.bench.check import check_config, compare, run_reference
from graphpar.bench.runtime.loop import train_local
from graphpar.strategies import ConfigError, TrainConfig, get_strategy
from graphpar.strategies.kernels import make_aggregator
from graphpar.strategies.models import ModelSpec, aggregation_edges
from graphpar.strategies.partitioning.halo import build_all_views, build_local_view
from graphpar.strategies.partitioning.partitioner import (
    cache_path,
    compute_partition,
    partition,
    partition_graph,
    partition_stats,
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield




def cfg_for(graph, model: str, workers: int, method: str = "metis", epochs: int = 4, **kw) -> TrainConfig:
    opts = {"partition": method, **kw.pop("options", {})}
    return check_config(TrainConfig(strategy="partition", dataset=graph.name, model=model, layers=3, hidden=12,
                                    epochs=epochs, workers=workers, options=opts, timeout_s=60, **kw))


def assert_exact(cfg: TrainConfig, ranks: list[dict], graph) -> None:
    ref_losses, ref_params = run_reference(cfg, graph)
    result = compare([e["loss"] for e in ranks[0]["epochs"]], ranks[0]["params"], ref_losses, ref_params)
    assert result.passed, f"{cfg.model} P={cfg.workers} {cfg.options}: {result.summary()}"


def expected_sent_bytes(graph, part_id: torch.Tensor, cfg: TrainConfig, rank: int) -> dict[str, int]:
    """The volume formula, from the partition alone (plain Python sets, independent of halo.py)."""
    n = graph.num_nodes
    spec = cfg.model_spec(graph.num_features, graph.num_classes)
    owner = part_id.tolist()
    needed = {(d_p, s) for s, d_p in zip(graph.src.tolist(), (owner[d] for d in graph.dst.tolist()))
              if owner[s] != d_p}  # (receiving part, remote source vertex); self-loops never cross
    send_rows = sum(1 for q, s in needed if owner[s] == rank)
    recv_rows = sum(1 for q, s in needed if q == rank)
    out = {}
    for i in range(spec.layers):  # exact path: a layer whose weight shrinks the width sends z = h W both ways
        d_in, d_out = spec.dims[i], spec.dims[i + 1]
        if int(cfg.options.get("stale", 1)) == 1 and d_in > d_out:
            out[f"layer{i}/halo/fwd"], out[f"layer{i}/halo/bwd"] = send_rows * d_out * 4, recv_rows * d_out * 4
        else:  # the layer input forward, its gradient back (none for the input features)
            out[f"layer{i}/halo/fwd"] = send_rows * d_in * 4
            if i > 0:
                out[f"layer{i}/halo/bwd"] = recv_rows * d_in * 4
    n_params = sum(spec.dims[i] * spec.dims[i + 1] * (2 if spec.kind == "sage" else 1) + spec.dims[i + 1]
                   for i in range(spec.layers))
    out["grad/allreduce"] = n_params * 4
    out["loss/allreduce"] = 8
    assert n > 0
    return out


# -- partitioners, cache, stats (no processes) ----------------------------------------------------
@pytest.mark.parametrize("method", ["metis", "random", "contiguous"])
def test_partitioners_cover_every_vertex_and_balance(cora, method):
    part = compute_partition(cora.src, cora.dst, cora.num_nodes, 4, method).part_id
    assert part.shape == (cora.num_nodes,) and part.dtype == torch.int64
    sizes = torch.bincount(part, minlength=4)
    assert int(part.min()) == 0 and int(part.max()) == 3
    assert float(sizes.max()) / float(sizes.float().mean()) < 1.1, sizes.tolist()


def test_metis_cuts_fewer_edges_than_random(cora):
    cut = {m: partition_stats(cora.src, cora.dst, partition_graph(cora, 4, m), 4)["edge_cut"]
           for m in ("metis", "random")}
    assert cut["metis"] < 0.5 * cut["random"], cut


def test_metis_is_cached_on_disk(cora):
    path = cache_path(cora.content_hash(), 3, "metis")
    path.unlink(missing_ok=True)
    first = partition(cora, 3, "metis")
    assert not first.cached and path.exists() and first.partition_s > 0
    again = partition(cora, 3, "metis")
    assert again.cached and torch.equal(again.part_id, first.part_id)
    assert again.partition_s == first.partition_s  # the original computation's cost travels with it


def test_partition_stats_by_brute_force(small_directed):
    g, part = small_directed, partition_graph(small_directed, 3, "random")
    st = partition_stats(g.src, g.dst, part, 3)
    pairs = {(int(part[d]), int(s)) for s, d in zip(g.src.tolist(), g.dst.tolist()) if part[s] != part[d]}
    assert st["edge_cut"] == sum(int(part[s] != part[d]) for s, d in zip(g.src.tolist(), g.dst.tolist()))
    assert st["halo_vertices"] == [sum(1 for q, _ in pairs if q == r) for r in range(3)]
    assert st["replication_factor"] == pytest.approx((g.num_nodes + len(pairs)) / g.num_nodes)


# -- the local view (no processes) ------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gcn", "sage"])
def test_local_views_reproduce_global_aggregation(small_directed, kind):
    """Exchanging rows by the send lists fills every halo exactly, and local aggregation equals global."""
    g, p = small_directed, 3
    part = compute_partition(g.src, g.dst, g.num_nodes, p, "contiguous").part_id
    views = build_all_views(g, part, kind, p)
    x = torch.randn(g.num_nodes, 5)
    s, d, w = aggregation_edges(ModelSpec.build(kind, 1, 1, 1, 1), g.src, g.dst, g.num_nodes)
    full = make_aggregator(s, d, w, g.num_nodes, g.num_nodes, "torch")(x)
    no_in_edges = 0
    for v in views:
        rows = [views[q].owned[views[q].send_idx[sum(views[q].send_counts[:v.rank]):
                                                 sum(views[q].send_counts[:v.rank + 1])]] for q in range(p)]
        assert torch.equal(torch.cat(rows), v.halo), f"rank {v.rank}: received rows are not its halo"
        assert v.recv_counts == [len(r) for r in rows] and v.send_counts[v.rank] == 0
        local = make_aggregator(v.src, v.dst, v.weight, v.num_local, v.num_owned, "torch")
        assert torch.allclose(local(x[torch.cat([v.owned, v.halo])]), full[v.owned], atol=1e-6)
        no_in_edges += int((torch.bincount(v.dst, minlength=v.num_owned) == 0).sum())
    assert kind == "gcn" or no_in_edges > 0  # the graph exercises owned vertices without in-edges
    assert build_local_view(g, part, 1, kind).send_counts == views[1].send_counts


def test_random_and_contiguous_paths_need_no_dgl(small_directed, monkeypatch):
    monkeypatch.setitem(sys.modules, "dgl", None)  # any `import dgl` now raises ImportError
    part = partition(small_directed, 2, "random").part_id
    view = build_local_view(small_directed, part, 0, "gcn", 2)
    assert view.aggregator("torch")(torch.ones(view.num_local, 2)).shape == (view.num_owned, 2)


def test_validate_rejects_bad_options():
    cls = get_strategy("partition")
    summary = {"nodes": 100}
    for opts, words in [({"stale": 0}, "--stale"), ({"partition": "spectral"}, "--partition"),
                        ({"stale": 4, "stale_bound": -1.0}, "--stale-bound")]:
        with pytest.raises(ConfigError, match=words):
            cls.validate(TrainConfig(strategy="partition", dataset="x", workers=2, options=opts), summary)
    with pytest.raises(ConfigError, match="--model"):
        cls.validate(TrainConfig(strategy="partition", dataset="x", workers=2, model="decoupled"), summary)


# -- multi-process: exact, bytes per tag, staleness ---------------------------------------------------
def stale_cfg(graph, workers: int, stale: int = 4) -> TrainConfig:
    """The reference's default training (gcn, 200 epochs, dropout 0.5) with a stale halo."""
    return TrainConfig(strategy="partition", dataset=graph.name, workers=workers, epochs=200, timeout_s=120,
                       options={"stale": stale})


@pytest.fixture(scope="module")
def two_workers(cora, small_directed):
    """P=2 in one set of processes: gcn and sage on Cora (METIS) and on the directed R-MAT graph
    (contiguous), a short fixed-K stale run for the byte counts, 200 bounded stale epochs on Cora for accuracy,
    and short bounded runs: a bound nothing passes, a bound nothing reaches, and their exact twin."""
    short = dict(epochs=5, lr=0.05)
    cfgs = [cfg_for(cora, "gcn", 2), cfg_for(cora, "sage", 2), cfg_for(small_directed, "gcn", 2, "contiguous"),
            cfg_for(small_directed, "sage", 2, "contiguous"),
            cfg_for(small_directed, "gcn", 2, "random", epochs=5, options={"stale": 2, "stale_bound": 0}),
            stale_cfg(cora, 2),
            cfg_for(small_directed, "gcn", 2, "random", **short, options={"stale": 4, "stale_bound": 1e-9}),
            cfg_for(small_directed, "gcn", 2, "random", **short, options={"stale": 2, "stale_bound": 1e9}),
            cfg_for(small_directed, "gcn", 2, "random", **short)]
    return cfgs, train_batch(cfgs, [cora, small_directed])


@pytest.mark.parametrize("i", range(4))
def test_exact_against_reference_p2(two_workers, cora, small_directed, i):
    cfgs, results = two_workers
    assert_exact(cfgs[i], results[i], cora if cfgs[i].dataset == cora.name else small_directed)


@pytest.mark.parametrize("i", range(4))
def test_bytes_per_tag_equal_the_formula(two_workers, cora, small_directed, i):
    cfgs, results = two_workers
    cfg = cfgs[i]
    graph = cora if cfg.dataset == cora.name else small_directed
    part_id = partition_graph(graph, cfg.workers, cfg.options["partition"])
    for rank, res in enumerate(results[i]):
        want = expected_sent_bytes(graph, part_id, cfg, rank)
        for ep in res["epochs"]:
            got = {tag: st["sent_bytes"] for tag, st in ep["comm"].items()}
            assert got == want, f"rank {rank} epoch {ep['epoch']}"
        assert res["exchange_bytes_per_epoch"] == sum(v for k, v in want.items() if "/halo/" in k)
        assert res["local_vertices"] == int((part_id == rank).sum())
    info = results[i][0]["info"]
    assert info["edge_cut"] == int((part_id[graph.src] != part_id[graph.dst]).sum())
    assert info["analytic_bytes_per_epoch"] == sum(res["epochs"][0]["sent_bytes"] for res in results[i])


def test_stale_epochs_skip_the_exchange_and_count_the_savings(two_workers):
    cfgs, results = two_workers
    for res in results[4]:
        halo = [sum(st["sent_bytes"] for t, st in ep["comm"].items() if "/halo/" in t) for ep in res["epochs"]]
        assert halo[1] == halo[3] == 0 and halo[0] == halo[2] == halo[4] == res["exchange_bytes_per_epoch"] > 0
        assert res["stale_epochs"] == 2 and res["stale_saved_bytes"] == 2 * res["exchange_bytes_per_epoch"]
        st = res["staleness"]  # epochs 1 and 3 of 5 read every halo row from history, in every layer
        assert st["stale_read_share"] == pytest.approx(2 / 5 * res["halo_vertices"] / (res["halo_vertices"]
                                                                                    + res["local_vertices"]))
        assert st["max_drift"] > 0 and st["diverged"] is False
        assert st["bound"] == 0 and st["forced_refreshes"] == 0 and st["stale_saved_bytes"] == res["stale_saved_bytes"]
        assert "stale/drift" not in res["epochs"][1]["comm"]  # fixed K measures nothing on the wire
    assert "staleness" not in results[0][0] and "staleness" not in results[0][0]["info"]  # exact: no monitor


def _halo_sent(res: dict, layer: int) -> list[int]:
    return [sum(st["sent_bytes"] for t, st in ep["comm"].items() if t.startswith(f"layer{layer}/halo/"))
            for ep in res["epochs"]]


def test_a_bound_nothing_passes_refreshes_every_moving_layer_and_trains_exactly(two_workers, small_directed):
    """Bound ~0: every layer whose rows moved refreshes each epoch (forced), the input features' layer never
    re-sends its constant rows: the losses are the exact run's, and the record says how often it refreshed."""
    cfgs, results = two_workers
    exact = [e["loss"] for e in results[8][0]["epochs"]]
    assert [e["loss"] for e in results[6][0]["epochs"]] == pytest.approx(exact, rel=1e-5)
    for res in results[6]:
        assert _halo_sent(res, 0)[1:] == [0] * 4 and _halo_sent(res, 0)[0] > 0  # features: sent once
        for layer in (1, 2):
            assert all(b > 0 for b in _halo_sent(res, layer))
        st = res["staleness"]
        assert st["forced_refreshes"] == 2 * 4 and st["refreshed_layer_epochs"] == 1 + 2 * 5
        assert st["stale_layer_epochs"] == 4 and res["stale_epochs"] == 0
        drift_bytes = [ep["comm"].get("stale/drift", {}).get("sent_bytes", 0) for ep in res["epochs"]]
        assert drift_bytes == [0] + [3 * 4] * 4  # one float32 per layer and epoch, counted
        assert st["halo_sent_bytes"] == sum(sum(_halo_sent(res, i)) for i in range(3))
        assert st["saved_vs_exact_bytes"] == st["exact_halo_bytes"] - st["halo_sent_bytes"]
        assert st["drift_flagged"] and "forced 8 refreshes" in st["drift_flag_reason"]


def test_a_bound_nothing_reaches_refreshes_every_k_epochs(two_workers):
    """Bound ~inf: the moving layers refresh on the cap (epochs 0, 2, 4 with K=2), none is forced; the
    features' layer still only once."""
    cfgs, results = two_workers
    for res in results[7]:
        assert _halo_sent(res, 0)[1:] == [0] * 4
        for layer in (1, 2):
            sent = _halo_sent(res, layer)
            assert sent[1] == sent[3] == 0 and sent[0] == sent[2] == sent[4] > 0
        st = res["staleness"]
        assert st["forced_refreshes"] == 0 and not st["drift_flagged"] and res["stale_epochs"] == 2
        assert st["stale_saved_bytes"] == res["stale_saved_bytes"] > 0


def test_exact_p3_on_directed_graph(small_directed):
    cfgs = [cfg_for(small_directed, m, 3, "random", epochs=3) for m in ("gcn", "sage")]
    for cfg, ranks in zip(cfgs, train_batch(cfgs, [small_directed])):
        assert_exact(cfg, ranks, small_directed)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [2, 3, 4])
def test_exact_full_matrix(cora, small_directed, workers):
    graphs = [cora, small_directed]
    cfgs = [cfg_for(g, m, workers, method, epochs=5) for g in graphs for m in ("gcn", "sage")
            for method in ("metis", "random", "contiguous")]
    for cfg, ranks in zip(cfgs, train_batch(cfgs, graphs)):
        assert_exact(cfg, ranks, cora if cfg.dataset == cora.name else small_directed)


def reference_test_accuracy(cfg: TrainConfig, graph) -> float:
    ref = replace(cfg, strategy="single", workers=1, options={"single_impl": "dgl"})
    return train_local(ref, graph, keep_params=False)[0]["accuracy"]["test_acc"]


def test_stale_accuracy_on_cora(two_workers, cora):
    cfgs, results = two_workers
    ours = results[5][0]["accuracy"]["test_acc"]
    gap = abs(ours - reference_test_accuracy(cfgs[5], cora)) * 100
    assert gap <= 1.5, f"--stale 4 on Cora: test accuracy {ours:.3f} is {gap:.2f} points from the reference"
    st = results[5][0]["staleness"]  # bounded (the default): features sent once, the hidden layer at most every 4
    assert st["bound"] > 0 and st["refreshed_layer_epochs"] + st["stale_layer_epochs"] == 2 * 200
    assert 50 <= st["refreshed_layer_epochs"] - 1 <= 50 + st["forced_refreshes"]


@pytest.mark.slow
def test_stale_accuracy_on_coauthor_cs():
    from graphpar.datasets import load_dataset

    graph = load_dataset("coauthor-cs")
    cfg = stale_cfg(graph, 2)  # 2 ranks: each rank holds the 0.5 GB feature matrix while it builds its view
    ours = train_local(cfg, graph, keep_params=False)[0]["accuracy"]["test_acc"]
    gap = abs(ours - reference_test_accuracy(cfg, graph)) * 100
    assert gap <= 1.5, f"--stale 4 on Coauthor-CS: test accuracy {ours:.3f} is {gap:.2f} points from the reference"


# -- the partition rank's memory-lean ops: the same bits as the plain ones -----------------------------
def test_relu_dropout_in_place_is_relu_then_dropout():
    """``activate_dropout`` (relu and the next layer's dropout in place, one bool mask saved) gives dropout's
    values, draws the same random numbers and gives the same gradient as ``F.relu`` then ``F.dropout``."""
    from graphpar.strategies.models import activate, activate_dropout, dropout
    spec = replace(ModelSpec.build("gcn", 8, 16, 4, 2), dropout=0.5)
    gen = torch.Generator().manual_seed(0)
    x, seed = torch.randn(500, 16, generator=gen), torch.randn(500, 16, generator=gen)
    runs = []
    for fused in (False, True):
        w = torch.randn(16, 16, generator=torch.Generator().manual_seed(1), requires_grad=True)
        torch.manual_seed(7)
        z = x @ w
        h = activate_dropout(spec, 0, z, x, True) if fused else dropout(spec, 1, activate(spec, 0, z, x), True)
        runs.append((h.detach(), torch.autograd.grad((h * seed).sum(), w)[0], torch.rand(3)))
    for a, b in zip(*runs):
        assert torch.equal(a, b)


@pytest.mark.parametrize("rows,block", [(1000, 1 << 16), (1000, 64), (0, 8)])
def test_linear_rows_loss_is_the_loss_of_the_logits(rows, block):
    """``linear_rows_loss`` (output weight, bias and cross-entropy by blocks of rows, saving only the input
    rows): ``rows_loss``'s loss and gradients bit for bit in one block, equal up to rounding in several."""
    from graphpar.strategies.training import linear_rows_loss, rows_loss
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(rows, 16, generator=gen, requires_grad=True)
    w = torch.randn(16, 47, generator=gen, requires_grad=True)
    b = torch.randn(47, generator=gen, requires_grad=True)
    label = torch.randint(0, 47, (rows,), generator=gen)
    want = rows_loss((h @ w).add_(b), label, 3000)
    got = linear_rows_loss(h, w, b, label, 3000, block)
    assert got.item() == want.item() if block >= rows else got.item() == pytest.approx(want.item(), rel=1e-6)
    for a, c in zip(torch.autograd.grad(want, (h, w, b)), torch.autograd.grad(got, (h, w, b))):
        assert torch.equal(a, c) if block >= rows else torch.allclose(a, c, rtol=1e-5, atol=1e-7)
