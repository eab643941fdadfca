"""The one in-memory form every dataset takes: plain tensors, no DGL needed.

    from graphpar.datasets import load_dataset; g = load_dataset("cora"); g.to_dgl()

Conventions (documented in the README):
- Edges are directed ``src -> dst``: a message flows from ``src`` into ``dst``, so aggregation at a
  vertex sums over its *in*-edges. Undirected sources are stored with both directions.
- Self-loops are removed at load time; models that need them (GCN, decoupled propagation) add one
  per vertex themselves, so every strategy sees the same graph.
- Duplicate edges are removed. Vertex ids are 0..N-1.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .tensorfile import read_tensors, write_tensors

CACHE_FORMAT_VERSION = 5  # bump when a loader changes what it builds or how it is stored
# (3: tensors + JSON header; 4: npz rows L2-normalised; 5: safetensors files, hash over every header field)


@dataclass
class GraphData:
    """A node-classification graph as plain tensors (see the module docstring for conventions)."""

    name: str
    num_nodes: int
    src: Tensor  # int64 [E]
    dst: Tensor  # int64 [E]
    feat: Tensor  # float32 [N, F]
    label: Tensor  # int64 [N], -1 where unlabelled
    train_mask: Tensor  # bool [N]
    val_mask: Tensor  # bool [N]
    test_mask: Tensor  # bool [N]
    num_classes: int
    meta: dict[str, Any] = field(default_factory=dict)
    _hash: str | None = field(default=None, init=False, repr=False, compare=False)  # memo, never read from a file

    @property
    def num_edges(self) -> int:
        return int(self.src.numel())

    @property
    def num_features(self) -> int:
        return int(self.feat.shape[1])

    def summary(self) -> dict[str, Any]:
        """Counts a record or a table shows for this graph."""
        return {
            "name": self.name,
            "nodes": self.num_nodes,
            "edges": self.num_edges,
            "features": self.num_features,
            "classes": self.num_classes,
            "train": int(self.train_mask.sum()),
            "val": int(self.val_mask.sum()),
            "test": int(self.test_mask.sum()),
            "hash": self.content_hash(),
        }

    def content_hash(self) -> str:
        """sha256 over every tensor's bytes: same hash, same graph, bit for bit (computed, never taken from
        ``meta`` or a file; memoised on the object, so tensors must not change after the first call)."""
        if self._hash:
            return self._hash
        h = hashlib.sha256()
        h.update(f"{self.num_nodes}:{self.num_classes}".encode())
        for t in (self.src, self.dst, self.feat, self.label, self.train_mask, self.val_mask, self.test_mask):
            h.update(str(tuple(t.shape)).encode())
            h.update(memoryview(t.contiguous().numpy()).cast("B"))  # no copy; same bytes as tobytes()
        self._hash = h.hexdigest()[:16]
        return self._hash

    def validate_layout(self) -> None:
        """Raise ValueError when a tensor has the wrong type, dtype or shape (cheap: no pass over the data)."""
        n = self.num_nodes
        if not all(isinstance(getattr(self, k), Tensor) for k in TENSORS):
            raise ValueError(f"dataset {self.name}: every field of {', '.join(TENSORS)} must be a tensor")
        checks = [
            (self.src.dtype == torch.int64 and self.dst.dtype == torch.int64, "edge ids must be int64"),
            (self.src.dim() == 1 and self.src.shape == self.dst.shape, "src and dst must be [E] of one length"),
            (self.feat.dtype == torch.float32 and self.feat.dim() == 2 and self.feat.shape[0] == n,
             "feat must be float32 [N, F]"),
            (self.label.dtype == torch.int64 and self.label.shape == (n,), "label must be int64 [N]"),
        ]
        for mask in (self.train_mask, self.val_mask, self.test_mask):
            checks.append((mask.dtype == torch.bool and mask.shape == (n,), "masks must be bool [N]"))
        for ok, why in checks:
            if not ok:
                raise ValueError(f"dataset {self.name}: {why}")

    def validate(self, values: bool = True) -> None:
        """Raise ValueError when the tensors break the documented conventions (``values=False``: types,
        shapes and edge ids only, for a cache whose hash vouches for the rest)."""
        self.validate_layout()
        n = self.num_nodes
        checks = [
            (self.num_edges == 0 or (int(self.src.min()) >= 0 and int(self.src.max()) < n), "src out of range"),
            (self.num_edges == 0 or (int(self.dst.min()) >= 0 and int(self.dst.max()) < n), "dst out of range"),
        ]
        for ok, why in checks:
            if not ok:
                raise ValueError(f"dataset {self.name}: {why}")
        if not values:
            return
        labelled = self.label[self.train_mask]
        semantic = [
            (n == 0 or (int(self.label.min()) >= -1 and int(self.label.max()) < self.num_classes),
             f"labels must lie in -1..{self.num_classes - 1} (-1 = unlabelled)"),
            (bool((labelled >= 0).any()), "no training vertex has a label (all -1): nothing to train on"),
            (n >= 1 and self.num_classes >= 1, f"needs at least one vertex and one class, has {n} and "
             f"{self.num_classes}"),
            (bool(torch.isfinite(self.feat).all()), "features hold NaN or infinity"),
        ]
        for ok, why in semantic:
            if not ok:
                raise ValueError(f"dataset {self.name}: {why}")

    def to_dgl(self):
        """The same graph as a DGLGraph with ndata feat/label/masks (imports DGL lazily)."""
        import dgl  # noqa: PLC0415  (lazy: GPU machines have no DGL)

        g = dgl.graph((self.src, self.dst), num_nodes=self.num_nodes)
        g.ndata["feat"] = self.feat
        g.ndata["label"] = self.label
        g.ndata["train_mask"] = self.train_mask
        g.ndata["val_mask"] = self.val_mask
        g.ndata["test_mask"] = self.test_mask
        return g

    def in_degrees(self) -> Tensor:
        return torch.bincount(self.dst, minlength=self.num_nodes)

    # -- cache -----------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """A safetensors file with a JSON header (``tensorfile``), written atomically."""
        header = {"format": CACHE_FORMAT_VERSION, "name": self.name, "num_nodes": self.num_nodes,
                  "num_classes": self.num_classes, "hash": self.content_hash(), "meta": self.meta}
        write_tensors(path, {k: getattr(self, k) for k in TENSORS}, header)

    @classmethod
    def load(cls, path: Path) -> "GraphData | None":
        """The cached graph, or None (with one line on stderr) when the file is damaged, stale or edited.

        The file holds tensors and JSON only (``tensorfile``: nothing in it can run code); its own hash over
        every tensor and header field is checked, and the graph's content hash is recomputed from the
        tensors and must equal the one stored at build time."""
        payload, header, why = read_tensors(path, CACHE_FORMAT_VERSION)
        if payload is None:
            return _stale(path, why)
        try:
            graph = cls(name=str(header["name"]), num_nodes=int(header["num_nodes"]),
                        num_classes=int(header["num_classes"]), meta=dict(header["meta"]),
                        **{k: payload[k] for k in TENSORS})
            graph.validate(values=False)  # the rest was validated at build time; the hashes vouch for it
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            return _stale(path, f"{type(e).__name__}: {e}")
        if graph.content_hash() != header.get("hash"):
            return _stale(path, f"content hash {graph.content_hash()} differs from the stored {header.get('hash')}")
        return graph


TENSORS = ("src", "dst", "feat", "label", "train_mask", "val_mask", "test_mask")


def _stale(path: Path, why: str) -> None:
    print(f"graphpar: dataset cache {path} is unusable ({why}); rebuilding it", file=sys.stderr)
    return None


def canonical_edges(src: Tensor, dst: Tensor, num_nodes: int, symmetrize: bool) -> tuple[Tensor, Tensor]:
    """Drop self-loops and duplicates (and add reverse edges when ``symmetrize``), sorted by (dst, src)."""
    src = src.to(torch.int64)
    dst = dst.to(torch.int64)
    if symmetrize:
        src, dst = torch.cat([src, dst]), torch.cat([dst, src])
    keep = src != dst
    src, dst = src[keep], dst[keep]
    key = torch.unique(dst * num_nodes + src)  # sorted, unique
    return key % num_nodes, key // num_nodes


def split_per_class(label: Tensor, num_classes: int, train_per_class: int, val_per_class: int,
                    seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """The Shchur et al. convention for graphs with no fixed split: k train and k' val per class, rest test."""
    gen = torch.Generator().manual_seed(seed)
    n = label.numel()
    train = torch.zeros(n, dtype=torch.bool)
    val = torch.zeros(n, dtype=torch.bool)
    for c in range(num_classes):
        idx = (label == c).nonzero().flatten()
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        train[idx[:train_per_class]] = True
        val[idx[train_per_class:train_per_class + val_per_class]] = True
    test = (label >= 0) & ~train & ~val
    return train, val, test


def random_split(n: int, fractions: tuple[float, float], seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """Seeded train/val/test split by fractions (the rest is test)."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen)
    n_train, n_val = int(fractions[0] * n), int(fractions[1] * n)
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    masks[0][perm[:n_train]] = True
    masks[1][perm[n_train:n_train + n_val]] = True
    masks[2][perm[n_train + n_val:]] = True
    return masks[0], masks[1], masks[2]
