"""OGB node-property graphs read from OGB's own files, with neither ogb's loader nor pickle nor a prompt.

    graphpar run --dataset ogbn-arxiv ...   (files under $GRAPHPAR_DATA/ogb/ogbn_arxiv/)

The folder is the one OGB's zip unpacks to (``arxiv.zip`` -> ``arxiv/``, renamed ``ogbn_arxiv``): the raw
edge, feature and label files (gzipped CSV, or ``.npz`` read with ``allow_pickle=False`` for the binary
papers100M), the split as ``split/<kind>/{train,valid,test}.csv.gz`` and OGB's release marker
``RELEASE_v<version>.txt``. We never call ogb's ``DglNodePropPredDataset``: its ``get_idx_split`` unpickles
a ``split_dict.pt`` found in the folder (a planted one runs code), and a folder without the release marker
makes it ask on stdin whether to delete the folder. Here a folder without the marker is one line saying
what to do; a ``split_dict.pt`` is never read.

When files are missing and OGB's server answers, the zip is downloaded and unpacked (members that would
land outside the folder are refused). Offline (or ``GRAPHPAR_OFFLINE=1``) one line names the folder, the
files and the URL. Directed OGB graphs (arxiv, papers100M) are symmetrised as OGB's own DGL examples do;
the record says so.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .download import offline
from .graph import GraphData, canonical_edges

BASE_URL = "http://snap.stanford.edu/ogb/data/nodeproppred/"


@dataclass(frozen=True)
class OgbGraph:
    """What OGB's master table says about one node-property graph (ogb 1.3.6's ``master.csv``)."""

    zip_name: str  # the zip's name and the folder it unpacks to
    split: str
    binary: bool
    directed: bool  # OGB's add_inverse_edge is False: we symmetrise
    num_classes: int
    version: int = 1

    @property
    def url(self) -> str:
        return f"{BASE_URL}{self.zip_name}.zip"


OGB = {
    "ogbn-arxiv": OgbGraph("arxiv", "time", binary=False, directed=True, num_classes=40),
    "ogbn-products": OgbGraph("products", "sales_ranking", binary=False, directed=False, num_classes=47),
    "ogbn-papers100M": OgbGraph("papers100M-bin", "time", binary=True, directed=True, num_classes=172),
}
OGB_GRAPHS = tuple(OGB)
CSV_FILES = ("edge.csv.gz", "node-feat.csv.gz", "node-label.csv.gz", "num-node-list.csv.gz")
SPLITS = ("train", "valid", "test")


def ogb_dir(root: Path, name: str) -> Path:
    return root / "ogb" / name.replace("-", "_")


def _info(name: str) -> OgbGraph:
    if name not in OGB:
        raise ValueError(f"unknown OGB dataset {name!r}; known: {', '.join(OGB_GRAPHS)}")
    return OGB[name]


def needed_files(name: str) -> list[str]:
    """Every file (relative to the graph's folder) this loader reads."""
    info = _info(name)
    raw = ["raw/data.npz", "raw/node-label.npz"] if info.binary else [f"raw/{f}" for f in CSV_FILES]
    return raw + [f"split/{info.split}/{s}.csv.gz" for s in SPLITS] + [f"RELEASE_v{info.version}.txt"]


def missing_ogb_files(root: Path, name: str) -> list[str]:
    """Files this loader needs that are not on disk."""
    d = ogb_dir(root, name)
    return [f for f in needed_files(name) if not (d / f).is_file()]


def _reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether ``url`` answers a HEAD request (no download)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except OSError:
        return False


def _download(url: str, dest: Path) -> None:
    """``url`` into the file ``dest``."""
    with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:
        shutil.copyfileobj(r, f, 1 << 20)


def _unpack(zip_path: Path, into: Path) -> None:
    """Extract a zip, refusing any member whose path would leave ``into``."""
    into = into.resolve()
    with zipfile.ZipFile(zip_path) as z:
        for member in z.namelist():
            if not (into / member).resolve().is_relative_to(into):
                raise ValueError(f"{zip_path.name}: member {member!r} would land outside {into}; not unpacked")
        z.extractall(into)


def fetch_ogb(root: Path, name: str) -> None:
    """Download and unpack ``name``'s zip into ``$GRAPHPAR_DATA/ogb/`` (folder renamed as ogb names it)."""
    info, target = _info(name), ogb_dir(root, name)
    print(f"{name}: downloading {info.url} into {root / 'ogb'} (once)", file=sys.stderr)
    (root / "ogb").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root / "ogb", prefix=".download-") as tmp:
        zip_path = Path(tmp) / f"{info.zip_name}.zip"
        _download(info.url, zip_path)
        _unpack(zip_path, Path(tmp) / "unpacked")
        unpacked = Path(tmp) / "unpacked" / info.zip_name
        if not unpacked.is_dir():
            raise ValueError(f"{info.url} did not unpack to a folder {info.zip_name}/")
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(unpacked), target)


def _csv(path: Path, dtype) -> np.ndarray:
    import pandas as pd  # noqa: PLC0415  (lazy: only OGB's CSV files need it)

    return np.require(pd.read_csv(path, header=None, compression="gzip").to_numpy(dtype=dtype), requirements="WC")


def _read_raw(d: Path, info: OgbGraph) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """(num_nodes, edge_index [2, E], features [N, F], labels [N] float with NaN where unlabelled)."""
    if info.binary:
        with np.load(d / "raw" / "data.npz", allow_pickle=False) as z:
            edges, feat, n = z["edge_index"], z["node_feat"], int(z["num_nodes_list"][0])
        with np.load(d / "raw" / "node-label.npz", allow_pickle=False) as z:
            label = z["node_label"].reshape(-1).astype(np.float64)
        return n, edges, feat, label
    n = int(_csv(d / "raw" / "num-node-list.csv.gz", np.int64)[0, 0])
    edges = _csv(d / "raw" / "edge.csv.gz", np.int64).T
    feat = _csv(d / "raw" / "node-feat.csv.gz", np.float32)
    label = _csv(d / "raw" / "node-label.csv.gz", np.float64).reshape(-1)
    return n, edges, feat, label


def load_ogb(root: Path, name: str) -> GraphData:
    """``name`` from ``$GRAPHPAR_DATA/ogb/<name>/`` (downloaded first when missing and online)."""
    info, d = _info(name), ogb_dir(root, name)
    missing = missing_ogb_files(root, name)
    release = f"RELEASE_v{info.version}.txt"
    if missing == [release]:
        raise FileNotFoundError(f"{name}: {d} has OGB's files but no {release} (an older OGB release): delete "
                                f"{d} and run again to download the current one, or unzip {info.url} there")
    if missing:
        if offline() or not _reachable(info.url):
            raise FileNotFoundError(
                f"{name}: OGB files missing under {d}: {', '.join(missing)}; and {info.url} is not reachable"
                f"{' (GRAPHPAR_OFFLINE=1)' if offline() else ''}: download it on a machine with internet, unzip it "
                f"into {root / 'ogb'} and rename the folder {info.zip_name} to {d.name}")
        fetch_ogb(root, name)
        still = missing_ogb_files(root, name)
        if still:
            raise FileNotFoundError(f"{name}: the download from {info.url} lacks {', '.join(still)}")
    n, edges, feat, label_f = _read_raw(d, info)
    if edges.ndim != 2 or edges.shape[0] != 2 or feat.shape[0] != n or label_f.shape[0] != n:
        raise ValueError(f"{name}: files under {d} disagree: {n} vertices, edges {edges.shape}, features "
                         f"{feat.shape}, labels {label_f.shape}")
    src, dst = canonical_edges(torch.from_numpy(np.ascontiguousarray(edges[0])),
                               torch.from_numpy(np.ascontiguousarray(edges[1])), n, symmetrize=True)
    masks = []
    for split in SPLITS:
        idx = torch.from_numpy(_csv(d / "split" / info.split / f"{split}.csv.gz", np.int64).reshape(-1))
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise ValueError(f"{name}: split/{info.split}/{split}.csv.gz holds ids outside 0..{n - 1}")
        m = torch.zeros(n, dtype=torch.bool)
        m[idx] = True
        masks.append(m)
    label = torch.from_numpy(np.where(np.isnan(label_f), -1, label_f).astype(np.int64))
    return GraphData(name=name, num_nodes=n, src=src, dst=dst, feat=torch.from_numpy(np.ascontiguousarray(feat,
                     dtype=np.float32)), label=label, train_mask=masks[0], val_mask=masks[1], test_mask=masks[2],
                     num_classes=info.num_classes,
                     meta={"source": f"ogb:{name}", "symmetrized_from_directed": info.directed})
