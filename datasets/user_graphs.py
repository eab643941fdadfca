"""Users' own graphs without code: a saved DGLGraph, or an edge list with optional features and labels.

    graphpar run --dataset dgl:graph.bin ...                 # dgl.save_graphs("graph.bin", [g])
    graphpar run --dataset edgelist:edges.txt ...            # "src dst" per line (or src,dst); '#' comments
    graphpar run --dataset edgelist:edges.txt,feat=x.npy,label=y.txt,directed=1

``dgl:`` reads the first graph of the file; ``ndata`` must hold ``feat`` and ``label`` and may hold
``train_mask``/``val_mask``/``test_mask`` (else a 20/30-per-class split, seed 0). ``edgelist:`` makes
the graph undirected unless ``directed=1``; ``feat=`` is a ``.npy`` (no pickles) or text matrix, one row
per vertex, ``label=`` a ``.npy`` or text vector (-1 = unlabelled). Without features or labels they are
seeded synthetic ones (the record says so), as for ego-Twitter.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import torch

from .graph import GraphData, canonical_edges, random_split, split_per_class
from .hostmem import check_fits
from .real import synthetic_node_data
from .synthetic import MAX_NODES

EDGELIST_KEYS = ("feat", "label", "directed")
_INT = re.compile(r"[+-]?[0-9]+")
SYNTHETIC_FEATURES, SYNTHETIC_CLASSES = 64, 8
MAX_CLASSES = 10_000  # the per-class split visits every class: a label of 10**9 would never finish


def load_dgl_file(path: Path) -> GraphData:
    """The first graph of a ``dgl.save_graphs`` file, features/labels/masks from its ``ndata``."""
    if not path.is_file():
        raise FileNotFoundError(f"dgl graph: {path} does not exist; give dgl:PATH to a file written by dgl.save_graphs")
    import dgl  # noqa: PLC0415

    try:
        graphs, _ = dgl.load_graphs(str(path), [0])
    except Exception as e:  # noqa: BLE001  (DGL raises its own error types for a foreign file)
        raise ValueError(f"dgl graph: {path} is not a dgl.save_graphs file ({type(e).__name__})") from None
    g = graphs[0]
    missing = [k for k in ("feat", "label") if k not in g.ndata]
    if missing:
        raise ValueError(f"dgl graph {path}: ndata lacks {', '.join(missing)} (has: {', '.join(sorted(g.ndata)) or 'none'}); "
                         "set g.ndata['feat'] (N x F float) and g.ndata['label'] (N int) before dgl.save_graphs")
    n = g.num_nodes()
    src, dst = g.edges()
    src, dst = canonical_edges(src.to(torch.int64), dst.to(torch.int64), n, symmetrize=False)
    label = g.ndata["label"].view(-1).to(torch.int64)
    num_classes = int(label.max()) + 1
    masks = [g.ndata.get(k) for k in ("train_mask", "val_mask", "test_mask")]
    if all(m is not None for m in masks):
        train, val, test = (m.to(torch.bool).view(-1) for m in masks)
        split = "from ndata"
    else:
        train, val, test = split_per_class(label, num_classes, 20, 30, 0)
        split = "20/30 per class, seed 0 (no train/val/test_mask in ndata)"
    return GraphData(name=path.stem, num_nodes=n, src=src, dst=dst, feat=g.ndata["feat"].to(torch.float32),
                     label=label, train_mask=train, val_mask=val, test_mask=test, num_classes=num_classes,
                     meta={"source": f"dgl:{path}", "split": split})


def parse_edgelist_spec(spec: str) -> dict:
    """``edgelist:PATH[,feat=F][,label=L][,directed=0|1]`` -> {"path", "feat", "label", "directed"}."""
    path, *pairs = spec[len("edgelist:"):].split(",")
    if not path:
        raise ValueError("edgelist: give edgelist:PATH[,feat=F][,label=L][,directed=1]")
    out: dict = {"path": Path(path).expanduser(), "feat": None, "label": None, "directed": False}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or key not in EDGELIST_KEYS:
            raise ValueError(f"edgelist: unknown part {pair!r}; use feat=FILE, label=FILE, directed=0|1")
        if key == "directed":
            if value not in ("0", "1"):
                raise ValueError(f"edgelist: directed={value!r}; use directed=0 or directed=1")
            out["directed"] = value == "1"
        else:
            out[key] = Path(value).expanduser()
    return out


def _read_array(path: Path, what: str) -> np.ndarray:
    """A ``.npy`` memory-mapped (its header's shape is checked against the file, nothing is read yet), or a
    text matrix/vector (as large in memory as the file is on disk)."""
    if not path.is_file():
        raise FileNotFoundError(f"edgelist {what}: {path} does not exist")
    if path.suffix == ".npy":
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as e:  # a header claiming more than the file holds, an object array
            raise ValueError(f"edgelist {what}: {path} is not a readable .npy array ({str(e).splitlines()[0]})") \
                from None
    return np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=1)


def edgelist_bytes(n: int, edges: int, features: int, symmetrize: bool, synthetic_features: bool) -> int:
    """Peak bytes of loading an edge-list graph of ``n`` vertices: the features (three n x F float32
    arrays while synthetic ones are drawn, else the float32 copy), the synthetic labels' vote table, labels,
    masks, and the edges' canonicalisation (about five int64 copies of the stored, symmetrized, edges)."""
    per_vertex = 4 * features * (3 if synthetic_features else 1) + 4 * SYNTHETIC_CLASSES + 3 * 8 + 3
    return n * per_vertex + 5 * 8 * edges * (2 if symmetrize else 1)


def check_edgelist_size(path: Path, n: int, edges: int, features: int, symmetrize: bool, synthetic: bool,
                        available: int | None = None) -> None:
    """Refuse (ValueError) an edge list whose implied vertex count ``n`` (its largest id + 1, or the rows
    of its node files) is beyond MAX_NODES or whose arrays would not fit in the memory available now
    (``available`` bytes if given, else ``hostmem.available_bytes()``)."""
    fix = "number the vertices 0..N-1 (an id is a row index, so the largest id sets N)"
    if n > MAX_NODES:
        raise ValueError(f"edgelist {path}: {n:,} vertices implied, above the {MAX_NODES:,} graphpar takes; {fix}")
    check_fits(edgelist_bytes(n, edges, features, symmetrize, synthetic),
               f"edgelist {path}: {n:,} vertices and {edges:,} edges", f"{fix}, or load it on a larger host", available)


def load_edgelist(spec: str) -> GraphData:
    """An edge list (0-based integer ids) with optional feature and label files."""
    parts = parse_edgelist_spec(spec)
    path = parts["path"]
    if not path.is_file():
        raise FileNotFoundError(f"edgelist: {path} does not exist; one edge 'src dst' (or src,dst) per line, 0-based ids")
    text = path.read_text().replace(",", " ")
    try:
        with warnings.catch_warnings():  # an empty file: numpy warns on stderr; the check below says it in one line
            warnings.simplefilter("ignore")
            edges = np.loadtxt(text.splitlines(), dtype=str, comments="#", ndmin=2)
        if not all(_INT.fullmatch(v) for v in edges.reshape(-1)):  # numpy's int parser truncates 1.5 to 1
            raise ValueError(f"{next(v for v in edges.reshape(-1) if not _INT.fullmatch(v))!r} is not a whole number")
        edges = edges.astype(np.int64)
    except (ValueError, OverflowError) as e:
        raise ValueError(f"edgelist {path}: not integer 'src dst' pairs ({str(e).splitlines()[0]})") from None
    if edges.size == 0 or edges.shape[1] != 2 or edges.min() < 0:
        raise ValueError(f"edgelist {path}: need at least one line of two non-negative integer ids")
    feat = _read_array(parts["feat"], "feat") if parts["feat"] else None
    label = _read_array(parts["label"], "label").reshape(-1) if parts["label"] else None
    n = int(edges.max()) + 1
    for what, arr in (("feat", feat), ("label", label)):
        if arr is not None:
            if len(arr) < n:
                raise ValueError(f"edgelist {what}: {len(arr)} rows but the edges name vertex {n - 1}")
            n = len(arr)
    width = SYNTHETIC_FEATURES if feat is None else int(np.prod(feat.shape[1:], dtype=np.int64))
    check_edgelist_size(path, n, len(edges), width, not parts["directed"], feat is None)
    if label is not None:
        label = np.asarray(label, dtype=np.int64)
        if label.max(initial=-1) >= min(n, MAX_CLASSES):
            raise ValueError(f"edgelist label: class {int(label.max())} in {parts['label']}; labels are class "
                             f"ids 0..C-1 (-1: unlabelled) with C <= {min(n, MAX_CLASSES):,} (vertices, and at "
                             f"most {MAX_CLASSES:,})")
    src, dst = canonical_edges(torch.from_numpy(edges[:, 0].copy()), torch.from_numpy(edges[:, 1].copy()), n,
                               symmetrize=not parts["directed"])
    notes = []
    if feat is None or label is None:
        syn_feat, syn_label = synthetic_node_data(src, dst, n, SYNTHETIC_FEATURES, SYNTHETIC_CLASSES)
        notes.append(f"synthetic {' and '.join(w for w, a in (('features', feat), ('labels', label)) if a is None)}")
    feat_t = torch.from_numpy(np.array(feat, dtype=np.float32)).reshape(n, -1) if feat is not None else syn_feat
    label_t = torch.from_numpy(label) if label is not None else syn_label
    num_classes = int(label_t.max()) + 1
    if label is not None:
        train, val, test = split_per_class(label_t, num_classes, 20, 30, 0)
    else:
        train, val, test = random_split(n, (0.6, 0.2), 0)
    return GraphData(name=path.stem, num_nodes=n, src=src, dst=dst, feat=feat_t, label=label_t,
                     train_mask=train, val_mask=val, test_mask=test, num_classes=num_classes,
                     meta={"source": f"edgelist:{path}", "directed": parts["directed"], "notes": notes})
