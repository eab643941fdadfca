"""Shchur et al.'s npz graphs (Amazon-Computers, Coauthor-CS, Coauthor-Physics) and any file in that layout.

    graphpar run --dataset coauthor-cs ...   |   graphpar run --dataset npz:PATH/graph.npz ...

Two layouts are read: the original one of plain arrays (``adj_data, adj_indices, adj_indptr, adj_shape``,
``attr_data, attr_indices, attr_indptr, attr_shape`` or a dense ``attr_matrix``, ``labels``) and the one
with scipy matrices pickled as object arrays (``adj_matrix, node_attr, node_label``). ``np.load`` runs
with ``allow_pickle=False``; object arrays go through ``safeload``'s restricted unpickler, so a crafted
file can hold only numpy/scipy data, never code. The adjacency is symmetrised, self-loops dropped; the
split is the usual 20 train / 30 val per class, the rest test (seed 0).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from .graph import GraphData, canonical_edges, split_per_class
from .hostmem import check_fits
from .safeload import restricted_load
from .user_graphs import MAX_CLASSES

LAYOUT = ("keys adj_matrix, node_attr, node_label (scipy matrices) or adj_data, adj_indices, adj_indptr, "
          "adj_shape, attr_*, labels (plain arrays)")


def _object_array(path: Path, key: str):
    """The object stored under ``key`` (an .npy holding a pickle), read with the restricted unpickler."""
    with zipfile.ZipFile(path) as z, z.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _shape, _fortran, dtype = read_header(f)
        if not dtype.hasobject:
            raise ValueError(f"{path}: {key} is not an object array")
        return restricted_load(f)


def _matrix(z, path: Path, key: str):
    """A scipy matrix stored as a pickled object array (0-d array holding it)."""
    try:
        value = z[key]
    except ValueError:  # object array: numpy refuses it with allow_pickle=False
        value = _object_array(path, key)
    if isinstance(value, np.ndarray) and value.dtype == object and value.shape == ():
        value = value.item()
    return value


def _csr_from_parts(z, prefix: str):
    import scipy.sparse as sp  # noqa: PLC0415

    return sp.csr_matrix((z[f"{prefix}_data"], z[f"{prefix}_indices"], z[f"{prefix}_indptr"]),
                         shape=tuple(int(s) for s in z[f"{prefix}_shape"]))


def load_npz(path: Path, name: str | None = None, split_seed: int = 0) -> GraphData:
    """Load an npz in either Shchur layout (see the module docstring) without unpickling code."""
    if not path.exists():
        raise FileNotFoundError(f"npz graph: {path} does not exist; give npz:PATH to a file in the "
                                f"Shchur layout ({LAYOUT})")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # EOFError: an empty file
        raise ValueError(f"{path}: not a readable npz file ({e})") from None
    with z:
        files = set(z.files)
        try:
            if {"adj_matrix", "node_attr", "node_label"} <= files:
                adj, attr = _matrix(z, path, "adj_matrix"), _matrix(z, path, "node_attr")
                label_np = np.asarray(z["node_label"])
            elif {"adj_data", "adj_indices", "adj_indptr", "adj_shape", "labels"} <= files:
                adj = _csr_from_parts(z, "adj")
                attr = z["attr_matrix"] if "attr_matrix" in files else _csr_from_parts(z, "attr")
                label_np = np.asarray(z["labels"])
            else:
                raise ValueError(f"{path}: not in the Shchur npz layout ({LAYOUT}); it has {sorted(files)}")
        except (KeyError, zipfile.BadZipFile, EOFError, OSError) as e:
            raise ValueError(f"{path}: damaged npz file ({type(e).__name__}: {e})") from None
    if not hasattr(adj, "tocoo") or len(getattr(adj, "shape", ())) != 2 or adj.shape[0] != adj.shape[1]:
        raise ValueError(f"{path}: the adjacency must be a square sparse matrix")
    n = adj.shape[0]
    if hasattr(attr, "todense") and len(attr.shape) == 2:  # a sparse shape in a small file: check before densifying
        check_fits(4 * n * int(attr.shape[1]), f"{path}: {n:,} x {attr.shape[1]:,} dense features",
                   "pass a graph whose attr_shape fits this host")
    adj = adj.tocoo()
    feat_np = np.asarray(attr.todense() if hasattr(attr, "todense") else attr, dtype=np.float32)
    if feat_np.ndim != 2 or feat_np.shape[0] != n or label_np.shape != (n,) or label_np.dtype.kind not in "iu":
        raise ValueError(f"{path}: need {n} feature rows and {n} integer labels, got features "
                         f"{feat_np.shape} and labels {label_np.shape} {label_np.dtype}")
    label = torch.from_numpy(label_np.astype(np.int64))
    if n and int(label.max()) >= min(n, MAX_CLASSES):  # the per-class split visits every class id up to the largest
        raise ValueError(f"{path}: label {int(label.max())}; labels are class ids 0..C-1 with C <= {min(n, MAX_CLASSES):,}")
    src, dst = canonical_edges(torch.from_numpy(adj.row.astype(np.int64)),
                               torch.from_numpy(adj.col.astype(np.int64)), n, symmetrize=True)
    num_classes = int(label.max()) + 1 if n else 0
    feat = torch.from_numpy(feat_np)
    # rows to unit L2 norm: raw bag-of-words rows (Amazon: ~270 ones of 767) make Adam's first steps kill
    # most ReLU units of a 16-wide GCN (0.565 test accuracy on seed 3); see notes/staleness.md
    feat = feat / feat.norm(dim=1, keepdim=True).clamp_min(1e-12)
    train, val, test = split_per_class(label, num_classes, 20, 30, split_seed)
    return GraphData(name=name or path.stem, num_nodes=n, src=src, dst=dst, feat=feat,
                     label=label, train_mask=train, val_mask=val, test_mask=test, num_classes=num_classes,
                     meta={"source": f"npz:{path}", "split": "20/30 per class, seed 0",
                           "features": "rows L2-normalised"})
