"""Offline partitions on disk: one file set per part, so each rank loads only its own piece of the graph.

    graphpar partition rmat-products --parts 4 --method random --out parts/rmat-products-p4
    graphpar run --strategy partition --dataset rmat-products --workers 4 --partition-dir parts/rmat-products-p4

``write_parts`` (run once, by ``graphpar partition``, in one process holding the whole graph) partitions with
the partitioner of ``partitioner.py`` and cuts every part's view with the halo construction of ``halo.py``;
``load_part`` (run by each rank) reads one part and rebuilds the exact ``LocalView`` the in-memory path
builds, so both paths train the same numbers and send the same bytes. A folder holds:

- ``manifest.json``: format, dataset name and graph summary (with its content hash), method, seed, parts,
  the partition's record fields and quality (edge cut, halo sizes), and per part its file, sizes and bytes;
  written last, so a folder without one is incomplete.
- ``part-<r>.safetensors``: a tensor file (``graphpar.datasets.tensorfile``: safetensors layout, no pickle,
  nothing in it can run code, one hash over every tensor and header field checked on read) whose JSON
  header gives format, graph hash, rank, parts and the partition's hash; tensors:
  ``owned`` int64 [n_o] global ids ascending; ``halo`` int64 [n_h] global ids grouped by owner (the halo
  map: ``recv_counts[q]`` rows come from rank q); ``indptr`` [n_o + 1] and ``indices`` [E_r] int64, the CSR
  of the owned vertices' in-edges by local destination (sources local, in [0, n_o + n_h), halo included);
  ``out_degree`` int64 [n_o + n_h], global out-degrees (the model's weights need them); ``send_idx`` and
  ``send_counts`` (the rows this rank sends each peer); ``feat`` float32 [n_o, F], ``label`` int64 [n_o],
  ``masks`` bool [3, n_o] (train, val, test).

A rank maps its file copy-on-write (``read_tensors(..., mmap=True)``) rather than reading it whole: the edge arrays are read
once into the aggregation CSR (``PartData.aggregator``) and dropped with their mapping; the features are
mapped again on first read (``PartData.feat``), so setup's peak never holds the features beside the CSR
build's transients.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from graphpar.datasets.atomicfile import write_atomic
from graphpar.datasets.tensorfile import read_header, read_tensors, write_tensors

from ..kernels import CSRMatrix, MatrixAggregator, add_self_loops
from ..libc import M_MMAP_THRESHOLD, mallopt
from .errors import PartitionError
from .halo import LocalView, _view_from_edges
from .partitioner import Partition, partition, partition_stats

FORMAT = 2  # 1: torch.save files; 2: safetensors part files
MANIFEST = "manifest.json"


def part_file(rank: int) -> str:
    return f"part-{rank}.safetensors"


def write_parts(graph, dataset: str, num_parts: int, method: str, out: Path, seed: int = 0,
                balance_edges: bool = False, log=None) -> dict[str, Any]:
    """Partition ``graph`` (GraphData) into ``num_parts`` and write one file per part plus the manifest;
    returns the manifest. Parts are cut and written one at a time (peak: the graph plus one part)."""
    say = log or (lambda _line: None)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # an interrupted rewrite leaves no manifest: incomplete
    start = time.perf_counter()
    part: Partition = partition(graph, num_parts, method, balance_edges, seed)
    say(f"partitioned {graph.num_nodes:,} vertices into {num_parts} parts by {method} "
        f"({part.partition_s:.1f} s{', cached' if part.cached else ''})")
    part_id, n = part.part_id, graph.num_nodes
    out_degree = torch.bincount(graph.src, minlength=n)
    no_weight = torch.zeros(1).expand(graph.src.numel())  # the raw view's weights are never used
    files = []
    for r in range(num_parts):
        v = _view_from_edges(graph.src, graph.dst, no_weight, part_id, r, num_parts)
        order = torch.argsort(v.dst * max(v.num_local, 1) + v.src)
        indptr = torch.zeros(v.num_owned + 1, dtype=torch.int64)
        indptr[1:] = torch.cumsum(torch.bincount(v.dst, minlength=v.num_owned), 0)
        header = {"format": FORMAT, "graph_hash": graph.content_hash(), "rank": r, "parts": num_parts,
                  "partition_hash": part.info()["partition_hash"]}
        payload = {"owned": v.owned, "halo": v.halo, "indptr": indptr,
                   "indices": v.src[order].contiguous(),
                   "out_degree": out_degree[torch.cat([v.owned, v.halo])],
                   "send_idx": v.send_idx, "send_counts": torch.tensor(v.send_counts, dtype=torch.int64),
                   "recv_counts": torch.tensor(v.recv_counts, dtype=torch.int64),
                   "feat": graph.feat[v.owned].contiguous(), "label": graph.label[v.owned],
                   "masks": torch.stack([graph.train_mask[v.owned], graph.val_mask[v.owned],
                                         graph.test_mask[v.owned]])}
        path = out / part_file(r)
        write_tensors(path, payload, header)
        files.append({"file": path.name, "owned": v.num_owned, "halo": v.num_halo, "in_edges": v.num_edges,
                      "bytes": path.stat().st_size})
        say(f"part {r}: {v.num_owned:,} owned, {v.num_halo:,} halo, {v.num_edges:,} in-edges, "
            f"{path.stat().st_size / 2**20:.1f} MiB")
        del v, payload, order, indptr
    quality = partition_stats(graph.src, graph.dst, part_id, num_parts)
    manifest = {"format": FORMAT, "kind": "graphpar.partition", "dataset": dataset, "graph": graph.summary(),
                "method": method, "balance_edges": bool(balance_edges), "seed": seed, "parts": num_parts,
                "partition": part.info(), "quality": quality, "files": files,
                "write_s": time.perf_counter() - start,
                "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_atomic(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def read_manifest(folder: Path, flag: str = "--partition-dir") -> dict[str, Any]:
    """The manifest of a partition folder, or one PartitionError line saying what is wrong and how to fix it."""
    path = Path(folder) / MANIFEST
    make = f"make one with graphpar partition DATASET --parts P --out {folder}"
    if not path.is_file():
        raise PartitionError(f"{flag} {folder} holds no {MANIFEST}; {make}")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PartitionError(f"{flag} {folder}: {MANIFEST} is unreadable ({type(e).__name__}); {make}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("kind") != "graphpar.partition":
        raise PartitionError(f"{flag} {folder}: {MANIFEST} is not a graphpar partition manifest of format {FORMAT}; {make}")
    return manifest


def check_manifest(folder: Path, dataset: str, workers: int, method: str | None = None,
                   flag: str = "--partition-dir") -> dict[str, Any]:
    """The manifest, checked against a run (dataset, P = parts, method if given, every part file there);
    anything that does not match is one PartitionError line naming the fix."""
    m = read_manifest(folder, flag)
    redo = f"graphpar partition {dataset} --parts {workers} --method {m.get('method')} --out DIR"
    if m.get("dataset") != dataset:
        raise PartitionError(f"{flag} {folder} partitions dataset {m.get('dataset')!r}, not --dataset {dataset}; "
                          f"pass --dataset {m.get('dataset')} or partition with {redo}")
    if m.get("parts") != workers:
        raise PartitionError(f"{flag} {folder} holds {m.get('parts')} parts, not --workers {workers}; pass --workers "
                          f"{m.get('parts')} or partition with {redo}")
    if method is not None and m.get("method") != method:
        raise PartitionError(f"{flag} {folder} was partitioned by {m.get('method')}, not --partition {method}; "
                          f"drop --partition or partition again with --method {method}")
    missing = [f["file"] for f in m.get("files", []) if not (Path(folder) / f["file"]).is_file()]
    if missing or len(m.get("files", [])) != workers:
        raise PartitionError(f"{flag} {folder} lacks part files {missing or 'for every rank'}; partition again with {redo}")
    for rank, entry in enumerate(m["files"]):
        why = _part_disagrees(Path(folder), rank, entry, m)
        if why:
            raise PartitionError(f"{flag} {folder}: {entry.get('file')} {why}; partition again with {redo}")
    return m


def _part_disagrees(folder: Path, rank: int, entry: dict[str, Any], m: dict[str, Any]) -> str:
    """Why part file ``entry`` does not belong to manifest ``m`` as rank ``rank``'s ("" when it does):
    its header (read alone, no tensor) against the manifest's graph, parts and partition, its size
    against the manifest's. The full hash is checked when the rank reads it."""
    if entry.get("file") != part_file(rank):
        return f"is listed for rank {rank}, expected {part_file(rank)}"
    path = folder / part_file(rank)
    header = read_header(path)
    if header is None:
        return "is not a graphpar part file (unreadable or damaged header)"
    want = {"format": FORMAT, "graph_hash": (m.get("graph") or {}).get("hash"), "rank": rank, "parts": m.get("parts"),
            "partition_hash": (m.get("partition") or {}).get("partition_hash")}
    wrong = {k: header.get(k) for k, v in want.items() if header.get(k) != v}
    if wrong:
        return f"was written for {wrong}, the manifest says {({k: want[k] for k in wrong})}"
    if path.stat().st_size != entry.get("bytes"):
        return f"holds {path.stat().st_size} bytes, the manifest says {entry.get('bytes')}"
    return ""


@dataclass
class StoredPartition:
    """The partition a folder was written with (what ``Partition`` gives a record, without the owner array)."""

    method: str
    fields: dict[str, Any]

    def info(self) -> dict[str, Any]:
        return dict(self.fields)


@dataclass
class PartData:
    """What one rank of ``partition --partition-dir`` holds: its part, and the graph's counts from the manifest
    (stands in for the GraphData a strategy receives: ``num_features``/``num_classes``/``num_nodes``)."""

    name: str
    num_nodes: int
    num_edges: int
    num_features: int
    num_classes: int
    num_train: int
    rank: int
    num_parts: int
    manifest: dict[str, Any]
    owned: Tensor
    halo: Tensor
    indptr: Tensor
    indices: Tensor
    out_degree: Tensor
    send_idx: Tensor
    send_counts: list[int]
    recv_counts: list[int]
    label: Tensor
    masks: Tensor
    path: Path
    _feat: Tensor | None = None

    @property
    def feat(self) -> Tensor:
        """The owned rows' features (float32 [n_o, F]), a view of the part file mapped on first read: a
        second mapping, so the first one (the edge arrays ``aggregator`` reads once and drops) is unmapped
        by then and its pages leave the rank's memory; nothing of the file is read twice into memory."""
        if self._feat is None:
            payload, _, why = read_tensors(self.path, FORMAT, mmap=True)
            if payload is None:
                raise PartitionError(f"--partition-dir: {self.path.name} became unusable ({why}); partition again")
            self._feat = payload["feat"]
        return self._feat

    def partition(self) -> StoredPartition:
        return StoredPartition(self.manifest["method"], {**self.manifest["partition"], "partition_from_dir": True})

    def drop_edges(self) -> None:
        """Free the in-edge CSR and degrees once a view and its aggregator are built from them."""
        self.indptr = self.indices = self.out_degree = torch.empty(0, dtype=torch.int64)

    def direct_csr(self, kind: str, backend: str) -> bool:
        """Whether ``aggregator`` builds this model's CSR straight from the stored one (gcn/sage on torch;
        gat reads an edge list, dgl builds its own graph: those go through ``view``'s edges)."""
        return kind in ("gcn", "sage") and backend == "torch"

    def aggregator(self, kind: str, device: torch.device | str = "cpu", transpose: bool = True) -> MatrixAggregator:
        """gcn/sage's aggregation straight from the stored in-edge CSR: gcn's self-loop placed in each row at
        its column's place, the global-degree weights, int32 indices, the transpose by one stable sort; no
        (src, dst, weight) list and no int64 sort keys. The same matrix, bit for bit, as ``view(kind)``'s
        edges give ``make_aggregator`` (its CSR sorts each row by column; so is the stored one). Frees the
        part's edge arrays (``drop_edges``) and sets ``local_edges``. ``transpose=False``: no transposed CSR
        (for a ``SplitCSR`` that does without it: setup then never holds nor builds it)."""
        n_o, indptr = self.owned.numel(), self.indptr
        deg = indptr[1:] - indptr[:-1]
        idx = torch.int32 if self.indices.numel() + n_o < 2**31 else torch.int64
        col = self.indices.to(idx)
        self.indices = torch.empty(0, dtype=torch.int64)  # the int64 copy goes now
        rows = torch.repeat_interleave(torch.arange(n_o, dtype=idx), deg)
        self.local_edges = int(col.numel() - (col == rows).sum())
        if kind == "sage":
            vals = deg.clamp(min=1).to(torch.float32).reciprocal().repeat_interleave(deg)
            crow, num_src = indptr, n_o + self.halo.numel()
            out_inv = None
        else:  # one self-loop per row, after the row's columns <= its own index (a key sort's place)
            before = torch.bincount(rows[col <= rows], minlength=n_o) if n_o else deg
            del rows
            crow = indptr + torch.arange(n_o + 1, dtype=torch.int64)
            loop = torch.zeros(int(crow[-1]), dtype=torch.bool)
            loop[crow[:-1] + before] = True
            new_col = torch.empty(int(crow[-1]), dtype=idx)
            new_col.masked_scatter_(~loop, col)
            new_col[loop] = torch.arange(n_o, dtype=idx)
            del loop
            col = new_col
            out_inv = (self.out_degree + 1).to(torch.float32).pow(-0.5)
            vals = out_inv.index_select(0, col).mul_((deg + 1).to(torch.float32).pow(-0.5).repeat_interleave(deg + 1))
            num_src = n_o + self.halo.numel()
        self.drop_edges()
        return MatrixAggregator(CSRMatrix.from_csr(crow, col, vals, num_src, device, transpose))

    def view(self, kind: str, edges: bool = True) -> LocalView:
        """The LocalView ``build_local_view`` gives this rank for a model of ``kind``, bit for bit: the same
        edges (self-loops appended for gcn/decoupled) and the same global-degree weights. ``edges=False``:
        ids and the exchange plan only (the aggregator comes from ``aggregator``)."""
        if not edges:
            empty = torch.empty(0, dtype=torch.int64)
            return LocalView(self.rank, self.num_parts, self.owned, self.halo, empty, empty, torch.empty(0),
                             self.send_idx, list(self.send_counts), list(self.recv_counts))
        n_o = self.owned.numel()
        in_deg = self.indptr[1:] - self.indptr[:-1]
        dst = torch.repeat_interleave(torch.arange(n_o, dtype=torch.int64), in_deg)
        src = self.indices
        if kind == "sage":
            weight = in_deg.clamp(min=1).to(torch.float32).reciprocal()[dst]
        else:  # kernels.add_self_loops + gcn_weights over the global degrees (every vertex has its loop)
            src, dst = add_self_loops(src, dst, n_o)
            out = (self.out_degree + 1).to(torch.float32)
            weight = out.pow(-0.5)[src] * (in_deg + 1).to(torch.float32).pow(-0.5)[dst]
        return LocalView(self.rank, self.num_parts, self.owned, self.halo, src, dst, weight, self.send_idx,
                         list(self.send_counts), list(self.recv_counts))


def return_frees_to_os(threshold: int = 1 << 20) -> None:
    """Serve allocations of ``threshold`` bytes and more by mmap, so freeing them returns them to the OS
    (glibc ``mallopt(M_MMAP_THRESHOLD)``; elsewhere nothing). glibc's default threshold grows up to 32 MB,
    and the 1-32 MB buffers a rank frees in setup and in every epoch then stay in its heap, fragmented:
    measured on rmat-products P=4, 0.10-0.17 GiB of a rank's peak RSS, and no slower epochs without them."""
    mallopt(M_MMAP_THRESHOLD, threshold)


def load_part(folder: Path, rank: int, manifest: dict[str, Any] | None = None) -> PartData:
    """Rank ``rank``'s part of a partition folder (nothing of the other parts is read); the rank's allocator
    returns large frees to the OS from here on (``return_frees_to_os``)."""
    return_frees_to_os()
    m = manifest or read_manifest(folder)
    path = Path(folder) / part_file(rank)
    payload, header, why = read_tensors(path, FORMAT, mmap=True)  # pages are read as the arrays are touched
    if payload is None:
        raise PartitionError(f"--partition-dir {folder}: {path.name} is unusable ({why}); partition again")
    want = {"graph_hash": m["graph"]["hash"], "rank": rank, "parts": m["parts"]}
    wrong = {k: header.get(k) for k, v in want.items() if header.get(k) != v}
    if wrong:
        raise PartitionError(f"--partition-dir {folder}: {path.name} was written for {wrong}, not {want}; partition again")
    g = m["graph"]
    return PartData(name=g["name"], num_nodes=g["nodes"], num_edges=g["edges"], num_features=g["features"],
                    num_classes=g["classes"], num_train=g["train"], rank=rank, num_parts=m["parts"], manifest=m,
                    owned=payload["owned"].clone(), halo=payload["halo"].clone(), indptr=payload["indptr"].clone(),
                    indices=payload["indices"], out_degree=payload["out_degree"].clone(),
                    send_idx=payload["send_idx"].clone(), send_counts=payload["send_counts"].tolist(),
                    recv_counts=payload["recv_counts"].tolist(), label=payload["label"].clone(),
                    masks=payload["masks"].clone(), path=path)  # only indices stays a view of the mapping
