"""Distributed neighbour sampling and feature fetching for the ``sampling`` strategy (DistDGL's data path).

    graphpar run --strategy sampling --dataset cora --workers 2 --fanouts 15,10 --batch-size 32

    store = OwnedStore(graph, part_id, rank)                        # my in-edges and my feature rows
    counts, dst_idx, nbrs = sample_layer(comm, store, dst_nodes, fanout, gen, "sample/layer1")
    block = make_block(dst_nodes, counts, dst_idx, nbrs, norm)      # a message-flow graph (MFG)
    rows = fetch_rows(comm, store, block.src_nodes, "fetch")         # features, remote rows from their owners

Each rank holds the in-edges (CSR, global source ids) and the feature rows of the vertices it owns. A
request for vertices owned elsewhere goes to their owners in three counted steps: one all_to_all of the
per-peer request sizes (one int64 per peer), one of the requested ids (int64), then the answer: per
requested vertex its sampled in-degree (int64) and the sampled neighbour ids (int64), or its feature row
(F float32). gloo has no list all_to_all, so every exchange is one ``all_to_all_single`` with split sizes.
A rank serves its own vertices directly, outside the exchange (the communicator counts no bytes to self
either); a one-rank world calls no collective at all.

Sampling is a seeded torch sampler over the owner's CSR: up to ``fanout`` distinct in-neighbours per
vertex, uniformly without replacement (all of them with fanout -1 or when the degree is smaller). A vertex
with more than ``fanout`` in-neighbours draws its subset with Floyd's algorithm, vectorised over vertices:
``fanout`` rounds of O(vertices x fanout) work, independent of the degrees (a hub costs what a leaf costs).
Edges come out grouped by destination in request order, so a block's forward CSR needs no sort.
Normalisation (``BlockNorm``) uses *global* degrees, so a full-fanout block aggregates exactly like the
full graph: gcn weighs an edge s->d by outdeg(s)^-1/2 indeg(d)^-1/2 (degrees with self-loops) and adds
d's self-loop; sage by 1/indeg(d); gat keeps the sampled in-edges and d's self-loop unweighted (its
attention softmax runs over them). When d keeps k of its n in-neighbours, the neighbour weights are
scaled by n/k (an unbiased estimate of the full sum; for sage this is the mean over the k sampled).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .. import tags
from ..comm import Communicator
from ..kernels import make_aggregator


class OwnedStore:
    """What rank ``rank`` holds: its vertices' in-edges (CSR over global ids) and feature rows."""

    def __init__(self, graph, part_id: Tensor, rank: int, num_parts: int):
        self.part_id, self.rank, self.num_parts = part_id, rank, num_parts
        self.owned = torch.nonzero(part_id == rank).flatten()
        self.local_of = torch.full((graph.num_nodes,), -1, dtype=torch.int64)
        self.local_of[self.owned] = torch.arange(self.owned.numel())
        mine = part_id[graph.dst] == rank
        d = self.local_of[graph.dst[mine]]
        order = torch.argsort(d, stable=True)
        self.indices = graph.src[mine][order]
        self.indptr = torch.zeros(self.owned.numel() + 1, dtype=torch.int64)
        self.indptr[1:] = torch.cumsum(torch.bincount(d, minlength=self.owned.numel()), 0)
        self.feat = graph.feat[self.owned]

    @property
    def num_edges(self) -> int:
        return int(self.indices.numel())

    def sample(self, local_ids: Tensor, fanout: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """(kept in-degree per vertex, kept neighbour ids grouped by vertex in request order)."""
        start = take(self.indptr, local_ids)
        deg = take(self.indptr, local_ids + 1) - start
        counts = deg if fanout < 0 else deg.clamp(max=fanout)
        seg, off = segments(counts)  # per kept edge: its vertex, its slot within the vertex
        if fanout >= 0:
            big = torch.nonzero(deg > fanout).flatten()
            if big.numel():  # their slots come in runs of ``fanout``, in request order
                slots = (take(first_of(counts), big).unsqueeze(1) + torch.arange(fanout)).flatten()
                off.index_copy_(0, slots, floyd_subsets(take(deg, big), fanout, gen).flatten())
        return counts, take(self.indices, take(start, seg) + off)


def take(x: Tensor, idx: Tensor) -> Tensor:
    """``x[idx]`` for an int64 index (``index_select``: 2-5x less CPU than advanced indexing in torch 2.2)."""
    return torch.index_select(x, 0, idx)


def first_of(counts: Tensor) -> Tensor:
    """Where each of ``counts``' consecutive runs starts (the exclusive prefix sum)."""
    return torch.cumsum(counts, 0) - counts


def segments(counts: Tensor) -> tuple[Tensor, Tensor]:
    """For ``counts[v]`` consecutive items per v: each item's v and its offset within v's run."""
    total = int(counts.sum())
    seg = torch.repeat_interleave(counts, output_size=total)
    return seg, torch.arange(total) - take(first_of(counts), seg)


def floyd_subsets(n: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """Per row v, ``k`` distinct offsets in [0, n[v]) (every n[v] > k), uniform over the k-subsets: Floyd's
    algorithm, round s draws t in [0, n - k + s] and keeps n - k + s instead when t was already drawn."""
    u = torch.rand((n.numel(), k), generator=gen, dtype=torch.float64)
    out = torch.empty((n.numel(), k), dtype=torch.int64)
    for s in range(k):
        j = n - k + s
        t = (u[:, s] * (j + 1).to(torch.float64)).to(torch.int64)
        if s:
            t = torch.where((out[:, :s] == t.unsqueeze(1)).any(1), j, t)
        out[:, s] = t
    return out


def _a2a(comm: Communicator, x: Tensor, send: list[int], recv: list[int], tag: str) -> Tensor:
    """``comm.all_to_all`` of a host tensor; NCCL takes only device tensors, so they travel through one."""
    if comm.backend == "nccl":
        return comm.all_to_all(x.cuda(), send, recv, tag).cpu()
    return comm.all_to_all(x, send, recv, tag)


@dataclass
class Route:
    """Where a request's ids go: served here (``mine``) or by their owners (``remote``, grouped by owner)."""

    mine: Tensor  # positions in the request of the ids this rank owns
    remote: Tensor  # positions of the others, grouped by owner
    got: Tensor  # ids other ranks asked this rank for, grouped by asking rank
    send: list[int]  # ids sent to each rank (none to itself)
    recv: list[int]  # ids received from each rank


def _request(comm: Communicator, part_id: Tensor, ids: Tensor, tag: str) -> Route:
    """Send the ids this rank does not own to their owners (two counted all_to_alls)."""
    p, me = comm.world_size, comm.rank
    owner = take(part_id, ids)
    local = owner == me
    mine, other = torch.nonzero(local).flatten(), torch.nonzero(~local).flatten()
    other_owner = take(owner, other)
    remote = take(other, torch.sort(other_owner.to(torch.int32), stable=True)[1])
    sizes = torch.bincount(other_owner, minlength=p)
    recv = _a2a(comm, sizes, [1] * p, [1] * p, tags.part(tag, "sizes")).tolist()
    send = sizes.tolist()
    got = _a2a(comm, take(ids, remote), send, recv, tags.part(tag, "ids"))
    return Route(mine, remote, got, send, recv)


def _split_sums(values: Tensor, splits: list[int]) -> list[int]:
    return [int(c.sum()) for c in torch.split(values, splits)]


@dataclass
class Traffic:
    """Rows one exchange moved for this rank (the inputs of the volume formula)."""

    requested: int = 0  # ids this rank asked other ranks for
    served: int = 0  # ids other ranks asked this rank for
    served_rows: int = 0  # neighbour ids (sampling) or feature rows (fetch) this rank sent back


def sample_layer(comm: Communicator, store: OwnedStore, dst_nodes: Tensor, fanout: int, gen: torch.Generator,
                 tag: str) -> tuple[Tensor, Tensor, Tensor, Traffic]:
    """Sampled in-neighbours of ``dst_nodes`` (global ids): this rank's own drawn here, the rest by their owners.

    Returns (kept in-degree per dst vertex, dst index of every sampled edge (non-decreasing), its source
    global id, traffic). Every rank of ``comm`` must call it with the same tag (with no vertices when it has
    none); on a one-rank world it is ``sample_owned``."""
    if comm.world_size == 1:
        return (*sample_owned(store, dst_nodes, fanout, gen), Traffic())
    r = _request(comm, store.part_id, dst_nodes, tag)
    own_counts, own_nbrs = store.sample(take(store.local_of, take(dst_nodes, r.mine)), fanout, gen)
    served_counts, served_nbrs = store.sample(take(store.local_of, r.got), fanout, gen)
    back = _a2a(comm, served_counts, r.recv, r.send, tags.part(tag, "counts"))
    served_splits = _split_sums(served_counts, r.recv)
    nbrs_back = _a2a(comm, served_nbrs, served_splits, _split_sums(back, r.send), tags.part(tag, "nbrs"))
    counts = torch.empty(dst_nodes.numel(), dtype=torch.int64)
    counts.index_copy_(0, r.mine, own_counts).index_copy_(0, r.remote, back)
    start = torch.empty_like(counts)  # where each dst vertex's run starts in [own_nbrs, nbrs_back]
    start.index_copy_(0, r.mine, first_of(own_counts))
    start.index_copy_(0, r.remote, own_nbrs.numel() + first_of(back))
    seg, off = segments(counts)
    nbrs = take(torch.cat([own_nbrs, nbrs_back]), take(start, seg) + off)  # runs put in dst order
    return counts, seg, nbrs, Traffic(sum(r.send), sum(r.recv), sum(served_splits))


def sample_owned(store: OwnedStore, dst_nodes: Tensor, fanout: int,
                 gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``sample_layer`` for vertices this rank owns (the seeds): no communication, the same draws."""
    counts, nbrs = store.sample(take(store.local_of, dst_nodes), fanout, gen)
    return counts, torch.repeat_interleave(counts, output_size=nbrs.numel()), nbrs


def fetch_rows(comm: Communicator, store: OwnedStore, ids: Tensor, tag: str) -> tuple[Tensor, Traffic]:
    """Feature rows of ``ids`` (global), remote ones from their owners; rows in the order of ``ids``."""
    if comm.world_size == 1:
        return take(store.feat, take(store.local_of, ids)), Traffic()
    r = _request(comm, store.part_id, ids, tag)
    rows = _a2a(comm, take(store.feat, take(store.local_of, r.got)), r.recv, r.send, tags.part(tag, "rows"))
    out = store.feat.new_empty((ids.numel(), store.feat.shape[1]))
    out.index_copy_(0, r.mine, take(store.feat, take(store.local_of, take(ids, r.mine))))
    out.index_copy_(0, r.remote, rows)
    return out, Traffic(sum(r.send), sum(r.recv), sum(r.recv))


@dataclass
class Block:
    """One layer's message-flow graph: ``src_nodes`` (global ids, the ``num_dst`` dst vertices first)
    and weighted edges in local indices (src into src_nodes, dst into dst_nodes). ``dst_sorted``: the
    edges are grouped by dst in ascending order (the forward CSR is built without a sort)."""

    src_nodes: Tensor
    num_dst: int
    src: Tensor
    dst: Tensor
    weight: Tensor
    dst_sorted: bool = False
    _agg: Any = field(default=None, repr=False, compare=False)

    @property
    def num_src(self) -> int:
        return int(self.src_nodes.numel())

    def aggregator(self, kernel: str, device: torch.device | str = "cpu"):
        """The block's weighted aggregation (``kernels.make_aggregator``), built on first use and kept."""
        if self._agg is None:
            self._agg = make_aggregator(self.src, self.dst, self.weight, self.num_src, self.num_dst, kernel,
                                        device, dst_sorted=self.dst_sorted)
        return self._agg


class BlockNorm:
    """Edge weights from global degrees (module docstring); one per run, O(N) memory."""

    def __init__(self, kind: str, src: Tensor, dst: Tensor, num_nodes: int):
        self.kind = kind
        self.in_real = torch.bincount(dst, minlength=num_nodes)
        if kind == "gcn":  # degrees with one self-loop per vertex, as kernels.gcn_weights sees them
            self.out_isqrt = (torch.bincount(src, minlength=num_nodes) + 1).to(torch.float32).pow(-0.5)
            self.in_isqrt = (self.in_real + 1).to(torch.float32).pow(-0.5)
        self.scratch = torch.full((num_nodes,), -1, dtype=torch.int64)
        self.seen = torch.zeros(num_nodes, dtype=torch.bool)

    def _distinct(self, ids: Tensor) -> Tensor:
        """``torch.unique(ids)`` (sorted); through a bitmap over the vertices when ids are many (no sort)."""
        if ids.numel() * 32 < self.seen.numel():
            return torch.unique(ids)
        self.seen.index_fill_(0, ids, True)
        out = torch.nonzero(self.seen).flatten()
        self.seen.index_fill_(0, out, False)
        return out

    def make_block(self, dst_nodes: Tensor, counts: Tensor, dst_idx: Tensor, nbrs: Tensor) -> Block:
        """The block of ``counts[k]`` sampled in-neighbours ``nbrs`` (global ids) of each ``dst_nodes[k]``;
        edges grouped by dst (``dst_idx`` non-decreasing, as the samplers return them) keep that order."""
        if dst_idx.numel() > 1 and not bool((dst_idx[1:] >= dst_idx[:-1]).all()):
            order = torch.argsort(dst_idx, stable=True)
            dst_idx, nbrs = take(dst_idx, order), take(nbrs, order)
        n_dst = dst_nodes.numel()
        local = self.scratch
        local.index_copy_(0, dst_nodes, torch.arange(n_dst))
        new = self._distinct(torch.masked_select(nbrs, take(local, nbrs) < 0))
        local.index_copy_(0, new, torch.arange(n_dst, n_dst + new.numel()))
        src_nodes = torch.cat([dst_nodes, new])
        src = take(local, nbrs)
        local.index_fill_(0, src_nodes, -1)
        if self.kind == "sage":
            w = take(counts.clamp(min=1).to(torch.float32).reciprocal(), dst_idx)
            return Block(src_nodes, n_dst, src, dst_idx, w, dst_sorted=True)
        # d's self-loop goes after d's sampled edges: edge e moves up by dst_idx[e] places, d's loop
        # lands at (edges of vertices <= d) + d
        loop = torch.arange(n_dst)
        edge_at = torch.arange(src.numel()) + dst_idx
        loop_at = torch.cumsum(counts, 0) + loop
        n = src.numel() + n_dst
        src_all = torch.empty(n, dtype=torch.int64).index_copy_(0, edge_at, src).index_copy_(0, loop_at, loop)
        dst_all = torch.repeat_interleave(counts + 1, output_size=n)
        if self.kind == "gat":  # attention weighs the kept in-edges and the self-loop itself: no weights
            return Block(src_nodes, n_dst, src_all, dst_all, torch.ones(n), dst_sorted=True)
        w_dst = take(self.in_isqrt, dst_nodes)
        full = take(self.in_real, dst_nodes)
        if bool((counts < full).any()):
            w_dst = w_dst * full.to(torch.float32) / counts.clamp(min=1).to(torch.float32)
        w = take(self.out_isqrt, nbrs) * take(w_dst, dst_idx)
        w_loop = take(self.out_isqrt, dst_nodes) * take(self.in_isqrt, dst_nodes)
        w_all = torch.empty(n, dtype=torch.float32).index_copy_(0, edge_at, w).index_copy_(0, loop_at, w_loop)
        return Block(src_nodes, n_dst, src_all, dst_all, w_all, dst_sorted=True)
