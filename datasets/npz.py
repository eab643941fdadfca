"""Shchur et al.'s npz graphs (Amazon-Computers, Coauthor-CS, Coauthor-Physics) and any file in that layout.

    graphpar run --dataset coauthor-cs ...   |   graphpar run --dataset npz:PATH/graph.npz ...

The sparse matrices are pickled inside the npz (trusted files only). The adjacency is symmetrised,
self-loops dropped; the split is the usual 20 train / 30 val per class, the rest test (seed 0).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .graph import GraphData, canonical_edges, split_per_class


def load_npz(path: Path, name: str | None = None, split_seed: int = 0) -> GraphData:
    """Load an npz with keys adj_matrix, node_attr, node_label (scipy CSR objects pickled inside)."""
    if not path.exists():
        raise FileNotFoundError(f"npz graph: {path} does not exist; give npz:PATH to a file in the "
                                "Shchur layout (keys adj_matrix, node_attr, node_label)")
    z = np.load(path, allow_pickle=True)
    missing = {"adj_matrix", "node_attr", "node_label"} - set(z.files)
    if missing:
        raise ValueError(f"{path}: not in the Shchur npz layout, missing keys {sorted(missing)}")
    adj = z["adj_matrix"].item().tocoo()
    attr = z["node_attr"].item()
    label = torch.from_numpy(np.asarray(z["node_label"]).astype(np.int64))
    n = adj.shape[0]
    src, dst = canonical_edges(torch.from_numpy(adj.row.astype(np.int64)),
                               torch.from_numpy(adj.col.astype(np.int64)), n, symmetrize=True)
    feat = torch.from_numpy(np.asarray(attr.todense(), dtype=np.float32))
    # rows to unit L2 norm: raw bag-of-words rows (Amazon: ~270 ones of 767) make Adam's first steps kill
    # most ReLU units of a 16-wide GCN (0.565 test accuracy on seed 3); see notes/staleness.md
    feat = feat / feat.norm(dim=1, keepdim=True).clamp_min(1e-12)
    num_classes = int(label.max()) + 1
    train, val, test = split_per_class(label, num_classes, 20, 30, split_seed)
    return GraphData(name=name or path.stem, num_nodes=n, src=src, dst=dst, feat=feat, label=label,
                     train_mask=train, val_mask=val, test_mask=test, num_classes=num_classes,
                     meta={"source": f"npz:{path}", "split": "20/30 per class, seed 0",
                           "features": "rows L2-normalised"})
