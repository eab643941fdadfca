"""Planetoid citation graphs (Cora, CiteSeer, PubMed) from the original ``ind.<name>.*`` files.

    graphpar run --dataset cora ...   |   graphpar run --dataset planetoid:DIR/cora ...

Follows the GCN paper's loader: test ids from ``test.index``, CiteSeer's 15 missing test rows padded
with zero features and no label, features row-normalised, the standard 140/500/1000-style split.
The files are pickles: they are read with ``safeload``'s restricted unpickler (numpy/scipy data only),
so a planted file cannot run code.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .graph import GraphData, canonical_edges
from .safeload import restricted_load

PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph")


def _read(directory: Path, name: str, part: str):
    path = directory / f"ind.{name}.{part}"
    with open(path, "rb") as f:
        try:
            return restricted_load(f, encoding="latin1")
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def _dense(m) -> np.ndarray:
    return np.asarray(m.todense() if hasattr(m, "todense") else m, dtype=np.float32)


def load_planetoid(directory: Path, name: str) -> GraphData:
    """Load ``ind.<name>.*`` from ``directory``; PubMed without ``allx`` gets zero features, flagged in meta."""
    missing = [p for p in (*PARTS, "test.index") if not (directory / f"ind.{name}.{p}").exists()]
    notes = []
    if missing == ["allx"] and name == "pubmed":
        notes.append("ind.pubmed.allx is missing (see SOURCE.md): rows 0..18716 have zero features; "
                     "labels, structure and split are real")
    elif missing:
        raise FileNotFoundError(
            f"planetoid {name}: missing {', '.join('ind.' + name + '.' + p for p in missing)} in {directory}; "
            f"copy the Planetoid files there (see README, Datasets)")
    try:
        return _assemble(directory, name, missing, notes)
    except (IndexError, TypeError, AttributeError, KeyError) as e:  # files that do not fit together
        raise ValueError(f"planetoid {name} in {directory}: the ind.* files do not fit together "
                         f"({type(e).__name__}: {e}); restore the original files") from None


def _assemble(directory: Path, name: str, missing: list[str], notes: list[str]) -> GraphData:
    x, y, tx, ty, ally, graph = (_read(directory, name, p) for p in ("x", "y", "tx", "ty", "ally", "graph"))
    test_idx = np.loadtxt(directory / f"ind.{name}.test.index", dtype=np.int64)
    test_sorted = np.sort(test_idx)
    num_nodes = len(graph)
    n_allx = ally.shape[0]
    allx = _dense(_read(directory, name, "allx")) if "allx" not in missing else np.zeros(
        (n_allx, _dense(x).shape[1]), dtype=np.float32)

    tx_d, ty_d = _dense(tx), np.asarray(ty)
    # CiteSeer has isolated test ids with no tx/ty row: pad with zeros (the GCN paper's fix).
    full_tx = np.zeros((num_nodes - n_allx, tx_d.shape[1]), dtype=np.float32)
    full_ty = np.zeros((num_nodes - n_allx, ty_d.shape[1]), dtype=ty_d.dtype)
    full_tx[test_sorted - n_allx] = tx_d
    full_ty[test_sorted - n_allx] = ty_d
    feat = np.vstack([allx, full_tx])
    onehot = np.vstack([np.asarray(ally), full_ty])
    feat[test_idx] = feat[test_sorted]
    row_sum = feat.sum(1, keepdims=True)
    feat = feat / np.where(row_sum == 0, 1, row_sum)  # row-normalised, as the GCN paper's loader does
    onehot[test_idx] = onehot[test_sorted]
    label = np.where(onehot.sum(1) > 0, onehot.argmax(1), -1).astype(np.int64)

    src = torch.tensor([s for s, nbrs in graph.items() for _ in nbrs], dtype=torch.int64)
    dst = torch.tensor([d for _, nbrs in graph.items() for d in nbrs], dtype=torch.int64)
    src, dst = canonical_edges(src, dst, num_nodes, symmetrize=True)

    n_train = y.shape[0]
    train = torch.zeros(num_nodes, dtype=torch.bool)
    val = torch.zeros(num_nodes, dtype=torch.bool)
    test = torch.zeros(num_nodes, dtype=torch.bool)
    train[:n_train] = True
    val[n_train:n_train + 500] = True
    test[torch.from_numpy(test_idx)] = True
    test &= torch.from_numpy(label >= 0)
    return GraphData(
        name=name, num_nodes=num_nodes, src=src, dst=dst, feat=torch.from_numpy(feat),
        label=torch.from_numpy(label), train_mask=train, val_mask=val, test_mask=test,
        num_classes=int(onehot.shape[1]), meta={"source": f"planetoid:{directory}/{name}", "notes": notes})
