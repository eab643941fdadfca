"""Loaders on the real shared data (published counts), spec determinism, user specs, OGB's on-disk layout."""
import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from graphpar.datasets import DatasetError, GraphData, load_dataset
from graphpar.datasets.catalog import find_real

# name: (nodes, directed edges after symmetrising without self-loops, features, classes)
PUBLISHED = {
    "cora": (2708, 10556, 1433, 7),
    "citeseer": (3327, 9104, 3703, 6),
    "pubmed": (19717, 88648, 500, 3),
    "amazon-computers": (13752, 491722, 767, 10),
    "coauthor-cs": (18333, 163788, 6805, 15),
    "coauthor-physics": (34493, 495924, 8415, 5),
    "facebook-page-page": (22470, 341646, 4714, 4),
    "ego-twitter": (81306, 2684592, 64, 8),
}


@pytest.mark.parametrize("name", PUBLISHED)
def test_real_graph_counts(name):
    if find_real(name) is None:
        pytest.fail(f"{name}: ../shared/datasets is missing; CI runs with ../shared beside the repo")
    g = load_dataset(name)
    nodes, edges, feats, classes = PUBLISHED[name]
    assert (g.num_nodes, g.num_edges, g.num_features, g.num_classes) == (nodes, edges, feats, classes)
    assert not bool((g.src == g.dst).any()), "self-loops must be removed at load time"


def test_planetoid_standard_split(cora):
    assert (int(cora.train_mask.sum()), int(cora.val_mask.sum()), int(cora.test_mask.sum())) == (140, 500, 1000)


def test_pubmed_missing_features_are_flagged():
    g = load_dataset("pubmed", use_cache=False)
    assert any("allx is missing" in n for n in g.meta["notes"])
    assert float(g.feat[:18717].abs().sum()) == 0.0 and float(g.feat[18717:].abs().sum()) > 0


def test_cache_roundtrip_is_bit_identical(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHPAR_DATA", str(tmp_path))
    first = load_dataset("rmat:nodes=500,edges=3000,feat=8,classes=4,seed=1")
    assert any(tmp_path.joinpath("cache").iterdir())
    again = load_dataset("rmat:nodes=500,edges=3000,feat=8,classes=4,seed=1")
    assert again.content_hash() == first.content_hash()
    fresh = load_dataset("rmat:nodes=500,edges=3000,feat=8,classes=4,seed=1", use_cache=False)
    fresh.meta.pop("_hash", None)
    assert fresh.content_hash() == first.content_hash()


def test_rmat_spec_is_deterministic_and_exact():
    spec = "rmat:nodes=1000,edges=8000,feat=16,classes=5,seed=7"
    a, b = load_dataset(spec, use_cache=False), load_dataset(spec, use_cache=False)
    assert torch.equal(a.src, b.src) and torch.equal(a.dst, b.dst) and torch.equal(a.feat, b.feat)
    assert a.num_edges == 8000 and a.num_nodes == 1000 and a.num_classes == 5
    keys = a.src * 1000 + a.dst
    assert keys.unique().numel() == 8000, "duplicates must be topped up to exactly E unique edges"
    other = load_dataset("rmat:nodes=1000,edges=8000,feat=16,classes=5,seed=8", use_cache=False)
    assert not torch.equal(a.src, other.src)
    deg = a.in_degrees().float()
    assert deg.max() > 8 * deg.mean(), "R-MAT must be power-law (hubs)"


@pytest.mark.parametrize("spec", ["rmat:nodes=10", "rmat:nodes=10,edges=5,colour=3", "rmat:nodes=x,edges=3",
                                  "no-such-graph", "rmat:nodes=3,edges=100"])
def test_bad_specs_are_one_line_errors(spec):
    with pytest.raises(DatasetError) as err:
        load_dataset(spec)
    assert "\n" not in str(err.value)


def test_npz_and_planetoid_user_specs():
    cs = find_real("coauthor-cs")
    g = load_dataset(f"npz:{cs / 'coauthor_cs.npz'}")
    assert g.num_nodes == 18333
    cora_dir = find_real("cora")
    assert load_dataset(f"planetoid:{cora_dir}/cora").num_edges == 10556
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset("npz:/nonexistent/graph.npz")


def test_to_dgl_keeps_everything(cora):
    g = cora.to_dgl()
    assert g.num_nodes() == cora.num_nodes and g.num_edges() == cora.num_edges
    assert torch.equal(g.ndata["label"], cora.label)


def _write_csv_gz(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for r in rows:
            f.write(",".join(str(v) for v in np.atleast_1d(r)) + "\n")


def test_ogb_missing_files_error_names_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHPAR_DATA", str(tmp_path))
    with pytest.raises(DatasetError) as err:
        load_dataset("ogbn-arxiv")
    msg = str(err.value)
    assert str(tmp_path / "ogb" / "ogbn_arxiv") in msg and "raw/edge.csv.gz" in msg and "\n" not in msg


def test_ogb_loader_reads_ogb_on_disk_layout(tmp_path, monkeypatch):
    """A tiny ogbn-arxiv in OGB's own layout goes through ogb's DGL loader (the real code path)."""
    monkeypatch.setenv("GRAPHPAR_DATA", str(tmp_path))
    root = tmp_path / "ogb" / "ogbn_arxiv"
    n, rng = 12, np.random.default_rng(0)
    edges = [(i, (i + 1) % n) for i in range(n)] + [(0, 5), (3, 9)]
    _write_csv_gz(root / "raw" / "edge.csv.gz", edges)
    _write_csv_gz(root / "raw" / "node-feat.csv.gz", rng.standard_normal((n, 4)).round(4))
    _write_csv_gz(root / "raw" / "node-label.csv.gz", [[i % 3] for i in range(n)])
    _write_csv_gz(root / "raw" / "node_year.csv.gz", [[2000 + i] for i in range(n)])
    _write_csv_gz(root / "raw" / "num-node-list.csv.gz", [[n]])
    _write_csv_gz(root / "raw" / "num-edge-list.csv.gz", [[len(edges)]])
    for split, ids in (("train", range(0, 6)), ("valid", range(6, 9)), ("test", range(9, 12))):
        _write_csv_gz(root / "split" / "time" / f"{split}.csv.gz", [[i] for i in ids])
    (root / "RELEASE_v1.txt").write_text("")
    g = load_dataset("ogbn-arxiv")
    assert g.num_nodes == n and g.num_edges == 2 * len(edges)  # symmetrised, as OGB's DGL examples do
    assert g.num_classes == 40 and int(g.train_mask.sum()) == 6 and int(g.test_mask.sum()) == 3
    assert g.meta["symmetrized_from_directed"] is True
