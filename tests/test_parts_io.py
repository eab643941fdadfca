"""Offline partitions (``graphpar partition``, strategies/partitioning/parts_io.py): each rank's part on disk
rebuilds the in-memory view bit for bit, trains the same losses with the same bytes per tag, and a folder
that does not fit the run is one line before anything starts."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from helpers import config

from graphpar.bench.api import prepare
from graphpar.bench.cli.commands import main
from graphpar.bench.runtime.loop import train_rank
from graphpar.bench.runtime.spmd import run_spmd
from graphpar.strategies import TrainConfig, get_strategy
from graphpar.strategies.partitioning import PartitionError
from graphpar.strategies.partitioning.halo import build_local_view
from graphpar.strategies.partitioning.partitioner import partition_graph
from graphpar.strategies.partitioning.parts_io import MANIFEST, PartData, load_part, write_parts


@pytest.fixture(scope="module")
def folders(cora, small_directed, tmp_path_factory):
    """cora into 2 METIS parts, the directed R-MAT graph into 3 random parts."""
    root = tmp_path_factory.mktemp("parts")
    out = {}
    for graph, p, method in ((cora, 2, "metis"), (small_directed, 3, "random")):
        out[(graph.name, p)] = root / f"{graph.name}-{p}"
        write_parts(graph, graph.name, p, method, out[(graph.name, p)])
    return out


@pytest.mark.parametrize("kind", ["gcn", "sage"])
@pytest.mark.parametrize("which", [("cora", 2), ("small", 3)])
def test_each_part_rebuilds_the_in_memory_view(folders, cora, small_directed, kind, which):
    graph = cora if which[0] == "cora" else small_directed
    folder = folders[(graph.name, which[1])]
    m = json.loads((folder / MANIFEST).read_text())
    part_id = partition_graph(graph, which[1], m["method"])
    for rank in range(which[1]):
        part = load_part(folder, rank)
        mine, want = part.view(kind), build_local_view(graph, part_id, rank, kind, which[1])
        for name in ("owned", "halo", "send_idx"):
            assert torch.equal(getattr(mine, name), getattr(want, name)), name
        assert (mine.send_counts, mine.recv_counts) == (want.send_counts, want.recv_counts)
        n = mine.num_local
        got = sorted(zip((mine.dst * n + mine.src).tolist(), mine.weight.tolist()))
        exp = sorted(zip((want.dst * n + want.src).tolist(), want.weight.tolist()))
        assert got == exp  # same edges, bit-identical weights
        assert torch.equal(part.feat, graph.feat[want.owned]) and torch.equal(part.label, graph.label[want.owned])
        assert torch.equal(part.masks[0], graph.train_mask[want.owned])
        assert part.feat.shape[0] < graph.num_nodes  # only the owned rows are on this rank
    assert sum(f["owned"] for f in m["files"]) == graph.num_nodes and m["graph"]["hash"] == graph.content_hash()


def _train_both(comm, cfg_dicts: list[dict], graphs: dict) -> list[dict]:
    out = []
    for d in cfg_dicts:
        cfg = TrainConfig.from_dict(d)
        graph = get_strategy(cfg.strategy).rank_graph(cfg, comm.rank)
        out.append(train_rank(comm, cfg, graphs[cfg.dataset] if graph is None else graph, keep_params=True))
    return out


@pytest.mark.parametrize("which", [("cora", 2), ("small", 3)])
def test_per_part_training_equals_in_memory(folders, cora, small_directed, which):
    graph = cora if which[0] == "cora" else small_directed
    p, folder = which[1], folders[(graph.name, which[1])]
    method = json.loads((folder / MANIFEST).read_text())["method"]
    cfgs = [config("partition", graph.name, p, model=kind, epochs=3, options=opts)
            for kind in ("gcn", "sage") for opts in ({"partition": method}, {"partition_dir": str(folder)})]
    per_rank = run_spmd(_train_both, p, ([c.as_dict() for c in cfgs], {graph.name: graph}), timeout_s=120)
    for i in (0, 2):
        memory, parts = [r[i] for r in per_rank], [r[i + 1] for r in per_rank]
        for a, b in zip(memory, parts):
            assert [e["loss"] for e in a["epochs"]] == [e["loss"] for e in b["epochs"]]
            assert [{t: s["sent_bytes"] for t, s in e["comm"].items()} for e in a["epochs"]] == \
                   [{t: s["sent_bytes"] for t, s in e["comm"].items()} for e in b["epochs"]]
            assert a["halo_vertices"] == b["halo_vertices"] and a["local_edges"] == b["local_edges"]
        for k, v in memory[0]["params"].items():
            assert torch.equal(v, parts[0]["params"][k]), k
        assert parts[0]["info"]["partition_from_dir"] is True
        assert parts[0]["info"]["edge_cut"] == memory[0]["info"]["edge_cut"]
        assert parts[0]["info"]["partition_hash"] == memory[0]["info"]["partition_hash"]


def test_prepare_checks_the_manifest_without_loading_the_graph(folders, cora, monkeypatch):
    folder = folders[(cora.name, 2)]
    monkeypatch.setattr("graphpar.bench.api.load_graph", lambda *_: pytest.fail("prepare loaded the graph"))
    summary = prepare(config("partition", "cora", 2, options={"partition_dir": str(folder)}))
    assert summary == cora.summary()
    for cfg, words in [(config("partition", "cora", 3, options={"partition_dir": str(folder)}), "holds 2 parts"),
                       (config("partition", "citeseer", 2, options={"partition_dir": str(folder)}), "dataset 'cora'"),
                       (config("partition", "cora", 2, options={"partition_dir": str(folder / "x")}), "no manifest"),
                       (config("partition", "cora", 2, options={"partition_dir": str(folder), "partition": "random"}),
                        "partitioned by metis")]:
        with pytest.raises(PartitionError, match=words):
            prepare(cfg)


def test_a_part_of_another_graph_is_refused(folders, cora, small_directed, tmp_path):
    folder = folders[(small_directed.name, 3)]
    m = json.loads((folder / MANIFEST).read_text())
    m["graph"]["hash"] = cora.content_hash()
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in m["files"]:
        (bad / f["file"]).write_bytes((folder / f["file"]).read_bytes())
    (bad / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(PartitionError, match="written for"):
        load_part(bad, 0)
    assert isinstance(load_part(folder, 0), PartData)


def _copy_parts(folder: Path, to: Path) -> dict:
    to.mkdir()
    m = json.loads((folder / MANIFEST).read_text())
    for f in m["files"]:
        (to / f["file"]).write_bytes((folder / f["file"]).read_bytes())
    (to / MANIFEST).write_text(json.dumps(m))
    return m


def _swap_parts(d: Path, m: dict) -> None:
    a, b = (d / "part-0.safetensors").read_bytes(), (d / "part-1.safetensors").read_bytes()
    (d / "part-0.safetensors").write_bytes(b)
    (d / "part-1.safetensors").write_bytes(a)


def _other_graph_in_manifest(d: Path, m: dict) -> None:
    m["graph"]["hash"] = "0" * 16
    (d / MANIFEST).write_text(json.dumps(m))


def _size_in_manifest(d: Path, m: dict) -> None:
    m["files"][1]["bytes"] += 8
    (d / MANIFEST).write_text(json.dumps(m))


def _torchscript_part(d: Path, m: dict) -> None:
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(d / "part-1.safetensors"))


@pytest.mark.parametrize("damage, words", [(_swap_parts, "written for {'rank'"), (_other_graph_in_manifest, "graph_hash"),
                                           (_size_in_manifest, "bytes, the manifest says"),
                                           (_torchscript_part, "not a graphpar part file")],
                         ids=["swapped", "other-graph", "size", "torchscript"])
def test_manifest_and_parts_that_disagree_are_one_line_before_any_process(folders, cora, tmp_path, monkeypatch,
                                                                         damage, words):
    """Every part's header and size are checked against the manifest in ``prepare`` (before the launcher):
    one PartitionError line, not a traceback from every rank."""
    bad = tmp_path / "bad"
    damage(bad, _copy_parts(folders[(cora.name, 2)], bad))
    monkeypatch.setattr("graphpar.bench.api.load_graph", lambda *_: pytest.fail("prepare loaded the graph"))
    with pytest.raises(PartitionError, match=re.escape(words)) as err:
        prepare(config("partition", "cora", 2, options={"partition_dir": str(bad)}))
    assert "\n" not in str(err.value) and "partition again" in str(err.value)


def test_cli_partition_and_its_bad_input(tmp_path, capsys):
    out = tmp_path / "cora-p2"
    assert main(["partition", "cora", "--parts", "2", "--method", "random", "--out", str(out)]) == 0
    assert "--partition-dir" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "part-0.safetensors", "part-1.safetensors"]
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    for argv, words in [(["--parts", "0"], "--parts 0"), (["--parts", "2", "--method", "spectral"], "spectral"),
                        (["--parts", "2", "--out", str(other)], "folder of other files"),
                        (["--parts", "9999"], "exceeds")]:
        target = [] if "--out" in argv else ["--out", str(tmp_path / "new")]
        assert main(["partition", "cora", *argv, *target]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists() and sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_records_carry_the_estimate_beside_the_peak(folders, small_directed):
    from helpers import fake_record

    from graphpar.bench import memory
    from graphpar.bench.tables import run_line

    folder = folders[(small_directed.name, 3)]
    m = json.loads((folder / MANIFEST).read_text())
    cfg = config("partition", small_directed.name, 3, options={"partition_dir": str(folder)}).as_dict()
    per_rank = memory.rank_estimates(cfg, m["graph"])
    assert per_rank == [memory.part_estimate(f, m["graph"], "gcn", 16, 2)["total"] for f in m["files"]]
    assert len(set(per_rank)) > 1  # per part, from its own counts
    whole = memory.rank_estimates({**cfg, "options": {}}, m["graph"])
    assert len(whole) == 3 and min(whole) > max(per_rank)  # a rank of the in-memory path holds the whole graph
    assert memory.rank_estimates({**cfg, "strategy": "single"}, m["graph"]) is None
    rec = fake_record("tensor", 2)
    assert [w["memory_estimate_bytes"] for w in rec["workers"]] == memory.rank_estimates(rec["config"], rec["dataset"])
    assert rec["summary"]["peak_memory_bytes_max"] == 1001
    assert "peak RSS" in run_line(rec) and "(estimate " in run_line(rec)
    assert "memory_estimate_bytes" not in fake_record("single", 1)["workers"][0]


def test_bench_scale_runs_partition_per_part_and_records_memory(tmp_path, capsys):
    from graphpar.bench.harness import scale

    out = tmp_path / "scale.jsonl"
    assert scale.main(["--dataset", "cora", "--workers", "2", "--strategies", "partition", "--epochs", "2",
                       "--budget-gb", "20", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "partition --partition-dir P=2" in text and "measured peak RSS per rank" in text
    rec = json.loads(out.read_text().splitlines()[-1])
    assert rec["config"]["options"]["partition_dir"].endswith("cora-p2-random")
    assert all(w["memory_estimate_bytes"] > 0 and w["peak_memory_bytes"] > 0 for w in rec["workers"])
    assert rec["info"]["partition_from_dir"] is True


@pytest.mark.parametrize("kind", ["gcn", "sage"])
@pytest.mark.parametrize("which", [("cora", 2), ("small", 3)])
def test_aggregator_from_the_stored_csr_is_the_in_memory_matrix(folders, cora, small_directed, kind, which):
    """``PartData.aggregator`` (no edge list, int32 indices, blocked transpose) builds both CSRs bit for bit
    as ``make_aggregator`` does from the in-memory view's edges, and gat's edge list on demand."""
    graph = cora if which[0] == "cora" else small_directed
    folder = folders[(graph.name, which[1])]
    part_id = partition_graph(graph, which[1], json.loads((folder / MANIFEST).read_text())["method"])
    for rank in range(which[1]):
        want = build_local_view(graph, part_id, rank, kind, which[1])
        ref = want.aggregator("torch")
        part = load_part(folder, rank)
        agg = part.aggregator(kind)
        assert part.indices.numel() == 0 and part.local_edges == want.stats()["local_edges"]
        for a, b in ((ref.matrix.fwd, agg.matrix.fwd), (ref.matrix.bwd, agg.matrix.bwd)):
            assert b.col_indices().dtype == torch.int32
            assert torch.equal(a.crow_indices(), b.crow_indices().long())
            assert torch.equal(a.col_indices(), b.col_indices().long())
            assert torch.equal(a.values(), b.values())
        src, dst, n_src, n_dst = agg.edges
        assert (n_src, n_dst) == (want.num_local, want.num_owned)
        assert sorted((dst * n_src + src).tolist()) == sorted((want.dst * n_src + want.src).tolist())


def test_blocked_transpose_is_a_stable_sort():
    """``kernels._transpose`` in blocks of any size equals a stable sort of the columns (rows ascending)."""
    from graphpar.strategies.kernels import CSRMatrix, _transpose
    gen = torch.Generator().manual_seed(0)
    for n_dst, n_src, e, chunk in [(300, 500, 6000, 777), (50, 900, 2000, 64), (900, 20, 3000, 100), (10, 10, 0, 4),
                                   (100, 200, 1500, 1)]:
        key = torch.unique(torch.randint(0, n_dst * n_src, (e,), generator=gen))  # no duplicate (dst, src)
        dst, src = key // n_src, key % n_src
        ref = CSRMatrix(src, dst, torch.rand(key.numel(), generator=gen), n_src, n_dst)
        t_crow, t_col, t_vals = _transpose(ref.fwd.crow_indices(), ref.fwd.col_indices().int(), ref.fwd.values(),
                                           n_src, chunk=chunk)
        assert torch.equal(t_crow, ref.bwd.crow_indices()) and torch.equal(t_col.long(), ref.bwd.col_indices())
        assert torch.equal(t_vals, ref.bwd.values())


def test_partition_on_a_full_disk_is_one_line_exit_1_and_no_manifest(tmp_path):
    """RLIMIT_FSIZE (SIGXFSZ ignored) stands in for a full disk: write() fails with EFBIG midway."""
    import subprocess
    import sys

    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "from graphpar.bench.cli import main\n"
            "from graphpar.datasets import load_dataset\n"
            "load_dataset('cora')\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (200000, 200000))\n"
            "sys.exit(main(['partition', 'cora', '--parts', '2', '--method', 'random', '--out', sys.argv[1]]))\n")
    out = tmp_path / "parts"
    res = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "GRAPHPAR_DATA": str(tmp_path / "data")})
    errors = [line for line in res.stderr.splitlines() if "error" in line]
    assert res.returncode == 1 and len(errors) == 1 and "cannot write" in errors[0], res.stderr
    assert "Traceback" not in res.stderr and not (out / MANIFEST).exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
