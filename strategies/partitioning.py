"""Vertex partitioners (METIS, random, contiguous), their on-disk cache, and partition quality stats.

    graphpar run --strategy partition --dataset cora --workers 4 --partition metis

    from graphpar.strategies.partitioning import partition_graph, partition_stats
    part_id = partition_graph(graph, 4, "metis")          # int64 [N], values in [0, 4)
    stats = partition_stats(graph.src, graph.dst, part_id, 4)

A partition assigns every vertex one owner. ``metis`` is DGL's own ``metis_partition_assignment``
(edge-cut objective, vertex-balanced, optionally also balanced on in-edges); ``random`` is a seeded
balanced shuffle; ``contiguous`` cuts the id range into P equal chunks (the "chunk" partition of
NeutronTP's motivation). METIS results are cached under ``$GRAPHPAR_DATA/partitions/`` keyed by the
graph's content hash, P, method and balance flag (atomic write), together with the time and peak memory
the computation took, because users of DistDGL find partitioning can cost more than training.
DGL is imported only when METIS is actually computed.
"""
from __future__ import annotations

import contextlib
import io
import os
import resource
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .native_output import captured_native_output

METHODS = ("metis", "random", "contiguous")
CACHE_FORMAT_VERSION = 1


@dataclass
class Partition:
    """A vertex-to-owner assignment and what it cost to compute."""

    part_id: Tensor  # int64 [N], owner rank of every vertex
    num_parts: int
    method: str
    balance_edges: bool
    partition_s: float  # wall time of the original computation (not of a cache load)
    peak_rss_bytes: int  # process peak RSS right after the computation
    peak_rss_growth_bytes: int  # how much the computation raised the process's peak RSS
    cached: bool = False  # loaded from the on-disk cache this time
    load_s: float = 0.0
    log: str = ""  # what METIS's native code printed (kept here, not on the terminal)

    def info(self) -> dict[str, Any]:
        """Record fields (no tensors)."""
        d = asdict(self)
        d.pop("part_id")
        return {f"partition_{k}" if not k.startswith("partition") else k: v for k, v in d.items()}


def _peak_rss() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def contiguous_partition(num_nodes: int, num_parts: int) -> Tensor:
    """Vertex v goes to part floor(v * P / N): P id ranges of equal size (+-1)."""
    return torch.arange(num_nodes, dtype=torch.int64) * num_parts // max(num_nodes, 1)


def random_partition(num_nodes: int, num_parts: int, seed: int = 0) -> Tensor:
    """A seeded shuffle dealt round-robin: parts differ in size by at most one vertex."""
    perm = torch.randperm(num_nodes, generator=torch.Generator().manual_seed(seed))
    part = torch.empty(num_nodes, dtype=torch.int64)
    part[perm] = torch.arange(num_nodes, dtype=torch.int64) % num_parts
    return part


def metis_partition(src: Tensor, dst: Tensor, num_nodes: int, num_parts: int, balance_edges: bool = False) -> Tensor:
    """DGL's METIS (k-way, edge-cut objective) on the symmetrised graph; imports DGL here only."""
    if num_parts == 1:
        return torch.zeros(num_nodes, dtype=torch.int64)
    import dgl  # noqa: PLC0415  (lazy: the torch-only path never needs DGL)

    g = dgl.graph((src, dst), num_nodes=num_nodes, idtype=torch.int64)
    with contextlib.redirect_stdout(io.StringIO()):  # DGL prints timing lines to stdout
        part = dgl.metis_partition_assignment(g, num_parts, balance_edges=balance_edges)
    if part is None:
        raise RuntimeError(f"METIS returned no assignment for {num_nodes} vertices into {num_parts} parts")
    return part.to(torch.int64)


def compute_partition(src: Tensor, dst: Tensor, num_nodes: int, num_parts: int, method: str = "metis",
                      balance_edges: bool = False, seed: int = 0) -> Partition:
    """Partition without touching the cache; times the computation and its peak-memory growth."""
    if method not in METHODS:
        raise ValueError(f"unknown partition method {method!r}; choose one of {', '.join(METHODS)}")
    rss_before = _peak_rss()
    start = time.perf_counter()
    log = ""
    if method == "metis":
        with captured_native_output() as native:
            part = metis_partition(src, dst, num_nodes, num_parts, balance_edges)
        log = native.text
    elif method == "random":
        part = random_partition(num_nodes, num_parts, seed)
    else:
        part = contiguous_partition(num_nodes, num_parts)
    elapsed = time.perf_counter() - start
    rss_after = _peak_rss()
    return Partition(part, num_parts, method, balance_edges and method == "metis", elapsed, rss_after,
                     rss_after - rss_before, log=log)


def cache_path(graph_hash: str, num_parts: int, method: str, balance_edges: bool = False, seed: int = 0,
               root: Path | None = None) -> Path:
    """``$GRAPHPAR_DATA/partitions/<hash>-p<P>-<method>[-edges][-s<seed>].pt``."""
    if root is None:
        from graphpar.datasets.catalog import data_root  # noqa: PLC0415

        root = data_root()
    suffix = ("-edges" if balance_edges and method == "metis" else "") + (f"-s{seed}" if method == "random" else "")
    return Path(root) / "partitions" / f"{graph_hash}-p{num_parts}-{method}{suffix}.pt"


def _save_atomic(part: Partition, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"format": CACHE_FORMAT_VERSION, **asdict(part)}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load(path: Path, num_nodes: int) -> Partition | None:
    start = time.perf_counter()
    try:
        payload = torch.load(path, weights_only=False)
    except (OSError, RuntimeError, EOFError):
        return None
    if payload.pop("format", None) != CACHE_FORMAT_VERSION or payload["part_id"].numel() != num_nodes:
        return None
    return Partition(**{**payload, "cached": True, "load_s": time.perf_counter() - start})


def partition(graph, num_parts: int, method: str = "metis", balance_edges: bool = False, seed: int = 0,
              use_cache: bool = True) -> Partition:
    """The partition of ``graph`` (a GraphData) into ``num_parts``, from the cache when there.

    Only METIS is cached: random and contiguous are cheaper to recompute than to load."""
    if method != "metis" or num_parts == 1 or not use_cache:
        return compute_partition(graph.src, graph.dst, graph.num_nodes, num_parts, method, balance_edges, seed)
    path = cache_path(graph.content_hash(), num_parts, method, balance_edges, seed)
    if path.exists():
        cached = _load(path, graph.num_nodes)
        if cached is not None:
            return cached
    part = compute_partition(graph.src, graph.dst, graph.num_nodes, num_parts, method, balance_edges, seed)
    _save_atomic(part, path)
    return part


def partition_graph(graph, num_parts: int, method: str = "metis", balance_edges: bool = False,
                    seed: int = 0) -> Tensor:
    """Just the owner of every vertex (int64 [N]); see ``partition`` for the costs."""
    return partition(graph, num_parts, method, balance_edges, seed).part_id


def shared_partition(comm, graph, num_parts: int, method: str = "metis", balance_edges: bool = False,
                     seed: int = 0, tag: str = "setup/partition") -> Partition:
    """Rank 0 of ``comm`` partitions (or loads the cache) and sends the assignment to the others.

    Every rank gets the same bits even when METIS is not deterministic across processes, and only one
    process pays METIS's time and memory. Counted under ``tag`` (setup communication)."""
    if comm.world_size == 1:
        return partition(graph, num_parts, method, balance_edges, seed)
    ranks = list(getattr(comm, "global_ranks", range(comm.world_size)))
    if comm.rank == 0:
        part = partition(graph, num_parts, method, balance_edges, seed)
        meta = torch.tensor([part.partition_s, part.peak_rss_bytes, part.peak_rss_growth_bytes, part.cached],
                            dtype=torch.float64)
        for r in ranks[1:]:
            comm.send(part.part_id, r, tag)
            comm.send(meta, r, tag)
        return part
    part_id = comm.recv(torch.empty(graph.num_nodes, dtype=torch.int64), ranks[0], tag)
    meta = comm.recv(torch.empty(4, dtype=torch.float64), ranks[0], tag)
    return Partition(part_id, num_parts, method, balance_edges and method == "metis", float(meta[0]),
                     int(meta[1]), int(meta[2]), bool(meta[3]))


def partition_stats(src: Tensor, dst: Tensor, part_id: Tensor, num_parts: int) -> dict[str, Any]:
    """Quality of a partition for in-edge aggregation (self-loops are never cut, so stored edges suffice).

    - edge_cut: edges whose endpoints have different owners (fraction: over all edges).
    - halo_vertices[p]: distinct remote in-neighbours of part p's vertices (the rows p receives per layer).
    - replication_factor: (N + sum_p halo_p) / N, vertex copies per vertex.
    - owned_vertices[p], local_edges[p] (in-edges of p's vertices), and imbalance = max / mean of each."""
    n = part_id.numel()
    ps, pd = part_id[src], part_id[dst]
    cut = ps != pd
    owned = torch.bincount(part_id, minlength=num_parts)
    local_edges = torch.bincount(pd, minlength=num_parts)
    # distinct (receiving part, remote source) pairs
    pairs = torch.unique(pd[cut] * n + src[cut])
    halo = torch.bincount(pairs // n, minlength=num_parts)

    def imbalance(t: Tensor) -> float:
        mean = float(t.double().mean())
        return float(t.max()) / mean if mean > 0 else 1.0

    return {
        "edge_cut": int(cut.sum()), "edge_cut_fraction": float(cut.double().mean()) if src.numel() else 0.0,
        "replication_factor": (n + int(halo.sum())) / max(n, 1), "halo_vertices": halo.tolist(),
        "owned_vertices": owned.tolist(), "local_edges": local_edges.tolist(),
        "vertex_imbalance": imbalance(owned), "edge_imbalance": imbalance(local_edges),
    }
