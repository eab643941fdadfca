"""Mini-batch sampling strategy: the sampler and blocks, exactness at full fanout, bytes per tag, accuracy.

    .venv/bin/python -m pytest -q tests/test_sampling.py        (GRAPHPAR_FULL_TESTS=1 adds the slow tier)

Each world size trains a batch of configurations in one set of gloo processes (spawning costs more than
training these graphs); the exact ones are compared with the single-process DGL reference.
"""
from __future__ import annotations

import statistics
import subprocess
import sys

import pytest
import torch
from helpers import one_thread, train_batch

from graphpar.bench.check import check_config, compare, run_reference
from graphpar.bench.runtime.loop import train_local
from graphpar.strategies import Communicator, ConfigError, TrainConfig, get_strategy
from graphpar.strategies.kernels import make_aggregator
from graphpar.strategies.models import ModelSpec, aggregation_edges
from graphpar.strategies.partitioning.partitioner import partition_graph
from graphpar.strategies.sampling.blocks import BlockNorm, OwnedStore, floyd_subsets, sample_layer
from graphpar.strategies.sampling.strategy import parse_fanouts


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_thread():
        yield




def exact_cfg(graph, model: str, workers: int, method: str = "metis", epochs: int = 3) -> TrainConfig:
    """Full fanout, one batch of every training vertex: one step per epoch equal to the reference's."""
    return check_config(TrainConfig(strategy="sampling", dataset=graph.name, model=model, layers=2, hidden=12,
                                    epochs=epochs, workers=workers, timeout_s=60,
                                    options={"partition": method, **get_strategy("sampling").exact_options()}))


def assert_exact(cfg: TrainConfig, ranks: list[dict], graph) -> None:
    ref_losses, ref_params = run_reference(cfg, graph)
    result = compare([e["loss"] for e in ranks[0]["epochs"]], ranks[0]["params"], ref_losses, ref_params)
    assert result.passed, f"{cfg.model} P={cfg.workers} {cfg.options}: {result.summary()}"


def n_params(spec: ModelSpec) -> int:
    return sum(spec.dims[i] * spec.dims[i + 1] * (2 if spec.kind == "sage" else 1) + spec.dims[i + 1]
               for i in range(spec.layers))


def formula_bytes(traffic: dict, layers: int, p: int, features: int, weights: int) -> dict[str, int]:
    """The module docstring's per-rank volume, per tag, from one epoch's row counts."""
    steps, sizes = traffic["steps"], 8 * (p - 1) * traffic["steps"]
    out = {}
    for i in range(layers - 1):  # the output layer samples the rank's own seeds: no exchange
        t = traffic[f"layer{i}"]
        out.update({f"sample/layer{i}/sizes": sizes, f"sample/layer{i}/ids": 8 * t["q"],
                    f"sample/layer{i}/counts": 8 * t["s"], f"sample/layer{i}/nbrs": 8 * t["e"]})
    t = traffic["input"]
    out.update({"fetch/sizes": sizes, "fetch/ids": 8 * t["q"], "fetch/rows": 4 * features * t["s"],
                "grad/allreduce": 4 * weights * steps, "loss/allreduce": 8})
    return out


def brute_force_traffic(graph, part_id: torch.Tensor, layers: int, p: int) -> list[dict]:
    """Per rank, the exact case's row counts from the graph alone (plain Python sets, no strategy code)."""
    owner = part_id.tolist()
    in_nbrs: dict[int, list[int]] = {}
    for s, d in zip(graph.src.tolist(), graph.dst.tolist()):
        in_nbrs.setdefault(d, []).append(s)
    train = [v for v, t in enumerate(graph.train_mask.tolist()) if t]
    frontiers = []  # per rank: destination sets of layers L-1..0, then the input set
    for r in range(p):
        dst, sets = {v for v in train if owner[v] == r}, []
        for _ in range(layers):
            sets.append(dst)
            dst = dst | {u for v in dst for u in in_nbrs.get(v, [])}
        frontiers.append(sets + [dst])
    out = []
    for r in range(p):
        t = {"steps": 1}
        for k in range(1, layers + 1):
            key = f"layer{layers - 1 - k}" if k < layers else "input"
            served = [v for q in range(p) if q != r for v in frontiers[q][k] if owner[v] == r]
            t[key] = {"q": sum(owner[v] != r for v in frontiers[r][k]), "s": len(served),
                      "e": sum(len(in_nbrs.get(v, [])) for v in served) if k < layers else len(served)}
        out.append(t)
    return out


# -- options ---------------------------------------------------------------------------------------
def test_parse_fanouts():
    assert parse_fanouts("15,10", 2) == [15, 10] and parse_fanouts("-1", 3) == [-1, -1, -1]
    assert parse_fanouts("auto", 2) == [15, 10] and parse_fanouts("auto", 4) == [15, 10, 5, 5]


@pytest.mark.parametrize("opts, words", [
    ({"fanouts": "15,x"}, "comma-separated"), ({"fanouts": "0,5"}, ">= 1 or -1"), ({"fanouts": "5,5,5"}, "--layers 2"),
    ({"batch_size": -3}, "--batch-size"), ({"partition": "spectral"}, "--partition")])
def test_validate_rejects_bad_options(opts, words):
    cls = get_strategy("sampling")
    with pytest.raises(ConfigError, match=words):
        cls.validate(TrainConfig(strategy="sampling", dataset="x", workers=2, options=opts), {"nodes": 100})
    with pytest.raises(ConfigError, match="--model"):
        cls.validate(TrainConfig(strategy="sampling", dataset="x", workers=2, model="decoupled"), {"nodes": 100})


def test_cli_bad_fanouts_is_one_line_exit_2(tmp_path):
    out = tmp_path / "runs.jsonl"
    res = subprocess.run([sys.executable, "-m", "graphpar.bench.cli", "run", "--strategy", "sampling", "--dataset",
                          "cora", "--workers", "2", "--fanouts", "10,0", "--out", str(out)],
                         capture_output=True, text=True, timeout=240, cwd=tmp_path)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(lines) == 1 and "--fanouts 10,0" in lines[0], res.stderr
    assert not out.exists()


# -- the sampler and blocks (one process) -----------------------------------------------------------
def test_sampler_draws_distinct_in_neighbours_up_to_the_fanout(small_directed):
    g = small_directed
    store = OwnedStore(g, torch.zeros(g.num_nodes, dtype=torch.int64), 0, 1)
    ids = torch.arange(g.num_nodes)
    full_deg, full = store.sample(ids, -1, torch.Generator().manual_seed(0))
    counts, nbrs = store.sample(ids, 2, torch.Generator().manual_seed(0))
    assert torch.equal(full_deg, torch.bincount(g.dst, minlength=g.num_nodes))
    assert torch.equal(counts, full_deg.clamp(max=2)) and int((full_deg > 2).sum()) > 0
    true_in = {(int(s), int(d)) for s, d in zip(g.src, g.dst)}
    for v, chunk in zip(ids.tolist(), torch.split(nbrs, counts.tolist())):
        assert len(set(chunk.tolist())) == chunk.numel() and all((s, v) in true_in for s in chunk.tolist())
    again = store.sample(ids, 2, torch.Generator().manual_seed(0))[1]
    assert torch.equal(again, nbrs), "the sampler is seeded"


def test_floyd_subsets_are_distinct_and_uniform():
    """Every k-subset of a vertex's in-edges equally likely: 6,000 draws of 2 of 5 (10 pairs, 600 each) and of
    3 of 7 mixed in the same call (each item in 3/7 of the draws)."""
    n = torch.tensor([5, 7] * 6000)
    picks = floyd_subsets(n, 2, torch.Generator().manual_seed(0))
    assert bool((picks >= 0).all()) and bool((picks < n.unsqueeze(1)).all()) and bool((picks[:, 0] != picks[:, 1]).all())
    pairs = torch.sort(picks[0::2], dim=1).values
    counts = torch.bincount(pairs[:, 0] * 5 + pairs[:, 1], minlength=25)
    upper = counts[torch.triu(torch.ones(5, 5, dtype=torch.bool), 1).flatten()]
    assert upper.numel() == 10 and int(upper.sum()) == 6000 and 480 <= int(upper.min()) and int(upper.max()) <= 720
    three = floyd_subsets(torch.full((7000,), 7), 3, torch.Generator().manual_seed(1))
    per_item = torch.bincount(three.flatten(), minlength=7)
    assert all(len(set(r)) == 3 for r in three[:500].tolist()) and 2700 <= int(per_item.min()) <= int(per_item.max()) <= 3300


@pytest.mark.parametrize("kind", ["gcn", "sage"])
def test_full_fanout_block_aggregates_like_the_full_graph(small_directed, kind):
    g, comm = small_directed, Communicator()
    store = OwnedStore(g, torch.zeros(g.num_nodes, dtype=torch.int64), 0, 1)
    norm = BlockNorm(kind, g.src, g.dst, g.num_nodes)
    dst = torch.randperm(g.num_nodes, generator=torch.Generator().manual_seed(1))[:40]
    counts, dst_idx, nbrs, _ = sample_layer(comm, store, dst, -1, torch.Generator(), "t")
    blk = norm.make_block(dst, counts, dst_idx, nbrs)
    assert torch.equal(blk.src_nodes[:40], dst) and blk.src_nodes.unique().numel() == blk.num_src
    x = torch.randn(g.num_nodes, 6)
    s, d, w = aggregation_edges(ModelSpec.build(kind, 1, 1, 1, 1), g.src, g.dst, g.num_nodes)
    full = make_aggregator(s, d, w, g.num_nodes, g.num_nodes, "torch")(x)
    local = make_aggregator(blk.src, blk.dst, blk.weight, blk.num_src, blk.num_dst, "torch")(x[blk.src_nodes])
    assert torch.allclose(local, full[dst], atol=1e-6)
    counts, dst_idx, nbrs, _ = sample_layer(comm, store, dst, 2, torch.Generator().manual_seed(0), "t")
    sampled = norm.make_block(dst, counts, dst_idx, nbrs)
    if kind == "sage":  # the mean over the sampled neighbours: weights of a vertex sum to one
        sums = torch.zeros(40).index_add_(0, sampled.dst, sampled.weight)
        assert torch.allclose(sums[counts > 0], torch.ones(int((counts > 0).sum())))


# -- multi-process: exact, bytes, empty batches -------------------------------------------------------
@pytest.fixture(scope="module")
def two_workers(cora, small_directed):
    """P=2: exact gcn/sage on Cora (METIS) and on the directed R-MAT graph (random), exact gcn with every
    training vertex on rank 0 (contiguous: rank 1 runs empty batches), and a sampled run of 3 epochs."""
    sampled = TrainConfig(strategy="sampling", dataset=cora.name, model="sage", workers=2, epochs=3, timeout_s=60,
                          options={"fanouts": "4,3", "batch_size": 16})
    cfgs = [exact_cfg(cora, "gcn", 2), exact_cfg(cora, "sage", 2), exact_cfg(small_directed, "gcn", 2, "random"),
            exact_cfg(small_directed, "sage", 2, "random"), exact_cfg(cora, "gcn", 2, "contiguous"), sampled]
    return cfgs, train_batch(cfgs, [cora, small_directed])


def _graph(cfg, cora, small_directed):
    return cora if cfg.dataset == cora.name else small_directed


@pytest.mark.parametrize("i", range(5))
def test_exact_against_reference_p2(two_workers, cora, small_directed, i):
    cfgs, results = two_workers
    assert_exact(cfgs[i], results[i], _graph(cfgs[i], cora, small_directed))


@pytest.mark.parametrize("i", [0, 2, 4])
def test_exact_case_bytes_equal_the_formula_from_the_graph(two_workers, cora, small_directed, i):
    cfgs, results = two_workers
    cfg = cfgs[i]
    graph = _graph(cfg, cora, small_directed)
    spec = cfg.model_spec(graph.num_features, graph.num_classes)
    part_id = partition_graph(graph, cfg.workers, cfg.options["partition"])
    expected = brute_force_traffic(graph, part_id, spec.layers, cfg.workers)
    for rank, res in enumerate(results[i]):
        want = formula_bytes(expected[rank], spec.layers, cfg.workers, graph.num_features, n_params(spec))
        for ep in res["epochs"]:
            got = {tag: st["sent_bytes"] for tag, st in ep["comm"].items()}
            assert got == {k: v for k, v in want.items() if k in got} and set(got) == set(want), f"rank {rank}"
        assert res["traffic"][0] == expected[rank]
    if i == 4:  # every training vertex is on rank 0: rank 1 requests nothing and only serves
        assert [r["train_vertices"] for r in results[i]] == [int(graph.train_mask.sum()), 0]
        assert results[i][1]["traffic"][0]["layer0"]["q"] == results[i][1]["traffic"][0]["input"]["q"] == 0


def test_sampled_bytes_equal_the_formula_every_epoch(two_workers, cora):
    cfgs, results = two_workers
    cfg, ranks = cfgs[5], results[5]
    spec = cfg.model_spec(cora.num_features, cora.num_classes)
    steps = -(-max(r["train_vertices"] for r in ranks) // 16)
    assert [r["steps_per_epoch"] for r in ranks] == [steps, steps] and steps > 1
    for epoch in range(cfg.epochs):
        traffic = [r["traffic"][epoch] for r in ranks]
        for rank, res in enumerate(ranks):
            want = formula_bytes(traffic[rank], spec.layers, 2, cora.num_features, n_params(spec))
            got = {tag: st["sent_bytes"] for tag, st in res["epochs"][epoch]["comm"].items()}
            assert got == want, f"rank {rank} epoch {epoch}"
        assert "layer1" not in traffic[0]  # the seeds are the rank's own vertices: sampled locally
        for key in ("layer0", "input"):
            assert sum(t[key]["q"] for t in traffic) == sum(t[key]["s"] for t in traffic)
        assert all(t["layer0"]["e"] <= 4 * t["layer0"]["s"] for t in traffic)
        assert sum(t["layer0"]["q"] for t in traffic) > 0 and sum(t["input"]["q"] for t in traffic) > 0
    for res in ranks:
        assert len(res["sample_s"]) == len(res["fetch_s"]) == cfg.epochs and min(res["sample_s"]) > 0
    assert all(e["loss"] == e["loss"] for e in ranks[0]["epochs"])  # finite, same on every rank
    assert ranks[0]["info"]["fanouts"] == [4, 3] and ranks[0]["info"]["batch_size"] == 16


@pytest.mark.parametrize("model", ["gcn", "sage"])
def test_exact_p1_builds_its_blocks_once(small_directed, model):
    """One rank, full fanout, one batch: the reference's step every epoch, sampled and fetched in the first only."""
    cfg = exact_cfg(small_directed, model, 1, "contiguous", epochs=4)
    ranks = train_local(cfg, small_directed)
    assert_exact(cfg, ranks, small_directed)
    assert ranks[0]["sample_s"][0] > 0 and ranks[0]["sample_s"][1:] == [0.0] * 3 and ranks[0]["fetch_s"][1:] == [0.0] * 3
    assert all(e["sent_bytes"] == 0 for e in ranks[0]["epochs"])


def test_exact_p3(cora, small_directed):
    cfgs = [exact_cfg(cora, "gcn", 3), exact_cfg(cora, "sage", 3), exact_cfg(small_directed, "sage", 3, "random")]
    for cfg, ranks in zip(cfgs, train_batch(cfgs, [cora, small_directed])):
        assert_exact(cfg, ranks, _graph(cfg, cora, small_directed))


# -- accuracy (slow tier) ------------------------------------------------------------------------------
def mean_test_accuracy(graph, strategy: str, workers: int, seeds: range, **options) -> float:
    accs = []
    for seed in seeds:
        cfg = TrainConfig(strategy=strategy, dataset=graph.name, workers=workers, seed=seed, epochs=200,
                          timeout_s=600, options=options)
        accs.append(train_local(cfg, graph, keep_params=False, timeout_s=1800)[0]["accuracy"]["test_acc"])
    return statistics.mean(accs)


@pytest.mark.slow
@pytest.mark.parametrize("dataset, seeds", [("cora", range(5)), ("coauthor-cs", range(3))])
def test_accuracy_within_1_5_points_of_the_reference(dataset, seeds):
    """gcn, 200 epochs, dropout 0.5, P=2, batch 32, fanouts 15,10 against the full-graph reference."""
    from graphpar.datasets import load_dataset

    graph = load_dataset(dataset)
    ours = mean_test_accuracy(graph, "sampling", 2, seeds, batch_size=32, fanouts="15,10")
    ref = mean_test_accuracy(graph, "single", 1, seeds, single_impl="dgl")
    gap = abs(ours - ref) * 100
    assert gap <= 1.5, f"sampling on {dataset}: mean test accuracy {ours:.4f} is {gap:.2f} points from {ref:.4f}"
