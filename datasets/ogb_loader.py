"""OGB node-property graphs through ogb's own DGL loader, offline-safe.

    graphpar run --dataset ogbn-arxiv ...   (files under $GRAPHPAR_DATA/ogb/ogbn_arxiv/)

When the files are not on disk and OGB's server answers, ogb's own loader downloads and unpacks them
(its yes/no prompt for files over 1 GB is answered yes: naming the graph asked for it). Offline (or
``GRAPHPAR_OFFLINE=1``) it would fail deep inside, so we check first and name the directory, the
files and the URL in one line. Directed OGB graphs (arxiv, papers100M) are symmetrised as OGB's own
DGL examples do; the record says so.
"""
from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

import torch

from .download import offline
from .graph import GraphData, canonical_edges

OGB_GRAPHS = ("ogbn-arxiv", "ogbn-products", "ogbn-papers100M")
RAW_FILES = ("edge.csv.gz", "node-feat.csv.gz", "node-label.csv.gz", "num-node-list.csv.gz",
             "num-edge-list.csv.gz")


def ogb_dir(root: Path, name: str) -> Path:
    return root / "ogb" / name.replace("-", "_")


def missing_ogb_files(root: Path, name: str) -> list[str]:
    """Files OGB's loader needs that are not on disk (empty when a processed cache exists)."""
    d = ogb_dir(root, name)
    if (d / "processed" / "dgl_data_processed").exists():
        return []
    meta = _meta(name)
    if meta["binary"] == "True":
        need = ["raw/data.npz", "raw/node-label.npz"]
    else:
        extra = [] if meta["additional node files"] == "None" else meta["additional node files"].split(",")
        need = [f"raw/{f}" for f in RAW_FILES] + [f"raw/{f}.csv.gz" for f in extra]
    need += [f"split/{meta['split']}/{s}.csv.gz" for s in ("train", "valid", "test")]
    need.append(f"RELEASE_v{meta['version']}.txt")
    return [f for f in need if not (d / f).exists()]


def _reachable(url: str, timeout: float = 5.0) -> bool:
    """Whether ``url`` answers a HEAD request (no download)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return True
    except OSError:
        return False


def _meta(name: str) -> dict:
    os.environ.setdefault("OUTDATED_IGNORE", "1")
    import ogb.nodeproppred  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    master = pd.read_csv(Path(ogb.nodeproppred.__file__).parent / "master.csv", index_col=0, keep_default_na=False)
    if name not in master:
        raise ValueError(f"unknown OGB dataset {name!r}; known: {', '.join(OGB_GRAPHS)}")
    return dict(master[name])


def load_ogb(root: Path, name: str) -> GraphData:
    """Load through ``ogb.nodeproppred.DglNodePropPredDataset`` with root ``$GRAPHPAR_DATA/ogb``."""
    missing = missing_ogb_files(root, name)
    url = _meta(name)["url"]
    if missing and (offline() or not _reachable(url)):
        raise FileNotFoundError(
            f"{name}: OGB files missing under {ogb_dir(root, name)}: {', '.join(missing)}; and {url} is not "
            f"reachable{' (GRAPHPAR_OFFLINE=1)' if offline() else ''}: download it on a machine with internet "
            f"and unzip it into {root / 'ogb'}")
    os.environ.setdefault("OUTDATED_IGNORE", "1")
    import ogb.nodeproppred.dataset_dgl as ogb_dgl  # noqa: PLC0415

    if missing:
        print(f"{name}: downloading {url} into {root / 'ogb'} (once)", file=sys.stderr)
        ogb_dgl.decide_download = lambda _url: True  # ogb would ask on stdin for files over 1 GB
    ds = ogb_dgl.DglNodePropPredDataset(name=name, root=str(root / "ogb"))
    g, label = ds[0]
    split = ds.get_idx_split()
    n = g.num_nodes()
    src, dst = g.edges()
    directed = not _meta(name)["add_inverse_edge"] == "True"
    src, dst = canonical_edges(src, dst, n, symmetrize=True)
    masks = []
    for key in ("train", "valid", "test"):
        m = torch.zeros(n, dtype=torch.bool)
        m[split[key]] = True
        masks.append(m)
    label = label.view(-1)
    label = torch.where(torch.isnan(label.float()), torch.tensor(-1.0), label.float()).to(torch.int64)
    return GraphData(name=name, num_nodes=n, src=src, dst=dst, feat=g.ndata["feat"].to(torch.float32),
                     label=label, train_mask=masks[0], val_mask=masks[1], test_mask=masks[2],
                     num_classes=int(ds.num_classes),
                     meta={"source": f"ogb:{name}", "symmetrized_from_directed": directed})
