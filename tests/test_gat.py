"""``gat``: the torch twin's attention layer against dgl.nn.GATConv (forward and gradients), its pieces
(partial logits of column slices, blocks), the single-process twin against the DGL reference, the settings.

    .venv/bin/python -m pytest -q tests/test_gat.py
"""
from __future__ import annotations

import math

import pytest
import torch
from helpers import one_thread, train_batch

from graphpar.bench.check import check_config, check_local, compare, run_reference
from graphpar.strategies import ConfigError, TrainConfig, attention
from graphpar.strategies.kernels import make_aggregator
from graphpar.strategies.models import ModelSpec, aggregation_edges, conv_layer, init_params
from graphpar.strategies.partitioning.partitioner import partition_graph


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield


def dgl_layer(spec: ModelSpec, params: dict, i: int):
    from dgl.nn import GATConv

    heads, width = spec.gat_shape(i)
    layer = GATConv(spec.dims[i], width, heads)
    layer.load_state_dict({k.split(".", 2)[2]: v for k, v in params.items() if k.startswith(f"layers.{i}.")})
    return layer


@pytest.mark.parametrize("i", [0, 1])
def test_layer_equals_gatconv_forward_and_gradients(small_directed, i):
    import dgl

    g = small_directed
    spec = ModelSpec.build("gat", g.num_features, 12, g.num_classes, 2, heads=3, out_heads=2)
    params = {k: v.requires_grad_(True) for k, v in init_params(spec, 5).items()}
    params[f"layers.{i}.bias"].data.uniform_(-1, 1)  # a bias that is not zero must be added too
    x = torch.randn(g.num_nodes, spec.dims[i], generator=torch.Generator().manual_seed(1), requires_grad=True)
    s, d, w = aggregation_edges(spec, g.src, g.dst, g.num_nodes)
    agg = make_aggregator(s, d, w, g.num_nodes, g.num_nodes, "torch")
    ours = conv_layer(spec, params, i, agg, x)
    layer = dgl_layer(spec, {k: v.detach() for k, v in params.items()}, i)
    xr = x.detach().clone().requires_grad_(True)
    ref = layer(dgl.add_self_loop(g.to_dgl()), xr)
    ref = ref.mean(1) if i == spec.layers - 1 else ref.flatten(1)
    assert ours.shape == ref.shape and torch.allclose(ours, ref, atol=1e-5, rtol=1e-4)
    seed = torch.randn(ref.shape, generator=torch.Generator().manual_seed(2))
    (ours * seed).sum().backward()
    (ref * seed).sum().backward()
    assert torch.allclose(x.grad, xr.grad, atol=1e-5, rtol=1e-4)
    for name, p in params.items():
        if name.startswith(f"layers.{i}."):
            want = dict(layer.named_parameters())[name.split(".", 2)[2]].grad
            assert torch.allclose(p.grad, want, atol=1e-5, rtol=1e-4), name


def test_column_slices_sum_to_the_full_logits_and_aggregate_their_columns():
    gen = torch.Generator().manual_seed(0)
    heads, width, n = 3, 5, 40
    params = {"layers.0.attn_l": torch.randn(1, heads, width, generator=gen),
              "layers.0.attn_r": torch.randn(1, heads, width, generator=gen)}
    z = torch.randn(n, heads * width, generator=gen)
    el, er = attention.logits(params, 0, z)
    bounds = [0, 4, 9, 15]  # slices crossing head boundaries, as tensor parallelism cuts them
    parts = [attention.logits(params, 0, z[:, a:b], a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    assert torch.allclose(sum(p[0] for p in parts), el, atol=1e-5)
    assert torch.allclose(sum(p[1] for p in parts), er, atol=1e-5)
    src, dst = torch.randint(0, n, (200,), generator=gen), torch.randint(0, n, (200,), generator=gen)
    alpha = attention.edge_softmax(src, dst, n, el, er)
    full = attention.attend(src, dst, n, z, alpha, attention.column_heads(heads, width))
    for a, b in zip(bounds[:-1], bounds[1:]):
        piece = attention.attend(src, dst, n, z[:, a:b], alpha, attention.column_heads(heads, width, a, b))
        assert torch.allclose(piece, full[:, a:b])
    has_in = torch.bincount(dst, minlength=n) > 0  # softmax: each destination's weights sum to one per head
    sums = torch.zeros(n, heads).index_add(0, dst, alpha)
    assert torch.allclose(sums[has_in], torch.ones(int(has_in.sum()), heads)) and (sums[~has_in] == 0).all()


def test_destination_rows_may_come_separately(small_directed):
    """A block's (or a pipeline chunk's) destination rows passed as h_dst give the same rows, and their er
    gradient flows to h_dst."""
    g = small_directed
    spec = ModelSpec.build("gat", g.num_features, 8, g.num_classes, 2, heads=2)
    params = init_params(spec, 0)
    x = torch.randn(g.num_nodes, g.num_features, generator=torch.Generator().manual_seed(3))
    s, d, w = aggregation_edges(spec, g.src, g.dst, g.num_nodes)
    full = conv_layer(spec, params, 0, make_aggregator(s, d, w, g.num_nodes, g.num_nodes), x)
    keep = d < 100  # destinations 0..99: a bipartite block over every source row
    agg = make_aggregator(s[keep], d[keep], w[keep], g.num_nodes, 100)
    xd = x[:100].clone().requires_grad_(True)
    part = conv_layer(spec, params, 0, agg, x, xd)
    assert torch.allclose(part, full[:100], atol=1e-6)
    part.sum().backward()
    assert xd.grad is not None and xd.grad.abs().sum() > 0


@pytest.mark.parametrize("kw", [dict(layers=3, hidden=12, heads=4), dict(layers=2, hidden=9, heads=3, out_heads=2)])
def test_twin_equals_dgl_reference(cora, small_directed, kw):
    for graph in (cora, small_directed):
        cfg = TrainConfig(strategy="single", dataset=graph.name, model="gat", epochs=5,
                          options={"single_impl": "twin"}, kernel="torch", **kw)
        result = check_local(cfg, graph)
        assert result.passed, result.summary()


def test_single_gat_learns_cora(cora):
    from graphpar.bench.runtime.loop import train_local

    cfg = TrainConfig(strategy="single", dataset="cora", model="gat", hidden=32, heads=4, epochs=60, kernel="torch")
    res = train_local(cfg, cora, keep_params=False)[0]
    losses = [e["loss"] for e in res["epochs"]]
    assert losses[-1] < 0.5 * losses[0] and res["accuracy"]["test_acc"] > 0.7, (losses[-1], res["accuracy"])


def test_heads_settings_are_checked():
    ok = TrainConfig(strategy="single", model="gat", hidden=16, heads=4)
    ok.check()
    assert ok.model_spec(10, 3).gat_shape(0) == (4, 4) and ok.model_spec(10, 3).gat_shape(1) == (1, 3)
    with pytest.raises(ConfigError, match="--hidden 10 must be a multiple of --heads 4.*pass --hidden 12"):
        TrainConfig(strategy="single", model="gat", hidden=10, heads=4).check()
    with pytest.raises(ConfigError, match="--heads must be >= 1"):
        TrainConfig(strategy="single", model="gat", heads=0).check()
    TrainConfig(strategy="single", model="gcn", hidden=10, heads=4).check()  # other models ignore --heads
    assert TrainConfig(strategy="single", model="gcn", hidden=10).model_spec(5, 2).heads == 1


# -- strategies: exact against the DGL reference, counted bytes equal the formulas ---------------------
ODD = dict(layers=2, hidden=9, heads=3, out_heads=2)  # odd widths, a head boundary inside column slices
DEEP = dict(layers=3, hidden=12, heads=4, out_heads=1)


def gat_cfg(graph, strategy: str, workers: int, shape: dict, epochs: int = 3, **options) -> TrainConfig:
    return check_config(TrainConfig(strategy=strategy, dataset=graph.name, model="gat", workers=workers,
                                    epochs=epochs, timeout_s=120, options=options, **shape))


def assert_exact(cfg: TrainConfig, ranks: list[dict], graph) -> None:
    ref_losses, ref_params = run_reference(cfg, graph)
    result = compare([e["loss"] for e in ranks[0]["epochs"]], ranks[0]["params"], ref_losses, ref_params)
    assert result.passed, f"{cfg.strategy} P={cfg.workers} {cfg.options}: {result.summary()}"


def n_params(spec: ModelSpec) -> int:
    """fc (d_in x H D) + attn_l + attn_r + bias (H D each) per layer."""
    return sum((spec.dims[i] + 3) * h * w for i, (h, w) in enumerate(map(spec.gat_shape, range(spec.layers))))


def partition_sent_bytes(graph, part_id: torch.Tensor, cfg: TrainConfig, rank: int) -> dict[str, int]:
    """gat's halo formula from the partition alone (plain Python sets): (H D + H) columns per halo row,
    forward and back, every layer."""
    spec = cfg.model_spec(graph.num_features, graph.num_classes)
    owner = part_id.tolist()
    needed = {(owner[d], s) for s, d in zip(graph.src.tolist(), graph.dst.tolist()) if owner[s] != owner[d]}
    send_rows = sum(1 for q, s in needed if owner[s] == rank)
    recv_rows = sum(1 for q, s in needed if q == rank)
    out = {}
    for i in range(spec.layers):
        heads, width = spec.gat_shape(i)
        out[f"layer{i}/halo/fwd"] = send_rows * (heads * width + heads) * 4
        out[f"layer{i}/halo/bwd"] = recv_rows * (heads * width + heads) * 4
    return {**out, "grad/allreduce": n_params(spec) * 4, "loss/allreduce": 8}


@pytest.fixture(scope="module")
def partition_p2(cora, small_directed):
    cfgs = [gat_cfg(cora, "partition", 2, DEEP, partition="metis"),
            gat_cfg(small_directed, "partition", 2, ODD, partition="contiguous"),
            gat_cfg(small_directed, "partition", 2, ODD, epochs=4, partition="random", stale=2, stale_bound=0),
            gat_cfg(small_directed, "partition", 2, ODD, epochs=4, partition="random", stale=2)]
    return cfgs, train_batch(cfgs, [cora, small_directed])


@pytest.mark.parametrize("i", [0, 1])
def test_partition_exact_p2(partition_p2, cora, small_directed, i):
    cfgs, results = partition_p2
    assert_exact(cfgs[i], results[i], cora if cfgs[i].dataset == cora.name else small_directed)


@pytest.mark.parametrize("i", [0, 1])
def test_partition_bytes_equal_the_formula(partition_p2, cora, small_directed, i):
    cfgs, results = partition_p2
    cfg = cfgs[i]
    graph = cora if cfg.dataset == cora.name else small_directed
    part_id = partition_graph(graph, cfg.workers, cfg.options["partition"])
    for rank, res in enumerate(results[i]):
        want = partition_sent_bytes(graph, part_id, cfg, rank)
        for ep in res["epochs"]:
            assert {tag: st["sent_bytes"] for tag, st in ep["comm"].items()} == want, f"rank {rank}"
        assert res["exchange_bytes_per_epoch"] == sum(v for k, v in want.items() if "/halo/" in k)
    info = results[i][0]["info"]
    assert info["analytic_bytes_per_epoch"] == sum(res["epochs"][0]["sent_bytes"] for res in results[i])


def test_partition_stale_gat_skips_the_exchange(partition_p2):
    for res in partition_p2[1][2]:
        halo = [sum(st["sent_bytes"] for t, st in ep["comm"].items() if "/halo/" in t) for ep in res["epochs"]]
        assert halo[1] == halo[3] == 0 and halo[0] == halo[2] == res["exchange_bytes_per_epoch"] > 0
        assert all(math.isfinite(e["loss"]) for e in res["epochs"])


def test_partition_bounded_stale_gat_refreshes_its_projected_rows(partition_p2):
    """gat exchanges projected rows (z, el) that move every step, at layer 0 too: with the drift bound each
    layer refreshes at the latest on the cap, and every layer-epoch is either refreshed or stale."""
    cfg = partition_p2[0][3]
    for res in partition_p2[1][3]:
        st = res["staleness"]
        assert st["bound"] > 0 and st["refreshed_layer_epochs"] + st["stale_layer_epochs"] == 4 * cfg.layers
        assert st["refreshed_layer_epochs"] >= 2 * cfg.layers  # epochs 0 and 2 at least (K=2)
        assert all(math.isfinite(e["loss"]) for e in res["epochs"])


def test_partition_exact_p3(cora, small_directed):
    cfgs = [gat_cfg(cora, "partition", 3, ODD, partition="metis"),
            gat_cfg(small_directed, "partition", 3, DEEP, partition="random")]
    for cfg, ranks in zip(cfgs, train_batch(cfgs, [cora, small_directed])):
        assert_exact(cfg, ranks, cora if cfg.dataset == cora.name else small_directed)


def _block(total: int, parts: int, r: int) -> int:
    return total // parts + (r < total % parts)


def tensor_sent_bytes(graph, cfg: TrainConfig, rank: int) -> dict[str, int]:
    """tensor's gat formula: per layer a split and a gather of the H D projected columns (forward and back)
    and the all_reduce of the partial logits (N x 2H, forward and back)."""
    spec = cfg.model_spec(graph.num_features, graph.num_classes)
    N, P = graph.num_nodes, cfg.workers
    n = _block(N, P, rank)
    out = {"grad/allreduce": n_params(spec) * 4, "loss/allreduce": 8}
    for i in range(spec.layers):
        heads, width = spec.gat_shape(i)
        c = _block(heads * width, P, rank)
        split, gath = 4 * n * (heads * width - c), 4 * (N - n) * c
        out |= {f"layer{i}/split/fwd": split, f"layer{i}/split/bwd": gath, f"layer{i}/gather/fwd": gath,
                f"layer{i}/gather/bwd": split, f"layer{i}/logits/fwd": 4 * N * 2 * heads,
                f"layer{i}/logits/bwd": 4 * N * 2 * heads}
    return out


@pytest.mark.parametrize("workers", [2, 3])
def test_tensor_exact_and_bytes_equal_the_formula(cora, small_directed, workers):
    cfgs = [gat_cfg(cora, "tensor", workers, DEEP if workers == 2 else ODD),
            gat_cfg(small_directed, "tensor", workers, ODD if workers == 2 else DEEP)]
    for cfg, ranks in zip(cfgs, train_batch(cfgs, [cora, small_directed])):
        graph = cora if cfg.dataset == cora.name else small_directed
        assert_exact(cfg, ranks, graph)
        for res in ranks:
            want = tensor_sent_bytes(graph, cfg, res["rank"])
            for ep in res["epochs"]:
                assert {t: s["sent_bytes"] for t, s in ep["comm"].items()} == want, f"rank {res['rank']}"


def test_tensor_rejects_row_blocks_for_gat():
    from graphpar.strategies import get_strategy

    summary = {"nodes": 100, "edges": 400, "features": 8, "classes": 3}
    cfg = TrainConfig(strategy="tensor", dataset="x", workers=2, model="gat", options={"tp_chunks": 2})
    with pytest.raises(ConfigError, match="--model gat streams no row blocks.*pass --tp-chunks 1"):
        get_strategy("tensor").validate(cfg, summary)


# -- pipeline: exact at --staleness 0 (plain and hybrid), historical embeddings train ------------------
def test_pipeline_exact_p2_and_stale_trains(cora, small_directed):
    stale = TrainConfig(strategy="pipeline", dataset=cora.name, model="gat", workers=2, epochs=30, dropout=0.0,
                        hidden=16, heads=4, timeout_s=120, options={"pipe_chunks": 4, "pipe_warmup": 1})
    cfgs = [gat_cfg(cora, "pipeline", 2, DEEP, staleness=0), gat_cfg(small_directed, "pipeline", 2, ODD, staleness=0),
            stale]
    results = train_batch(cfgs, [cora, small_directed])
    for cfg, ranks in zip(cfgs[:2], results):
        graph = cora if cfg.dataset == cora.name else small_directed
        assert_exact(cfg, ranks, graph)
        cut = sum(st["sent_bytes"] for r in ranks for t, st in r["epochs"][0]["comm"].items() if t.startswith("pipe/cut"))
        assert cut == ranks[0]["info"]["cut_bytes_per_epoch"] > 0
    losses = [e["loss"] for e in results[2][0]["epochs"]]  # 4 chunks, last epoch's rows for later chunks
    ref = run_reference(stale, cora)[0]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 0.75 * losses[0], losses
    assert abs(losses[-1] - ref[-1]) < 0.1 * (ref[0] - ref[-1]), (losses[-1], ref[-1])  # it follows the reference
    st = results[2][1]["staleness"]  # stage 1's layer reads other chunks' rows of the previous epoch
    assert st["stale_read_share"] > 0 and not st["diverged"]


def test_pipeline_exact_p3_and_hybrid(small_directed):
    """P=3 on the directed graph (Cora's 3 stages: ``graphpar check``, README), and the P=4 = 2 x 2 hybrid."""
    plain = gat_cfg(small_directed, "pipeline", 3, DEEP, staleness=0)
    assert_exact(plain, train_batch([plain], [small_directed])[0], small_directed)
    hybrid = gat_cfg(small_directed, "pipeline", 4, ODD, staleness=0, graph_parts=2, pipe_partition="random")
    ranks = train_batch([hybrid], [small_directed])[0]
    assert_exact(hybrid, ranks, small_directed)
    halo = sum(st["sent_bytes"] for r in ranks for t, st in r["epochs"][0]["comm"].items() if "/halo/" in t)
    assert halo == ranks[0]["info"]["halo_bytes_per_epoch"] > 0


# -- sampling: full fanout and one batch is the reference step ------------------------------------------
@pytest.mark.parametrize("workers", [2, 3])
def test_sampling_exact_and_bytes_equal_the_formula(cora, small_directed, workers):
    from test_sampling import brute_force_traffic, formula_bytes

    from graphpar.strategies import get_strategy

    exact = get_strategy("sampling").exact_options()
    cfgs = [gat_cfg(cora, "sampling", workers, ODD, partition="metis", **exact),
            gat_cfg(small_directed, "sampling", workers, ODD, partition="random", **exact)]
    if workers == 2:  # sampled: 4 and 3 in-neighbours (+ the self-loop), batches of 16
        cfgs.append(TrainConfig(strategy="sampling", dataset=cora.name, model="gat", workers=2, epochs=3,
                                timeout_s=120, options={"fanouts": "4,3", "batch_size": 16}, **ODD))
    results = train_batch(cfgs, [cora, small_directed])
    for cfg, ranks in zip(cfgs[:2], results):
        graph = cora if cfg.dataset == cora.name else small_directed
        assert_exact(cfg, ranks, graph)
        spec = cfg.model_spec(graph.num_features, graph.num_classes)
        part_id = partition_graph(graph, cfg.workers, cfg.options["partition"])
        expected = brute_force_traffic(graph, part_id, spec.layers, cfg.workers)
        for rank, res in enumerate(ranks):
            want = formula_bytes(expected[rank], spec.layers, cfg.workers, graph.num_features, n_params(spec))
            for ep in res["epochs"]:
                assert {t: s["sent_bytes"] for t, s in ep["comm"].items()} == want, f"rank {rank}"
    if workers == 2:
        losses = [e["loss"] for e in results[2][0]["epochs"]]
        assert all(math.isfinite(v) for v in losses) and results[2][0]["steps_per_epoch"] > 1


def test_heads_leave_other_models_config_keys_alone():
    from graphpar.bench.metrics import config_key

    gcn = TrainConfig(strategy="single", model="gcn").as_dict()
    before = {k: v for k, v in gcn.items() if k not in ("heads", "out_heads")}  # a record written before --heads
    assert config_key(gcn) == config_key(before) == config_key({**gcn, "heads": 8})
    gat = TrainConfig(strategy="single", model="gat").as_dict()
    assert config_key(gat) != config_key({**gat, "heads": 8})
