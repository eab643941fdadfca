"""Hostile input and faults: no code runs from data files, caches check themselves, every bad input is one
line + exit 2 before work starts, partitions are deterministic, and stopped workers or signals end a run
cleanly. Each security payload writes a marker file when it runs; the tests assert the marker is absent.
"""
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import fake_record

from graphpar.datasets import DatasetError, load_dataset
from graphpar.datasets.catalog import cache_path as dataset_cache_path

SPEC = "rmat:nodes=400,edges=2400,feat=8,classes=4,seed=5"
CLI = [sys.executable, "-m", "graphpar.bench.cli"]


class Payload:
    """Unpickling this runs ``touch marker``: what a planted data file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "a payload from a data file ran"


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setenv("GRAPHPAR_DATA", str(root))
    return root


# -- no code from data files ----------------------------------------------------------------------------
def _npy_bytes(obj) -> bytes:
    """An .npy member holding a pickled object array, exactly as np.save(allow_pickle=True) writes it."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.array(obj, dtype=object), allow_pickle=True)
    return buf.getvalue()


def test_npz_object_array_payload_is_refused(tmp_path, marker):
    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("adj_matrix.npy", _npy_bytes(Payload(marker)))
        z.writestr("node_attr.npy", _npy_bytes(Payload(marker)))
        buf = io.BytesIO()
        np.save(buf, np.zeros(3, dtype=np.int64))
        z.writestr("node_label.npy", buf.getvalue())
    with pytest.raises(DatasetError, match="refusing to load posix.system|refusing to load os.system"):
        load_dataset(f"npz:{path}")


def test_npz_plain_and_pickled_scipy_layouts_load(tmp_path):
    """The plain-array layout loads with allow_pickle=False; scipy matrices in object arrays through the
    restricted unpickler; both give the same graph."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    adj = sp.random(50, 50, density=0.1, format="csr", random_state=1)
    attr = sp.csr_matrix(rng.random((50, 6)).astype(np.float32))
    labels = rng.integers(0, 3, 50)
    plain = tmp_path / "plain.npz"
    np.savez(plain, adj_data=adj.data, adj_indices=adj.indices, adj_indptr=adj.indptr, adj_shape=adj.shape,
             attr_data=attr.data, attr_indices=attr.indices, attr_indptr=attr.indptr, attr_shape=attr.shape,
             labels=labels)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, adj_matrix=np.array(adj, dtype=object), node_attr=np.array(attr, dtype=object),
             node_label=labels)
    a, b = load_dataset(f"npz:{plain}"), load_dataset(f"npz:{pickled}")
    assert a.num_nodes == 50 and a.num_features == 6 and torch.equal(a.src, b.src) and torch.equal(a.feat, b.feat)


def test_planetoid_payload_is_refused(tmp_path, marker):
    from conftest import need_graph

    carried = need_graph("cora")  # the repository's own copy: never a folder beside the clone
    folder = tmp_path / "cora"
    folder.mkdir()
    for f in carried.glob("ind.cora.*"):
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "ind.cora.x").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(DatasetError, match="refusing to load"):
        load_dataset(f"planetoid:{folder}/cora")


def _torchscript_archive(path: Path) -> None:
    """A TorchScript archive: torch < 2.6's torch.load hands such a file to torch.jit.load, whatever
    weights_only says (the published CVE)."""
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))


def _pickle_payload(marker: Path):
    return lambda path: path.write_bytes(pickle.dumps({"header": "{}", "src": Payload(marker)}))


def _torch_save_payload(marker: Path):
    return lambda path: torch.save({"header": "{}", "part_id": Payload(marker)}, path)


@pytest.mark.parametrize("plant", ["torchscript", "pickle", "torch.save"])
def test_dataset_cache_payload_is_not_run_and_is_rebuilt(data_root, marker, capsys, plant):
    fresh = load_dataset(SPEC)
    path = dataset_cache_path(SPEC)
    writer = {"torchscript": _torchscript_archive, "pickle": _pickle_payload(marker),
              "torch.save": _torch_save_payload(marker)}[plant]
    writer(path)
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        for owner, name in ((torch, "load"), (torch.jit, "load"), (pickle, "load")):
            mp.setattr(owner, name, lambda *_a, **_k: pytest.fail("torch.load/jit.load/pickle reached"))
        again = load_dataset(SPEC)
    assert again.content_hash() == fresh.content_hash()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rebuilding" in err[0], err


@pytest.mark.parametrize("plant", ["torchscript", "torch.save"])
def test_partition_cache_payload_is_not_run_and_is_recomputed(data_root, marker, capsys, plant):
    from graphpar.strategies.partitioning.partitioner import cache_path, partition

    g = load_dataset(SPEC)
    first = partition(g, 3, "metis")
    path = cache_path(g.content_hash(), 3, "metis")
    {"torchscript": _torchscript_archive, "torch.save": _torch_save_payload(marker)}[plant](path)
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        for owner, name in ((torch, "load"), (torch.jit, "load"), (pickle, "load")):
            mp.setattr(owner, name, lambda *_a, **_k: pytest.fail("torch.load/jit.load/pickle reached"))
        again = partition(g, 3, "metis")
    # recomputed: a valid partition of this graph (METIS in a long-lived pytest process can pick another of
    # equal quality, as in test_bad_partition_cache_is_recomputed)
    assert not again.cached and again.part_id.shape == first.part_id.shape
    assert int(again.part_id.min()) >= 0 and int(again.part_id.max()) < 3
    assert "recomputing" in capsys.readouterr().err


def _spmd_payload(comm, marker):
    return {"ok": 1, "evil": Payload(marker)}


def test_peer_results_cannot_carry_code(marker):
    """What ranks send back is data only (``wire``): an object that would run code is refused by the sender."""
    from graphpar.bench.runtime.spmd import run_spmd

    with pytest.raises(Exception, match="cannot send a Payload"):
        run_spmd(_spmd_payload, 1, (marker,), timeout_s=60)


def test_messages_round_trip_and_code_carrying_bytes_are_refused(tmp_path, marker, monkeypatch):
    """``wire.unpack`` gives back containers, numbers (NaN and infinities too), strings and tensors; bytes of a
    pickle, a torch.save zip or a TorchScript archive are one ValueError, without torch.load or pickle."""
    import math

    from graphpar.bench.runtime.wire import pack, unpack

    obj = {"loss": [0.5, float("nan"), float("inf")], "n": 3, "ok": True, "none": None, "s": "x",
           "t": torch.arange(4), "nested": {"pair": (1, "a"), 2: [torch.ones(2, 2)]}, "np": np.float32(1.5)}
    got = unpack(pack(obj))
    assert got["n"] == 3 and got["ok"] is True and got["none"] is None and got["s"] == "x" and got["np"] == 1.5
    assert got["loss"][0] == 0.5 and math.isnan(got["loss"][1]) and got["loss"][2] == math.inf
    assert torch.equal(got["t"], obj["t"]) and got["nested"]["pair"] == (1, "a")
    assert torch.equal(got["nested"][2][0], torch.ones(2, 2))
    script = tmp_path / "s.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(script))
    saved = io.BytesIO()
    torch.save({"x": Payload(marker)}, saved)
    for owner, name in ((torch, "load"), (torch.jit, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(owner, name, lambda *_a, **_k: pytest.fail("torch.load/jit.load/pickle reached"))
    for blob in (script.read_bytes(), saved.getvalue(), b"\x80\x04junk", b""):
        with pytest.raises(ValueError, match="not a graphpar message"):
            unpack(blob)


def test_plot_names_from_records_stay_in_the_figures_folder(tmp_path):

    from graphpar.bench.harness import plots

    runs = tmp_path / "runs.jsonl"
    recs = [fake_record("single", 1, model="../../../escaped"), fake_record("single", 2, model="../../../escaped")]
    runs.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "a" / "b" / "fig"
    paths = plots.plot_all(runs, out)
    assert paths and all(p.resolve().parent == out.resolve() for p in paths)
    assert not list(tmp_path.glob("*.png")) and not list((tmp_path / "a").glob("*.png"))


# -- caches check themselves ----------------------------------------------------------------------------
def _truncate(p: Path):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _garble(p: Path):
    data = bytearray(p.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = os.urandom(64)
    p.write_bytes(bytes(data))


def _rewrite(p: Path, edit) -> None:
    """Read a tensor file, let ``edit(tensors, header)`` change it, write it back with a matching file hash:
    what someone who knows the format would do."""
    from graphpar.datasets.tensorfile import read_tensors, write_tensors

    tensors, header, why = read_tensors(p)
    assert tensors is not None, why
    edit(tensors, header)
    write_tensors(p, tensors, header)


def _edit_feature(p: Path):  # loadable, plausible, wrong; the file hash recomputed: the graph's hash catches it
    _rewrite(p, lambda t, h: t["feat"].__setitem__((0, 0), t["feat"][0, 0] + 1.0))


def _edit_labels_claim_old_hash(p: Path):  # the header keeps the original graph hash, meta carries a memo
    def edit(t, h):
        t["label"][:] = (t["label"] + 1) % h["num_classes"]
        h["meta"]["_hash"] = h["hash"]
    _rewrite(p, edit)


def _flip_byte(p: Path):  # one byte of the features, file hash not updated
    data = bytearray(p.read_bytes())
    data[-7] ^= 0x10
    p.write_bytes(bytes(data))


def _old_format(p: Path):
    _rewrite(p, lambda t, h: h.__setitem__("format", 2))


@pytest.mark.parametrize("damage", [_truncate, _garble, _edit_feature, _edit_labels_claim_old_hash, _flip_byte,
                                    _old_format, lambda p: p.write_bytes(b"")],
                         ids=["truncated", "garbled", "edited", "edited-labels-old-hash", "flipped-byte", "old-format",
                              "emptied"])
def test_damaged_dataset_cache_is_rebuilt_with_one_line(data_root, capsys, damage):
    fresh = load_dataset(SPEC)
    path = dataset_cache_path(SPEC)
    damage(path)
    capsys.readouterr()
    again = load_dataset(SPEC)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "rebuilding" in err[0], err
    assert again.content_hash() == fresh.content_hash() and torch.equal(again.feat, fresh.feat)
    assert load_dataset(SPEC).content_hash() == fresh.content_hash()  # and the rebuilt cache is good
    assert not list(path.parent.glob("*.tmp"))


def _ids_out_of_range(payload, header):
    payload["part_id"][0] = 7


def _wrong_size(payload, header):
    payload["part_id"] = payload["part_id"][:-1].clone()


def _edited_ids(payload, header):  # ids in range, sizes right: only the stored assignment hash tells
    part = payload["part_id"]
    other = int((part != part[0]).nonzero()[0])
    part[[0, other]] = part[[other, 0]].clone()


def _other_graph(payload, header):
    header["graph_hash"] = "0" * 16


@pytest.mark.parametrize("damage", [_ids_out_of_range, _wrong_size, _edited_ids, _other_graph])
def test_bad_partition_cache_is_recomputed(data_root, capsys, damage):
    from graphpar.strategies.partitioning.partitioner import cache_path, check_partition, partition

    g = load_dataset(SPEC)
    first = partition(g, 3, "metis")
    path = cache_path(g.content_hash(), 3, "metis")
    _rewrite(path, damage)
    capsys.readouterr()
    again = partition(g, 3, "metis")
    assert "recomputing" in capsys.readouterr().err
    # a valid partition of this graph (METIS in a long-lived pytest process can pick another of equal quality)
    assert check_partition(again.part_id, g.num_nodes, 3) in (None, "") and again.part_id.numel() == first.part_id.numel()
    assert partition(g, 3, "metis").cached  # rewritten, good again


def test_orphan_temp_files_of_dead_writers_are_removed(data_root):
    import socket

    load_dataset(SPEC)
    folder = dataset_cache_path(SPEC).parent
    orphan = folder / f".x.safetensors.{socket.gethostname()}.{2**22 + 12345}.abc123.tmp"  # pid above pid_max
    orphan.write_bytes(b"half a cache")
    load_dataset("rmat:nodes=300,edges=900,feat=4,classes=3,seed=9")  # any cache write sweeps the folder
    assert not orphan.exists()


# -- deterministic partitions -----------------------------------------------------------------------------
def test_metis_gives_the_same_partition_every_time(cora):
    """DGL's METIS read uninitialised memory: repeated calls alternated between partitions before."""
    from graphpar.strategies.partitioning.partitioner import compute_partition, part_hash

    for parts, balance in ((4, True), (3, False)):
        hashes = {part_hash(compute_partition(cora.src, cora.dst, cora.num_nodes, parts, "metis", balance).part_id)
                  for _ in range(5)}
        assert len(hashes) == 1, f"P={parts} balance_edges={balance}: {hashes}"


@pytest.mark.slow
def test_metis_is_deterministic_across_processes(tmp_path):
    code = ("from graphpar.datasets import load_dataset\n"
            "from graphpar.strategies.partitioning.partitioner import compute_partition, part_hash\n"
            "g = load_dataset('pubmed')\n"
            "print(part_hash(compute_partition(g.src, g.dst, g.num_nodes, 3, 'metis').part_id))\n")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           timeout=300).stdout.strip() for _ in range(5)}
    assert len(outs) == 1, outs


# -- every input checked before work starts ---------------------------------------------------------------
RUN = ["run", "--strategy", "tensor", "--dataset", "cora", "--epochs", "1"]
BAD = [
    (RUN + ["--layers", "0"], "--layers must be >= 1"),
    (RUN + ["--layers", "-1"], "--layers must be >= 1"),
    (RUN + ["--hidden", "0"], "--hidden must be >= 1"),
    (RUN + ["--hidden", "-5"], "--hidden must be >= 1"),
    (RUN + ["--hidden", "10000000"], "--hidden must be <="),
    (RUN + ["--dropout", "1.5"], "--dropout must be a finite number in [0, 1)"),
    (RUN + ["--dropout", "nan"], "--dropout must be a finite number"),
    (RUN + ["--lr", "-1"], "--lr must be a finite number > 0"),
    (RUN + ["--lr", "inf"], "--lr must be a finite number > 0"),
    (RUN + ["--weight-decay", "-0.1"], "--weight-decay must be"),
    (RUN + ["--timeout", "0"], "--timeout must be a finite number > 0"),
    (RUN + ["--timeout", "-1"], "--timeout must be a finite number > 0"),
    (RUN + ["--eval-every", "-1"], "--eval-every must be >= 0"),
    (RUN + ["--warmup-epochs", "-1"], "--warmup-epochs must be >= 0"),
    (RUN + ["--prop-steps", "-1"], "--prop-steps must be >= 0"),
    (RUN + ["--epochs", "0"], "--epochs must be >= 1"),
    (RUN + ["--workers", "0"], "--workers must be >= 1"),
    (RUN + ["--seed", "-3"], "--seed must be >= 0"),
    (RUN + ["--nnodes", "0"], "--nnodes 0: pass 1 or more hosts"),
    (RUN + ["--workers", "3", "--nnodes", "2"], "--workers 3 is not divisible by --nnodes 2"),
    (RUN + ["--workers", "2", "--node-rank", "5", "--nnodes", "2"], "--node-rank 5 with --nnodes 2"),
    (RUN + ["--master-port", "70000"], "--master-port 70000"),
    (RUN + ["--workers", "1000"], "exceeds the limit of 64"),
    (RUN + ["--out", "{tmp}"], "is a directory"),
    (RUN + ["--out", "{tmp}/file.txt/runs.jsonl"], "is not writable"),
    (["run", "--strategy", "tensor", "--epochs", "1", "--dataset", "rmat:nodes=100,edges=300,noise=1e400"],
     "noise must be a finite number"),
    (["run", "--strategy", "tensor", "--epochs", "1", "--dataset", "rmat:nodes=10,edges=30,classes=20"],
     "classes=20 exceeds nodes=10"),
    (["run", "--strategy", "tensor", "--epochs", "1", "--dataset", "npz:{tmp}/unlabelled.npz"],
     "no training vertex has a label"),
    (["run", "--strategy", "tensor", "--epochs", "1", "--dataset", "npz:{tmp}"], "not a readable npz file"),
    (["bench", "--dataset", "cora", "--workers", "1,0", "--strategies", "single"], "every worker count must be >= 1"),
    (["bench", "--dataset", "cora", "--workers", "1,x", "--strategies", "single"], "comma list of whole numbers"),
    (["bench", "--dataset", "cora", "--workers", "1", "--strategies", "single,nope"], "unknown strategy 'nope'"),
    (["check", "--strategy", "tensor", "--dataset", "cora", "--tolerance", "0"], "--tolerance 0.0: pass a finite"),
    (["check", "--strategy", "tensor", "--dataset", "cora", "--tolerance", "-1"], "--tolerance -1.0: pass a finite"),
    (["check", "--strategy", "tensor", "--dataset", "cora", "--layers", "0"], "--layers must be >= 1"),
]


@pytest.mark.parametrize("args, expect", BAD, ids=[" ".join(a[3:] if a[0] == "run" else a)[:60] for a, _ in BAD])
def test_bad_input_is_one_line_exit_2_before_any_work(tmp_path, capsys, monkeypatch, args, expect):
    """In-process (the parser and the checks are what run): one line naming the fix, exit 2, nothing
    written, and no worker process started (the launcher would raise)."""
    from graphpar.bench.cli import commands as cli
    from graphpar.bench.runtime import launcher

    (tmp_path / "file.txt").write_text("x")
    labels = np.full(20, -1)
    np.savez(tmp_path / "unlabelled.npz", adj_data=np.ones(19), adj_indices=np.arange(1, 20),
             adj_indptr=np.r_[np.arange(20), 19], adj_shape=(20, 20), attr_matrix=np.ones((20, 3)), labels=labels)

    def no_launch(*a, **k):
        raise AssertionError("a worker was launched for bad input")

    monkeypatch.setattr(launcher, "launch", no_launch)
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = tmp_path / "runs.jsonl"
    if "--out" not in argv and argv[0] != "check":
        argv += ["--out", str(out)]
    before = sorted(p.name for p in tmp_path.iterdir())
    rc = cli.main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert rc == 2, captured.err
    assert len(lines) == 1 and expect in lines[0], captured.err
    assert lines[0].startswith("graphpar: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "bad input wrote something"


def test_many_workers_warn_past_cores_and_force_lifts_the_limit(monkeypatch, capsys):
    from graphpar.bench.cli import commands as cli

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    cli.check_processes(9)
    assert "over 4 per core" in capsys.readouterr().err
    with pytest.raises(cli.UsageError, match="--force"):
        cli.check_processes(65)
    cli.check_processes(65, force=True)


# The survey's findings (notes/hostile_inputs.md, notes/scripts/hostile_inputs.py): every command, not only run.
TOOL = ["--strategies", "single", "--dataset", "cora", "--epochs", "1"]
SPEC_RUN = ["run", "--strategy", "tensor", "--epochs", "1", "--dataset"]
SURVEY = [
    (RUN + ["--layers", "two"], "argument --layers: invalid int value"),  # argparse: one line, no usage block
    (["nope"], "argument command: invalid choice"),
    (["strategies", "extra"], "unrecognized arguments: extra"),
    (RUN + ["--repeat", "0"], "--repeat: 0: pass 1 or more"),
    (RUN + ["--out", "/proc/graphpar.jsonl"], "cannot be written"),  # permission bits say yes (root), open says no
    (RUN + ["--workers", "2", "--nnodes", "2", "--master-addr", "no such host!"], "does not resolve"),
    (SPEC_RUN + ["edgelist:{tmp}/float.txt"], "'1.5' is not a whole number"),
    (SPEC_RUN + ["edgelist:{tmp}/empty.txt"], "need at least one line"),  # numpy's own warning silenced
    (SPEC_RUN + ["npz:{tmp}/empty.npz"], "not a readable npz file"),
    (SPEC_RUN + ["rmat:nodes=100,edges=300,feat=10000000"], "needs about 11 GiB, this host has 4 GiB"),
    (["bench", "--workers", "1", "--model", "gin"] + TOOL, "no configuration can run"),
    (["sweep", "{tmp}/neg_lr.yaml"], "--lr must be a finite number > 0"),
    (["sweep", "{tmp}/bad_model.yaml"], "no configuration can run"),
    (["sweep", "--datasets", "cora", "--strategies", "single", "--out", "{tmp}"], "is a directory"),
    (["plot", "--results", "{tmp}/no_config.jsonl", "--out-dir", "{tmp}/figs"], "not a graphpar run record"),
    (["plot", "--results", "{tmp}/no_epochs.jsonl", "--out-dir", "{tmp}/figs"], "is damaged (missing 'epochs')"),
    (["plot", "--results", "{tmp}/ok.jsonl", "--out-dir", "{tmp}/file.txt/figs"], "is not a writable folder"),
    (["compare", "{tmp}/list.jsonl", "{tmp}/ok.jsonl"], "not a graphpar run record"),
    (["compare", "{tmp}", "{tmp}/ok.jsonl"], "is not a file"),
    (["project", "--results", "{tmp}/ok.jsonl", "--bandwidth-gbps", "nan"], "--bandwidth-gbps nan: pass a finite"),
    (["project", "--results", "{tmp}/ok.jsonl", "--measure-link", "--link-workers", "1000"], "exceeds the limit"),
    (["paper", "gnnpipe", "--results", "{tmp}/ok.jsonl", "--latency-us", "nan"], "pass a bandwidth > 0"),
    (["regress", "--configs", "{tmp}/ci_margins.yaml", "--baseline", "{tmp}/base.json"], "tensor must be > 1"),
    (["regress", "--configs", "{tmp}/ci.yaml", "--baseline", "{tmp}/file.txt"], "not a readable JSON baseline"),
    (["regress", "--configs", "{tmp}/ci.yaml", "--baseline", "{tmp}/base.json", "--control", "nosuchref"],
     "--control nosuchref"),
    (["regress", "--configs", "{tmp}/ci.yaml", "--update", "--baseline", "{tmp}/file.txt/b.json"], "not writable"),
    (["parity", "--strategy", "single", "--dataset", "cora", "--tolerance", "nan"], "--tolerance nan: pass a finite"),
    (["parity", "--strategy", "single", "--dataset", "cora", "--out-dir", "{tmp}/file.txt/p"], "not a writable folder"),
]


def _plant_survey_files(tmp: Path) -> None:

    ok = fake_record("single", 1, dataset="cora")
    files = {"file.txt": "x", "float.txt": "0 1.5\n1 2\n", "empty.txt": "", "empty.npz": "",
             "neg_lr.yaml": "grid: {dataset: [cora], strategy: [single]}\nfixed: {lr: -1, epochs: 1}\n",
             "bad_model.yaml": "grid: {dataset: [cora], strategy: [single], model: [gin]}\nfixed: {epochs: 1}\n",
             "no_config.jsonl": json.dumps({"status": "ok", "run_id": "x"}) + "\n", "list.jsonl": "[1, 2]\n",
             "no_epochs.jsonl": json.dumps({k: v for k, v in ok.items() if k != "epochs"}) + "\n",
             "ok.jsonl": json.dumps(ok) + "\n", "base.json": "{}", "ci.yaml": "datasets: [cora]\nstrategies: [single]\n",
             "ci_margins.yaml": "datasets: [cora]\nmargins: {tensor: 0.5}\n"}
    for name, text in files.items():
        (tmp / name).write_text(text)


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("args, expect", SURVEY, ids=[" ".join(a)[:60] for a, _ in SURVEY])
def test_every_command_rejects_bad_input_in_one_line_before_any_start(tmp_path, capsys, monkeypatch, args, expect):
    """In-process, with every place a process starts (launcher, sweep/CI runners, parity, the link probe)
    raising: one line naming the fix, exit 2, nothing written anywhere under the folder."""
    from graphpar.bench import api
    from graphpar.bench.cli import commands as cli
    from graphpar.bench.cli import harness, parity
    from graphpar.bench.harness import regress, sweep
    from graphpar.bench.runtime import launcher
    from graphpar.datasets import synthetic

    monkeypatch.setattr(synthetic, "host_memory_bytes", lambda: 4 << 30)  # the same verdict on any host
    if "/proc/" in " ".join(args) and (os.geteuid() != 0 or not Path("/proc").is_dir()):
        pytest.skip("the /proc case needs root (elsewhere the permission check already refuses it)")

    def no_start(*a, **k):
        raise AssertionError("a process was started for bad input")

    for mod, name in ((launcher, "launch"), (api, "launch"), (cli, "launch"), (sweep, "_default_runner"),
                      (regress, "run_ci"), (parity, "run_parity"), (harness, "measure_link")):
        monkeypatch.setattr(mod, name, no_start)
    _plant_survey_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if argv[0] in ("run", "bench") and "--out" not in argv:
        argv += ["--out", str(tmp_path / "runs.jsonl")]
    before = _files(tmp_path)
    rc = cli.main(argv)  # argparse's own errors too: main returns their code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2, lines
    assert len(lines) == 1 and expect in lines[0] and "error: " in lines[0], lines
    assert _files(tmp_path) == before, "bad input wrote something"


# -- faults end cleanly -----------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _start_run(tmp_path, *extra, epochs=100000, env_extra=None, workers=2):
    tmp = tmp_path / "tmpdir"
    tmp.mkdir(exist_ok=True)
    env = dict(os.environ, TMPDIR=str(tmp), **(env_extra or {}))
    out = tmp_path / "runs.jsonl"
    proc = subprocess.Popen(CLI + ["run", "--strategy", "tensor", "--dataset", "cora", "--workers", str(workers), "--hidden", "8",
                                   "--epochs", str(epochs), "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    n_workers = workers
    deadline = time.time() + 120
    while time.time() < deadline:  # both workers started (the resource tracker may be a third child)
        workers_now = [k for k in _children(proc.pid) if "spawn_main" in Path(f"/proc/{k}/cmdline").read_text()
                       and "--multiprocessing-fork" in Path(f"/proc/{k}/cmdline").read_text()] \
            if Path(f"/proc/{proc.pid}").exists() else []
        if len(workers_now) >= n_workers:
            time.sleep(3)  # into the training loop
            return proc, workers_now, out, tmp
        time.sleep(0.5)
    proc.kill()
    raise AssertionError("workers never started")


def _gone(pids, within=15.0) -> bool:
    deadline = time.time() + within
    while time.time() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists()
                 and Path(f"/proc/{p}/stat").read_text().split()[2] != "Z"]
        if not alive:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_signal_ends_the_run_with_one_line_and_no_record(tmp_path, sig, code):
    proc, workers, out, tmp = _start_run(tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("[")]
    assert proc.returncode == code, err[-3000:]
    assert len(lines) == 1 and f"interrupted by {sig.name}" in lines[0], err[-3000:]
    assert not out.exists(), "an interrupted run wrote a record"
    assert _gone(workers), "workers outlived the launcher"
    assert not list(tmp.iterdir()), f"left in TMPDIR: {list(tmp.iterdir())}"


def _stderr_of_stopped_run(proc, pids: list[int], limit_s: float) -> tuple[str, float]:
    """(stderr, seconds) of a run whose worker was just stopped; a launcher still running after ``limit_s``
    is killed with its workers and fails the test as a hang."""
    start = time.time()
    try:
        _, err = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        for w in pids:
            os.kill(w, signal.SIGKILL)
        raise AssertionError("the launcher hung on a stopped worker") from None
    return err, time.time() - start


def test_stopped_worker_ends_the_run_within_timeout_plus_grace(tmp_path):
    timeout, grace = 4, 3
    proc, workers, out, tmp = _start_run(tmp_path, "--timeout", str(timeout),
                                         env_extra={"GRAPHPAR_KILL_GRACE_S": str(grace)})
    os.kill(max(workers), signal.SIGSTOP)
    err, elapsed = _stderr_of_stopped_run(proc, workers, timeout + grace + 60)
    assert proc.returncode == 1 and "run failed" in err, err[-3000:]
    assert elapsed < timeout + grace + 30, f"took {elapsed:.0f}s"
    assert not out.exists()
    assert _gone(workers), "the stopped worker was left behind"
    assert not list(tmp.iterdir()), f"left in TMPDIR: {list(tmp.iterdir())}"


def _pid_of_rank(tmp: Path, rank: int) -> int:
    """The pid a rank wrote into its heartbeat file (under the run's temp folder in TMPDIR), once it has."""
    deadline = time.time() + 120
    while time.time() < deadline:
        for beat in tmp.glob(f"graphpar-run-*/heartbeat/rank-{rank}"):
            text = beat.read_text()
            if text:
                return int(text)
        time.sleep(0.5)
    raise AssertionError(f"rank {rank} never beat")


@pytest.mark.parametrize("workers, stopped", [(1, 0), (2, 1)], ids=["P1", "P2-rank1"])
def test_a_stopped_rank_is_named_and_ends_the_run_within_timeout(tmp_path, workers, stopped):
    """The heartbeat watchdog: SIGSTOP of a rank (the only one at P=1, where no peer's collective would ever
    notice) ends the run within --timeout + 30 s, one line naming that rank (not a healthy peer)."""
    timeout = 8
    proc, pids, out, tmp = _start_run(tmp_path, "--timeout", str(timeout), workers=workers,
                                      env_extra={"GRAPHPAR_KILL_GRACE_S": "3"})
    victim = _pid_of_rank(tmp, stopped)
    assert victim in pids
    os.kill(victim, signal.SIGSTOP)
    err, elapsed = _stderr_of_stopped_run(proc, pids, timeout + 90)
    failed = [line for line in err.splitlines() if "run failed" in line]
    assert proc.returncode == 1 and len(failed) == 1, err[-3000:]
    assert f"rank {stopped} on" in failed[0] and "no heartbeat" in failed[0], failed[0]
    assert not [line for line in err.splitlines() if line.startswith("[")], err[-3000:]  # no torch log traceback
    assert elapsed < timeout + 30, f"took {elapsed:.0f}s"
    assert not out.exists() and _gone(pids), "a worker was left behind"


def test_a_local_run_listens_on_loopback_only(tmp_path):
    """One host: the rendezvous and the process group use file stores in the run's private folder, gloo's
    links use loopback; nothing of the launcher or its workers listens on another interface."""
    psutil = pytest.importorskip("psutil")
    proc, pids, out, tmp = _start_run(tmp_path, workers=2)
    try:
        _pid_of_rank(tmp, 1)  # both ranks are past the rendezvous and in training
        time.sleep(2)
        listening = []
        for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
            try:
                listening += [(p.pid, c.laddr.ip) for c in p.net_connections(kind="inet") if c.status == "LISTEN"]
            except psutil.NoSuchProcess:
                continue
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    exposed = [(pid, ip) for pid, ip in listening if ip not in ("127.0.0.1", "::1")]
    assert exposed == [], exposed


def test_sweep_stops_on_ctrl_c_keeps_finished_records_and_resumes(tmp_path, monkeypatch):

    from graphpar.bench.harness import sweep
    from graphpar.bench.record import append_record, read_records
    from graphpar.bench.runtime.launcher import Interrupted

    monkeypatch.setattr(sweep, "git_sha", lambda: "abc123")
    configs = [fake_record("single", 1, dataset=d)["config"] for d in ("g1", "g2", "g3")]
    calls = []

    def runner(cfg, out, interrupt_at="g2"):
        calls.append(cfg["dataset"])
        if cfg["dataset"] == interrupt_at:
            raise Interrupted(signal.SIGINT)
        rec = fake_record("single", 1, dataset=cfg["dataset"])
        rec["config"] = cfg
        append_record(rec, out)
        return rec

    out = tmp_path / "runs.jsonl"
    with pytest.raises(KeyboardInterrupt):
        sweep.run_sweep(configs, out, runner=runner, validator=lambda c: None, progress=False)
    assert calls == ["g1", "g2"], "the sweep went on after Ctrl-C"
    assert [(r["status"], r["config"]["dataset"]) for r in read_records(out)] == [("ok", "g1")]
    again = sweep.run_sweep(configs, out, runner=lambda c, o: runner(c, o, None), validator=lambda c: None,
                            progress=False)
    assert len(again.resumed) == 1 and len(again.ran) == 2
    assert [r["config"]["dataset"] for r in read_records(out)] == ["g1", "g2", "g3"]


def test_no_product_code_reads_files_through_a_code_running_loader():
    """The readers that can run code from their input are gone from the product: torch.load (TorchScript
    archives run in torch < 2.6 even with weights_only=True), torch.jit.load, plain pickle, numpy's
    allow_pickle=True. Pickled data files go through datasets/safeload.py's restricted unpickler only."""
    import re

    root = Path(__file__).resolve().parent.parent
    banned = re.compile(r"torch\.load\(|torch\.jit\.load\(|pickle\.loads?\(|allow_pickle\s*=\s*True|"
                        r"Unpickler\(|torch\.serialization\.load")
    offenders = []
    for folder in ("bench", "strategies", "datasets", "graphpar"):
        for path in (root / folder).rglob("*.py"):
            for i, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#")[0]
                if banned.search(code) and not (path.name == "safeload.py" and "Unpickler(" in code):
                    offenders.append(f"{path.relative_to(root)}:{i}: {line.strip()}")
    assert offenders == [], offenders
