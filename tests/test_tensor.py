"""The tensor-parallel strategy: layouts, chunking, exactness against the reference, exact byte counts.

    .venv/bin/python -m pytest -q tests/test_tensor.py          (GRAPHPAR_FULL_TESTS=1 for the whole matrix)
"""
from __future__ import annotations

import pytest
import torch

from graphpar.bench.check import check_config, check_local, compare, run_reference
from graphpar.bench.runtime.loop import train_local, train_rank
from graphpar.bench.runtime.spmd import run_spmd
from graphpar.strategies import ConfigError, TrainConfig, get_strategy
from graphpar.strategies.kernels import CSRMatrix, spmm
from graphpar.strategies.models import aggregation_edges, init_params
from graphpar.strategies.tensor.chunks import ChunkedAdjacency, choose_chunks, chunk_bounds, minimum_budget
from graphpar.strategies.tensor.layout import Layout, pack_split, unpack_gather, unpack_split


def _block(total: int, parts: int, r: int) -> int:
    """Independent formula for a balanced block size (the test does not trust Layout for this)."""
    return total // parts + (r < total % parts)


def _emulate_all_to_all(bufs: list[torch.Tensor], sends: list[list[int]]) -> list[torch.Tensor]:
    """What every rank receives when rank r sends bufs[r] split by sends[r] (rank order)."""
    pieces = [torch.split(b, s) for b, s in zip(bufs, sends)]
    return [torch.cat([pieces[q][r] for q in range(len(bufs))]) for r in range(len(bufs))]


@pytest.mark.parametrize("n,width,P", [(10, 7, 3), (11, 5, 4), (7, 3, 2), (5, 2, 4)])
def test_split_and_gather_are_inverse_layout_changes(n, width, P):
    x = torch.randn(n, width)
    lays = [Layout(n, P, r) for r in range(P)]
    rows = [x[slice(*lay.row_range())] for lay in lays]
    sent = _emulate_all_to_all([pack_split(lay, h) for lay, h in zip(lays, rows)],
                               [lay.split_sizes(width)[0] for lay in lays])
    slices = [unpack_split(lay, f, width) for lay, f in zip(lays, sent)]
    for lay, s in zip(lays, slices):
        assert torch.equal(s, x[:, slice(*lay.col_range(width))])  # uneven widths, no padding
    back = _emulate_all_to_all([s.reshape(-1) for s in slices], [lay.split_sizes(width)[1] for lay in lays])
    for lay, f, h in zip(lays, back, rows):
        assert torch.equal(unpack_gather(lay, f, width, lay.row_count()), h)


def _matrix(graph, model="decoupled"):
    spec = TrainConfig(strategy="tensor", dataset=graph.name, model=model).model_spec(graph.num_features,
                                                                                        graph.num_classes)
    s, d, w = aggregation_edges(spec, graph.src, graph.dst, graph.num_nodes)
    return CSRMatrix(s, d, w, graph.num_nodes, graph.num_nodes)


@pytest.mark.parametrize("chunks", [1, 2, 7, 300])
def test_chunked_aggregation_equals_whole_matrix_both_directions(small_directed, chunks):
    m = _matrix(small_directed, "sage")
    adj = ChunkedAdjacency(m, chunks, torch.device("cpu"))
    x = torch.randn(small_directed.num_nodes, 3, requires_grad=True)
    ref = spmm(m, x)
    g = torch.randn_like(ref)
    (ref_grad,) = torch.autograd.grad(ref, x, g)
    assert torch.allclose(adj.matmul(x.detach()), ref.detach(), rtol=0, atol=1e-6)
    assert torch.allclose(adj.matmul(g, transpose=True), ref_grad, rtol=0, atol=1e-6)  # Âᵀ: directed graph


def test_chunk_bounds_cover_rows_and_balance_edges(cora):
    crow = _matrix(cora).fwd.crow_indices()
    b = chunk_bounds(crow, 4)
    assert b[0] == 0 and b[-1] == cora.num_nodes and len(b) == 5 and b == sorted(set(b))
    nnz = [int(crow[hi] - crow[lo]) for lo, hi in zip(b[:-1], b[1:])]
    max_degree, target = int((crow[1:] - crow[:-1]).max()), int(crow[-1]) / 4
    assert all(abs(k - target) < max_degree for k in nnz)  # each cut lands within one row of nnz/K


def test_memory_budget_picks_smallest_fitting_chunk_count(cora):
    m, dense = _matrix(cora), 1000
    k = choose_chunks(m, dense, dense + m.nbytes() // 3)
    assert k is not None and k > 1
    adj = ChunkedAdjacency(m, k, torch.device("cpu"))
    assert dense + adj.adjacency_device_bytes() <= dense + m.nbytes() // 3
    assert choose_chunks(m, dense, minimum_budget(m, dense) - 1) is None


def _cfg(graph, model, mode, P, hidden, epochs=3, **options) -> TrainConfig:
    return TrainConfig(strategy="tensor", dataset=graph.name, workers=P, model=model, layers=3, hidden=hidden,
                       epochs=epochs, options={"tp_mode": mode, **options})


def test_config_errors_name_the_fix(cora):
    cls, summary = get_strategy("tensor"), cora.summary()
    for cfg, words in [(_cfg(cora, "gcn", "decoupled", 2, 8), "--tp-mode naive"),
                       (_cfg(cora, "decoupled", "naive", 2, 8), "--tp-mode decoupled"),
                       (_cfg(cora, "decoupled", "decoupled", 2, 8, chunks=0), "--tp-chunks"),
                       (_cfg(cora, "decoupled", "decoupled", 2, 8, chunks=2, memory_budget=10**6), "one of them")]:
        with pytest.raises(ConfigError, match=words):
            cls.validate(cfg, summary)
    with pytest.raises(ConfigError, match="minimum"):
        train_local(_cfg(cora, "decoupled", "decoupled", 1, 8, epochs=1, memory_budget=1000), cora)


@pytest.mark.parametrize("model,mode", [("decoupled", "decoupled"), ("sage", "naive")])
def test_chunking_changes_nothing_but_the_footprint(small_directed, model, mode):
    plain, chunked = (train_local(_cfg(small_directed, model, mode, 1, 6, epochs=3, chunks=k), small_directed)[0]
                      for k in (1, 5))
    assert [e["loss"] for e in plain["epochs"]] == [e["loss"] for e in chunked["epochs"]]
    assert all(torch.equal(plain["params"][k], chunked["params"][k]) for k in plain["params"])
    assert chunked["chunks"] == 5 and chunked["model_peak_bytes"] < plain["model_peak_bytes"]


# -- exactness against the DGL reference: widths not divisible by P (hidden = 2P+1) ---------------
def _train_many(comm, cfg_dicts: list[dict], graph) -> list[dict]:
    """Several runs in one process group (spawning ranks dominates a small test's time)."""
    return [train_rank(comm, TrainConfig.from_dict(c), graph, keep_params=True) for c in cfg_dicts]


def _launch(graph, cfgs: list[TrainConfig]) -> list[list[dict]]:
    """Per config, its per-rank results; every config is also checked against the DGL reference."""
    cfgs = [check_config(c) for c in cfgs]
    per_rank = run_spmd(_train_many, cfgs[0].workers, ([c.as_dict() for c in cfgs], graph))
    runs = [[per_rank[r][i] for r in range(len(per_rank))] for i in range(len(cfgs))]
    for cfg, results in zip(cfgs, runs):
        ref_losses, ref_params = run_reference(cfg, graph)
        check = compare([e["loss"] for e in results[0]["epochs"]], results[0]["params"], ref_losses, ref_params)
        assert check.passed, f"{cfg.model}/{cfg.options}: {check.summary()}"
    return runs


SLOW = [(g, model, mode, P, k) for g in ("cora", "small_directed")
        for model, mode in (("decoupled", "decoupled"), ("gcn", "naive"), ("sage", "naive"))
        for P in (2, 3, 4) for k in (1, 4)]


@pytest.mark.slow
@pytest.mark.parametrize("graph_name,model,mode,P,chunks", SLOW)
def test_matches_reference_full_matrix(request, graph_name, model, mode, P, chunks):
    graph = request.getfixturevalue(graph_name)
    result = check_local(_cfg(graph, model, mode, P, 2 * P + 1, chunks=chunks), graph)
    assert result.passed, result.summary()


# -- communication volume: counted bytes equal the formula, per rank, per tag, per epoch --------
def _conversion(N: int, P: int, r: int, width: int) -> tuple[int, int]:
    """(bytes rank r sends in a vertex->feature split, bytes it sends in a feature->vertex gather)."""
    n, w = _block(N, P, r), _block(width, P, r)
    return 4 * n * (width - w), 4 * (N - n) * w


def _assert_epochs(results, expected_for_rank):
    for res in results:
        want = expected_for_rank(res["rank"])
        for ep in res["epochs"]:
            got = {t: (s["sent_bytes"], s["recv_bytes"]) for t, s in ep["comm"].items()}
            assert got == want, f"rank {res['rank']} epoch {ep['epoch']}"
        assert all(t.startswith("eval/") for t in res["eval_comm"])


def _grad_bytes(cfg: TrainConfig, g) -> int:
    return 4 * sum(p.numel() for p in init_params(cfg.model_spec(g.num_features, g.num_classes), 0).values())


def test_decoupled_exact_and_four_all_to_alls_of_n_by_c(cora):
    """P=3 on Cora: N, F, C and hidden all leave a remainder; chunked and unchunked."""
    g, P, chunks = cora, 3, 2
    cfgs = [_cfg(g, "decoupled", "decoupled", P, 7, epochs=2, chunks=k) for k in (chunks, 1)]
    runs = _launch(g, cfgs)
    N, C, grad = g.num_nodes, g.num_classes, _grad_bytes(cfgs[0], g)

    def expected(r):
        split, gath = _conversion(N, P, r, C)
        return {"prop/split/fwd": (split, gath), "prop/gather/fwd": (gath, split),
                "prop/split/bwd": (split, gath), "prop/gather/bwd": (gath, split),
                "grad/allreduce": (grad, grad), "loss/allreduce": (8, 8)}

    for results, k in zip(runs, (chunks, 1)):
        _assert_epochs(results, expected)
        calls = {t: s["calls"] for t, s in results[0]["epochs"][0]["comm"].items() if t.startswith("prop/")}
        assert calls == {"prop/split/fwd": 1, "prop/gather/fwd": k, "prop/split/bwd": 1, "prop/gather/bwd": k}
    total = sum(sum(s["sent_bytes"] for t, s in runs[0][r]["epochs"][0]["comm"].items() if t.startswith("prop/"))
                for r in range(P))
    assert total == 4 * 4 * (N * C - sum(_block(N, P, r) * _block(C, P, r) for r in range(P)))
    assert [e["loss"] for e in runs[0][0]["epochs"]] == [e["loss"] for e in runs[1][0]["epochs"]]


def test_naive_exact_and_one_split_and_gather_per_layer(small_directed):
    """P=2 on the directed graph: gcn (volume; layer 0 aggregates the raw 13 columns) and chunked sage."""
    g, P, hidden = small_directed, 2, 15
    cfgs = [_cfg(g, "gcn", "naive", P, hidden, epochs=2), _cfg(g, "sage", "naive", P, 5, epochs=2, chunks=3)]
    results = _launch(g, cfgs)[0]
    N, dims, grad = g.num_nodes, (g.num_features, hidden, hidden, g.num_classes), _grad_bytes(cfgs[0], g)

    def expected(r):
        out = {"grad/allreduce": (grad, grad), "loss/allreduce": (8, 8)}
        for i in range(3):
            width = min(dims[i], dims[i + 1])
            split, gath = _conversion(N, P, r, width)
            out[f"layer{i}/gather/fwd"] = (gath, split)
            if i == 0 and dims[0] <= dims[1]:
                continue  # the raw input's slice is local and needs no gradient
            out |= {f"layer{i}/split/fwd": (split, gath), f"layer{i}/split/bwd": (gath, split),
                    f"layer{i}/gather/bwd": (split, gath)}
        return out

    _assert_epochs(results, expected)
    assert results[0]["local_edges"] == g.num_edges  # every worker traverses all edges (self-loops not counted)
