"""Vertex partitioners (METIS, random, contiguous), their on-disk cache, and partition quality stats.

    graphpar run --strategy partition --dataset cora --workers 4 --partition metis

    from graphpar.strategies.partitioning.partitioner import partition_graph, partition_stats
    part_id = partition_graph(graph, 4, "metis")          # int64 [N], values in [0, 4)
    stats = partition_stats(graph.src, graph.dst, part_id, 4)

A partition assigns every vertex one owner. ``metis`` is DGL's own ``metis_partition_assignment``
(edge-cut objective, vertex-balanced, optionally also balanced on in-edges); ``random`` is a seeded
balanced shuffle; ``contiguous`` cuts the id range into P equal chunks (the "chunk" partition of
NeutronTP's motivation). METIS results are cached under ``$GRAPHPAR_DATA/partitions/`` keyed by the
graph's content hash, P, method and balance flag (atomic write, plain tensors + a JSON header read with
``weights_only=True``), together with the time and peak memory the computation took, because users of
DistDGL find partitioning can cost more than training. A cache that is damaged, edited or does not fit
the graph (ids out of range, wrong size, hash mismatch) is recomputed with one line saying so.
DGL is imported only when METIS is actually computed.

Determinism: DGL's bundled METIS reads heap memory it never wrote, so the same graph gave different
partitions from run to run (and different byte counts). ``metis_partition`` sets glibc's M_PERTURB
around the call, which fills every fresh allocation with a fixed byte: same graph, same partition, every
time (checked by tests/test_faults.py). Every record carries ``partition_hash``.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from graphpar.datasets.catalog import data_root
from graphpar.datasets.tensorfile import read_tensors, write_tensors

from .. import tags
from ..kernels import default_backend
from ..libc import M_PERTURB, mallopt
from ..native_output import captured_native_output
from .errors import PartitionError

METHODS = ("metis", "random", "contiguous")


def check_method(flag: str, method: str, computed: bool = True) -> None:
    """A partitioning method a run can use here: a known one, and METIS only where DGL imports (``computed``:
    whether this run partitions at all; a single part needs no partitioner)."""
    if method not in METHODS:
        raise PartitionError(f"{flag} {method!r} is unknown; pass one of {', '.join(METHODS)}")
    if computed and method == "metis" and default_backend() != "dgl":
        raise PartitionError(f"{flag} metis needs DGL (dgl.metis_partition_assignment), which does not import here; "
                          f"pass {flag} random or contiguous")
CACHE_FORMAT_VERSION = 3  # 2: part_id tensor + JSON header, hash-checked; 3: a safetensors file (tensorfile)


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
        """Record fields (no tensors), with the assignment's hash: equal hashes, equal partitions."""
        d = asdict(self)
        d.pop("part_id")
        d["hash"] = part_hash(self.part_id)
        return {f"partition_{k}" if not k.startswith("partition") else k: v for k, v in d.items()}


def part_hash(part_id: Tensor) -> str:
    """sha256 (16 hex digits) of the owner array's bytes."""
    return hashlib.sha256(part_id.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()[:16]


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


PERTURB_BYTE = 0xA5  # any fixed non-zero byte


@contextlib.contextmanager
def _fixed_heap_bytes():
    """Fill fresh heap allocations with a fixed byte while METIS runs (glibc only; a no-op elsewhere).

    DGL's METIS reads memory it never initialised; with this, what it reads is the same every run."""
    if not mallopt(M_PERTURB, PERTURB_BYTE):
        yield
        return
    try:
        yield
    finally:
        mallopt(M_PERTURB, 0)


def metis_partition(src: Tensor, dst: Tensor, num_nodes: int, num_parts: int, balance_edges: bool = False) -> Tensor:
    """DGL's METIS (k-way, edge-cut objective) on the symmetrised graph; imports DGL here only."""
    if num_parts == 1:
        return torch.zeros(num_nodes, dtype=torch.int64)
    import dgl  # noqa: PLC0415  (lazy: the torch-only path never needs DGL)

    g = dgl.graph((src, dst), num_nodes=num_nodes, idtype=torch.int64)
    with contextlib.redirect_stdout(io.StringIO()), _fixed_heap_bytes():  # DGL prints timing lines to stdout
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
    """``$GRAPHPAR_DATA/partitions/<hash>-p<P>-<method>[-edges][-s<seed>].safetensors``."""
    if root is None:
        root = data_root()
    suffix = ("-edges" if balance_edges and method == "metis" else "") + (f"-s{seed}" if method == "random" else "")
    return Path(root) / "partitions" / f"{graph_hash}-p{num_parts}-{method}{suffix}.safetensors"


def _save(part: Partition, path: Path, graph_hash: str) -> None:
    header = {k: v for k, v in asdict(part).items() if k not in ("part_id", "cached", "load_s")}
    header.update(format=CACHE_FORMAT_VERSION, graph_hash=graph_hash, num_nodes=int(part.part_id.numel()),
                  part_hash=part_hash(part.part_id))
    write_tensors(path, {"part_id": part.part_id.to(torch.int64).contiguous()}, header)


def check_partition(part_id: Tensor, num_nodes: int, num_parts: int) -> str:
    """Why ``part_id`` is not a partition of ``num_nodes`` vertices into ``num_parts`` parts ("" when it is)."""
    if not isinstance(part_id, Tensor) or part_id.dtype != torch.int64 or part_id.shape != (num_nodes,):
        return f"owner array must be int64 [{num_nodes}], got {getattr(part_id, 'dtype', type(part_id))} " \
               f"{tuple(getattr(part_id, 'shape', ()))}"
    if num_nodes and (int(part_id.min()) < 0 or int(part_id.max()) >= num_parts):
        return f"part ids must lie in 0..{num_parts - 1}, found {int(part_id.min())}..{int(part_id.max())}"
    return ""


def _stale(path: Path, why: str) -> None:
    print(f"graphpar: partition cache {path} is unusable ({why}); recomputing it", file=sys.stderr)
    return None


def _load(path: Path, num_nodes: int, num_parts: int, method: str, balance_edges: bool,
          graph_hash: str) -> Partition | None:
    """The cached partition, or None (one line on stderr) when damaged, edited or not this graph's."""
    start = time.perf_counter()
    payload, header, why = read_tensors(path, CACHE_FORMAT_VERSION)
    if payload is None:
        return _stale(path, why)
    try:
        part_id = payload["part_id"]
        expected = {"graph_hash": graph_hash, "num_nodes": num_nodes, "num_parts": num_parts, "method": method,
                    "balance_edges": balance_edges}
        wrong = {k: header.get(k) for k, v in expected.items() if header.get(k) != v}
        if wrong:
            return _stale(path, f"made for {wrong}, not {({k: expected[k] for k in wrong})}")
        why = check_partition(part_id, num_nodes, num_parts)
        if not why and part_hash(part_id) != header.get("part_hash"):
            why = f"assignment hash {part_hash(part_id)} differs from the stored {header.get('part_hash')}"
        if why:
            return _stale(path, why)
        return Partition(part_id, num_parts, method, balance_edges, float(header["partition_s"]),
                         int(header["peak_rss_bytes"]), int(header["peak_rss_growth_bytes"]), cached=True,
                         load_s=time.perf_counter() - start)
    except (KeyError, TypeError, ValueError) as e:
        return _stale(path, f"{type(e).__name__}: {e}")


def partition(graph, num_parts: int, method: str = "metis", balance_edges: bool = False, seed: int = 0,
              use_cache: bool = True) -> Partition:
    """The partition of ``graph`` (a GraphData) into ``num_parts``, from the cache when there.

    Only METIS is cached: random and contiguous are cheaper to recompute than to load."""
    if method != "metis" or num_parts == 1 or not use_cache:
        return compute_partition(graph.src, graph.dst, graph.num_nodes, num_parts, method, balance_edges, seed)
    graph_hash = graph.content_hash()
    path = cache_path(graph_hash, num_parts, method, balance_edges, seed)
    if path.exists():
        cached = _load(path, graph.num_nodes, num_parts, method, balance_edges, graph_hash)
        if cached is not None:
            return cached
    part = compute_partition(graph.src, graph.dst, graph.num_nodes, num_parts, method, balance_edges, seed)
    why = check_partition(part.part_id, graph.num_nodes, num_parts)
    if why:
        raise RuntimeError(f"{method} partitioner returned a bad assignment: {why}")
    try:
        _save(part, path, graph_hash)
    except OSError as e:
        print(f"graphpar: warning: cannot write the partition cache {path} ({e.strerror or e}); running uncached "
              f"(make $GRAPHPAR_DATA writable to keep it)", file=sys.stderr)
    return part


def partition_graph(graph, num_parts: int, method: str = "metis", balance_edges: bool = False,
                    seed: int = 0) -> Tensor:
    """Just the owner of every vertex (int64 [N]); see ``partition`` for the costs."""
    return partition(graph, num_parts, method, balance_edges, seed).part_id


def shared_partition(comm, graph, num_parts: int, method: str = "metis", balance_edges: bool = False,
                     seed: int = 0, tag: str = tags.SETUP_PARTITION) -> Partition:
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
