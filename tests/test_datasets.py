"""Loaders on the carried real graphs (published counts, checksums), spec determinism, user specs (npz,
planetoid, dgl, edgelist), downloads, OGB's on-disk layout."""
import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CARRIED, need_graph

from graphpar.datasets import DatasetError, load_dataset
from graphpar.datasets.catalog import find_real, repo_data_dir

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
    need_graph(name)
    g = load_dataset(name)
    nodes, edges, feats, classes = PUBLISHED[name]
    assert (g.num_nodes, g.num_edges, g.num_features, g.num_classes) == (nodes, edges, feats, classes)
    assert not bool((g.src == g.dst).any()), "self-loops must be removed at load time"


def test_planetoid_standard_split(cora):
    assert (int(cora.train_mask.sum()), int(cora.val_mask.sum()), int(cora.test_mask.sum())) == (140, 500, 1000)


def test_pubmed_missing_features_are_flagged():
    if find_real("pubmed") != repo_data_dir() / "pubmed":
        pytest.skip("a complete PubMed is installed under $GRAPHPAR_DATA")
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
    cs = need_graph("coauthor-cs")
    g = load_dataset(f"npz:{cs / 'coauthor_cs.npz'}")
    assert g.num_nodes == 18333
    cora_dir = need_graph("cora")
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
    """A tiny ogbn-arxiv in OGB's own layout (what OGB's zip unpacks to) loads."""
    monkeypatch.setenv("GRAPHPAR_DATA", str(tmp_path))
    n, edges = 12, [None] * _tiny_arxiv(tmp_path / "ogb" / "ogbn_arxiv")
    g = load_dataset("ogbn-arxiv")
    assert g.num_nodes == n and g.num_edges == 2 * len(edges)  # symmetrised, as OGB's DGL examples do
    assert g.num_classes == 40 and int(g.train_mask.sum()) == 6 and int(g.test_mask.sum()) == 3
    assert g.meta["symmetrized_from_directed"] is True


def _tiny_arxiv(root: Path) -> int:
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
    return len(edges)


def test_ogb_downloads_when_online(tmp_path, monkeypatch):
    """Files missing + server reachable: OGB's zip is downloaded (here a zip in OGB's layout), unpacked,
    renamed as ogb names the folder, and read."""
    import zipfile

    from graphpar.datasets import ogb_loader

    monkeypatch.setenv("GRAPHPAR_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("GRAPHPAR_OFFLINE", raising=False)
    num_edges = _tiny_arxiv(tmp_path / "src" / "arxiv")
    fetched = []

    def fake_download(url, dest):
        fetched.append(url)
        with zipfile.ZipFile(dest, "w") as z:
            for f in (tmp_path / "src").rglob("*"):
                z.write(f, f.relative_to(tmp_path / "src"))

    monkeypatch.setattr(ogb_loader, "_reachable", lambda url, timeout=5.0: True)
    monkeypatch.setattr(ogb_loader, "_download", fake_download)
    g = load_dataset("ogbn-arxiv", use_cache=False)
    assert fetched == ["http://snap.stanford.edu/ogb/data/nodeproppred/arxiv.zip"]
    assert g.num_nodes == 12 and g.num_edges == 2 * num_edges
    assert not [p for p in (tmp_path / "data" / "ogb").iterdir() if p.name != "ogbn_arxiv"]  # no leftovers


def test_ogb_zip_members_outside_the_folder_are_refused(tmp_path, monkeypatch):
    import zipfile

    from graphpar.datasets import ogb_loader

    monkeypatch.setenv("GRAPHPAR_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("GRAPHPAR_OFFLINE", raising=False)

    def evil_download(url, dest):
        with zipfile.ZipFile(dest, "w") as z:
            z.writestr("../../../escaped.txt", "x")

    monkeypatch.setattr(ogb_loader, "_reachable", lambda url, timeout=5.0: True)
    monkeypatch.setattr(ogb_loader, "_download", evil_download)
    with pytest.raises(DatasetError, match="outside"):
        load_dataset("ogbn-arxiv", use_cache=False)
    assert not list(tmp_path.rglob("escaped.txt"))


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.marker}",))


def test_ogb_split_dict_payload_is_never_read(tmp_path, monkeypatch):
    """ogb's get_idx_split unpickles split/<kind>/split_dict.pt when present; we read the CSV split only."""
    import pickle

    monkeypatch.setenv("GRAPHPAR_DATA", str(tmp_path))
    folder = tmp_path / "ogb" / "ogbn_arxiv"
    _tiny_arxiv(folder)
    marker = tmp_path / "PAYLOAD_RAN"
    (folder / "split" / "time" / "split_dict.pt").write_bytes(pickle.dumps({"train": _Payload(marker)}))
    torch.save({"train": _Payload(marker)}, folder / "split" / "time" / "split_dict.pt")
    g = load_dataset("ogbn-arxiv", use_cache=False)
    assert not marker.exists() and int(g.train_mask.sum()) == 6


def test_ogb_folder_without_release_marker_is_one_line_never_a_prompt(tmp_path, monkeypatch):
    """ogb asks 'Will you update the dataset now? (y/N)' on stdin (and deletes the folder on y); we say
    what to do in one line and touch nothing."""
    import builtins

    monkeypatch.setenv("GRAPHPAR_DATA", str(tmp_path))
    folder = tmp_path / "ogb" / "ogbn_arxiv"
    _tiny_arxiv(folder)
    (folder / "RELEASE_v1.txt").unlink()
    monkeypatch.setattr(builtins, "input", lambda *_a: pytest.fail("prompted"))
    with pytest.raises(DatasetError) as err:
        load_dataset("ogbn-arxiv", use_cache=False)
    assert "RELEASE_v1.txt" in str(err.value) and "\n" not in str(err.value)
    assert (folder / "raw" / "edge.csv.gz").is_file()


def test_carried_graphs_match_their_pinned_checksums():
    from graphpar.datasets.download import SOURCES, bad_files

    carried = sorted(p.name for p in repo_data_dir().iterdir() if p.is_dir())
    assert carried == sorted(CARRIED)
    for name in carried:
        assert (repo_data_dir() / name / "SOURCE.md").is_file(), name
        assert bad_files(name, repo_data_dir() / name) == [], name
    assert set(carried) <= set(SOURCES)


def test_real_graphs_are_never_looked_up_relative_to_cwd(tmp_path, monkeypatch):
    from graphpar.datasets.catalog import search_dirs

    fake = tmp_path / "shared" / "datasets" / "ego-twitter"
    fake.mkdir(parents=True)
    (fake / "ego-twitter-undirected.jlg").write_text("2,1,u,x\n1,2\n")
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    monkeypatch.setenv("GRAPHPAR_DATA", str(tmp_path / "data"))
    assert search_dirs() == [repo_data_dir(), (tmp_path / "data").resolve()]
    assert find_real("ego-twitter") is None


def test_missing_real_graph_offline_is_one_line_with_urls(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHPAR_DATA", str(tmp_path))
    monkeypatch.setenv("GRAPHPAR_OFFLINE", "1")
    with pytest.raises(DatasetError) as err:
        load_dataset("ego-twitter")
    msg = str(err.value)
    assert "\n" not in msg and "raw.githubusercontent.com/JuliaGraphs" in msg and str(tmp_path / "ego-twitter") in msg


def test_download_keeps_only_verified_files(tmp_path, monkeypatch):
    import hashlib

    from graphpar.datasets import download

    monkeypatch.delenv("GRAPHPAR_OFFLINE", raising=False)
    src = tmp_path / "remote.txt"
    src.write_bytes(b"0 1\n1 2\n")
    good = download.Remote("g.txt", src.as_uri(), src.stat().st_size, hashlib.sha256(src.read_bytes()).hexdigest())
    monkeypatch.setitem(download.SOURCES, "toy", (good,))
    assert download.fetch("toy", tmp_path / "toy").joinpath("g.txt").read_bytes() == src.read_bytes()
    bad = download.Remote("h.txt", src.as_uri(), src.stat().st_size, "0" * 64)
    monkeypatch.setitem(download.SOURCES, "toy", (bad,))
    with pytest.raises(download.DownloadError, match="expected 000000000000") as err:
        download.fetch("toy", tmp_path / "toy")
    assert "\n" not in str(err.value) and not list((tmp_path / "toy").glob("h.txt*"))
    gone = download.Remote("x.txt", (tmp_path / "nowhere.txt").as_uri(), 1, "0" * 64)
    monkeypatch.setitem(download.SOURCES, "toy", (gone,))
    with pytest.raises(download.DownloadError, match="download failed"):
        download.fetch("toy", tmp_path / "toy")


def test_saved_dgl_graph_loads_and_names_what_is_missing(tmp_path):
    import dgl

    g = dgl.graph((torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 3, 0])), num_nodes=5)
    g.ndata["feat"] = torch.arange(15, dtype=torch.float32).view(5, 3)
    dgl.save_graphs(str(tmp_path / "nolabel.bin"), [g])
    with pytest.raises(DatasetError, match="ndata lacks label") as err:
        load_dataset(f"dgl:{tmp_path / 'nolabel.bin'}")
    assert "\n" not in str(err.value)
    g.ndata["label"] = torch.tensor([0, 1, 0, 1, 1])
    for key, mask in (("train_mask", [1, 1, 0, 0, 0]), ("val_mask", [0, 0, 1, 0, 0]), ("test_mask", [0, 0, 0, 1, 1])):
        g.ndata[key] = torch.tensor(mask, dtype=torch.bool)
    dgl.save_graphs(str(tmp_path / "g.bin"), [g])
    d = load_dataset(f"dgl:{tmp_path / 'g.bin'}")
    assert (d.num_nodes, d.num_edges, d.num_features, d.num_classes) == (5, 4, 3, 2)
    assert torch.equal(d.feat, g.ndata["feat"]) and d.train_mask.tolist() == [True, True, False, False, False]
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(f"dgl:{tmp_path / 'none.bin'}")


def test_edgelist_spec_with_and_without_node_files(tmp_path):
    (tmp_path / "e.txt").write_text("# a ring\n0 1\n1 2\n2,3\n3 0\n3 3\n")
    g = load_dataset(f"edgelist:{tmp_path / 'e.txt'}")
    assert (g.num_nodes, g.num_edges) == (4, 8) and "synthetic features and labels" in g.meta["notes"]
    np.save(tmp_path / "x.npy", np.eye(6, dtype=np.float32))
    (tmp_path / "y.txt").write_text("0\n1\n0\n1\n-1\n1\n")
    d = load_dataset(f"edgelist:{tmp_path / 'e.txt'},feat={tmp_path / 'x.npy'},label={tmp_path / 'y.txt'},directed=1")
    assert (d.num_nodes, d.num_edges, d.num_features, d.num_classes) == (6, 4, 6, 2)
    assert int(d.label[4]) == -1 and not bool(d.test_mask[4])
    for spec, expect in ((f"edgelist:{tmp_path / 'e.txt'},colour=1", "unknown part"),
                         (f"edgelist:{tmp_path / 'e.txt'},directed=yes", "directed=0 or directed=1"),
                         (f"edgelist:{tmp_path / 'none.txt'}", "does not exist")):
        with pytest.raises(DatasetError, match=expect) as err:
            load_dataset(spec)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("argv, expect", [
    ([], "name the graphs to fetch"),
    (["nope"], "unknown graph 'nope'"),
    (["--verify", "nope"], "unknown graph 'nope'"),
    (["--verify", "ego-twitter"], "ego-twitter is not carried"),
    (["cora", "--bogus"], "unrecognized arguments: --bogus"),
    (["ego-twitter"], "GRAPHPAR_OFFLINE=1; download ego-twitter-undirected.jlg from https://"),
])
def test_download_tool_bad_input_is_one_line_exit_2_nothing_written(tmp_path, monkeypatch, capsys, argv, expect):
    """``python -m graphpar.datasets``: the command line's promise too (one stderr line, exit 2, nothing kept)."""
    from graphpar.datasets.__main__ import main

    monkeypatch.setenv("GRAPHPAR_DATA", str(tmp_path))
    monkeypatch.setenv("GRAPHPAR_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own error (one line through the tool's parser)
        rc = e.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert rc == 2 and len(err) == 1 and expect in err[0] and "error: " in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_download_tool_verifies_the_named_carried_graphs(capsys):
    from graphpar.datasets.__main__ import main

    assert main(["--verify", "cora", "coauthor-cs"]) == 0
    assert capsys.readouterr().out.split() == ["cora", "ok", "coauthor-cs", "ok"]


def test_missing_real_graph_downloads_on_first_use_to_the_same_tensors(tmp_path, monkeypatch):
    """Online, a real graph found nowhere is fetched into $GRAPHPAR_DATA/<name>/ (every file sha256-checked) and
    loads to the same tensors as the carried copy. The 'network' is the carried files as file:// URLs."""
    from graphpar.datasets import catalog, download

    carried = load_dataset("cora", use_cache=False)
    monkeypatch.setitem(download.SOURCES, "cora", tuple(
        download.Remote(r.name, (repo_data_dir() / "cora" / r.name).as_uri(), r.size, r.sha256)
        for r in download.SOURCES["cora"]))
    empty = tmp_path / "no-carried-graphs"
    empty.mkdir()
    monkeypatch.setattr(catalog, "repo_data_dir", lambda: empty)
    monkeypatch.setenv("GRAPHPAR_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("GRAPHPAR_OFFLINE", raising=False)
    assert catalog.find_real("cora") is None
    got = load_dataset("cora")
    assert catalog.find_real("cora") == (tmp_path / "data" / "cora").resolve()
    assert sorted(p.name for p in (tmp_path / "data" / "cora").iterdir()) == sorted(r.name for r in
                                                                                   download.SOURCES["cora"])
    for field in ("src", "dst", "feat", "label", "train_mask", "val_mask", "test_mask"):
        assert torch.equal(getattr(got, field), getattr(carried, field)), field
    monkeypatch.setenv("GRAPHPAR_OFFLINE", "1")  # what was fetched stays: later loads need no network
    assert torch.equal(load_dataset("cora", use_cache=False).feat, carried.feat)


def test_dgl_data_planetoid_gives_the_same_tensors_as_the_loader(tmp_path):
    """graphpar fetches the pinned Planetoid ind.* files itself (read through the restricted unpickler) rather than
    through dgl.data, whose loader unpickles them with plain pickle; on the same files dgl.data's
    CoraGraphDataset gives the same graph, features, labels and split (the files are sha256-checked: trusted)."""
    import shutil

    from dgl.data import citation_graph

    class LocalCora(citation_graph.CoraGraphDataset):
        def download(self):  # the same files dgl.data's cora_v2.zip holds, under its names, no network
            Path(self.raw_path).mkdir(parents=True)
            for f in (repo_data_dir() / "cora").glob("ind.cora.*"):
                shutil.copy(f, Path(self.raw_path) / f.name.replace("ind.cora.", "ind.cora_v2."))

    g = LocalCora(raw_dir=str(tmp_path), verbose=False)[0]
    ours = load_dataset("cora", use_cache=False)
    src, dst = g.edges()
    keep = src != dst
    assert g.num_nodes() == ours.num_nodes
    assert set(zip(src[keep].tolist(), dst[keep].tolist())) == set(zip(ours.src.tolist(), ours.dst.tolist()))
    assert torch.allclose(g.ndata["feat"], ours.feat, rtol=0, atol=1e-6)
    assert torch.equal(g.ndata["label"], ours.label)
    for mask in ("train_mask", "val_mask", "test_mask"):
        assert torch.equal(g.ndata[mask].bool(), getattr(ours, mask)), mask
