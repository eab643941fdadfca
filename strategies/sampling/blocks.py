"""Distributed neighbour sampling and feature fetching for the ``sampling`` strategy (DistDGL's data path).

    graphpar run --strategy sampling --dataset cora --workers 2 --fanouts 15,10 --batch-size 32

    store = OwnedStore(graph, part_id, rank)                        # my in-edges and my feature rows
    counts, dst_idx, nbrs = sample_layer(comm, store, dst_nodes, fanout, gen, "sample/layer1")
    block = make_block(dst_nodes, counts, dst_idx, nbrs, norm)      # a message-flow graph (MFG)
    rows = fetch_rows(comm, store, block.src_nodes, "fetch")         # features, remote rows from their owners

Each rank holds the in-edges (CSR, global source ids) and the feature rows of the vertices it owns. A
request for vertices goes to their owners in three counted steps: one all_to_all of the per-peer request
sizes (one int64 per peer), one of the requested ids (int64), then the answer: per requested vertex its
sampled in-degree (int64) and the sampled neighbour ids (int64), or its feature row (F float32). gloo has
no list all_to_all, so every exchange is one ``all_to_all_single`` with split sizes; a rank's requests to
itself travel through the same call and are not counted (the communicator's convention).

Sampling is a seeded torch sampler over the owner's CSR: up to ``fanout`` distinct in-neighbours per
vertex, uniformly without replacement (all of them with fanout -1 or when the degree is smaller).
Normalisation (``BlockNorm``) uses *global* degrees, so a full-fanout block aggregates exactly like the
full graph: gcn weighs an edge s->d by outdeg(s)^-1/2 indeg(d)^-1/2 (degrees with self-loops) and adds
d's self-loop; sage by 1/indeg(d); gat keeps the sampled in-edges and d's self-loop unweighted (its
attention softmax runs over them). When d keeps k of its n in-neighbours, the neighbour weights are
scaled by n/k (an unbiased estimate of the full sum; for sage this is the mean over the k sampled).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .. import tags
from ..comm import Communicator


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
        start = self.indptr[local_ids]
        deg = self.indptr[local_ids + 1] - start
        seg = torch.repeat_interleave(torch.arange(local_ids.numel()), deg)
        first = torch.cumsum(deg, 0) - deg
        eidx = start[seg] + torch.arange(seg.numel()) - first[seg]
        if fanout < 0 or not bool((deg > fanout).any()):
            return deg, self.indices[eidx]
        keys = seg.to(torch.float64) + torch.rand(seg.numel(), generator=gen, dtype=torch.float64)
        order = torch.argsort(keys)  # shuffles within each vertex's segment, segments stay in order
        keep = torch.arange(seg.numel()) - first[seg[order]] < fanout
        return deg.clamp(max=fanout), self.indices[eidx[order][keep]]


def _a2a(comm: Communicator, x: Tensor, send: list[int], recv: list[int], tag: str) -> Tensor:
    """``comm.all_to_all`` of a host tensor; NCCL takes only device tensors, so they travel through one."""
    if comm.backend == "nccl":
        return comm.all_to_all(x.cuda(), send, recv, tag).cpu()
    return comm.all_to_all(x, send, recv, tag)


def _request(comm: Communicator, part_id: Tensor, ids: Tensor, tag: str) -> tuple[Tensor, Tensor, list, list]:
    """Send ``ids`` to their owners: (order that groups ids by owner, ids received, sent and received splits)."""
    p = comm.world_size
    owner = part_id[ids]
    order = torch.argsort(owner, stable=True)
    send = torch.bincount(owner, minlength=p)
    recv = _a2a(comm, send, [1] * p, [1] * p, tags.part(tag, "sizes"))
    send, recv = send.tolist(), recv.tolist()
    got = _a2a(comm, ids[order], send, recv, tags.part(tag, "ids"))
    return order, got, send, recv


def _split_sums(values: Tensor, splits: list[int]) -> list[int]:
    return [int(c.sum()) for c in torch.split(values, splits)]


@dataclass
class Traffic:
    """Rows one exchange moved for this rank (the inputs of the volume formula)."""

    requested: int = 0  # ids this rank asked other ranks for
    served: int = 0  # ids other ranks asked this rank for
    served_rows: int = 0  # neighbour ids (sampling) or feature rows (fetch) this rank sent back


def _remote(splits: list[int], me: int) -> int:
    return sum(splits) - splits[me]


def sample_layer(comm: Communicator, store: OwnedStore, dst_nodes: Tensor, fanout: int, gen: torch.Generator,
                 tag: str) -> tuple[Tensor, Tensor, Tensor, Traffic]:
    """Sampled in-neighbours of ``dst_nodes`` (global ids) from their owners.

    Returns (kept in-degree per dst vertex, dst index of every sampled edge, its source global id, traffic).
    Every rank of ``comm`` must call it with the same tag (with no vertices when it has none)."""
    order, got, send, recv = _request(comm, store.part_id, dst_nodes, tag)
    served_counts, served_nbrs = store.sample(store.local_of[got], fanout, gen)
    counts_back = _a2a(comm, served_counts, recv, send, tags.part(tag, "counts"))
    served_splits = _split_sums(served_counts, recv)
    nbrs = _a2a(comm, served_nbrs, served_splits, _split_sums(counts_back, send), tags.part(tag, "nbrs"))
    counts = torch.empty_like(counts_back)
    counts[order] = counts_back
    dst_idx = torch.repeat_interleave(order, counts_back)
    me = comm.rank
    return counts, dst_idx, nbrs, Traffic(_remote(send, me), _remote(recv, me), _remote(served_splits, me))


def sample_owned(store: OwnedStore, dst_nodes: Tensor, fanout: int,
                 gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``sample_layer`` for vertices this rank owns (the seeds): no communication, the same draws."""
    counts, nbrs = store.sample(store.local_of[dst_nodes], fanout, gen)
    return counts, torch.repeat_interleave(torch.arange(dst_nodes.numel()), counts), nbrs


def fetch_rows(comm: Communicator, store: OwnedStore, ids: Tensor, tag: str) -> tuple[Tensor, Traffic]:
    """Feature rows of ``ids`` (global), remote ones from their owners; rows in the order of ``ids``."""
    order, got, send, recv = _request(comm, store.part_id, ids, tag)
    rows = _a2a(comm, store.feat[store.local_of[got]], recv, send, tags.part(tag, "rows"))
    out = torch.empty_like(rows)
    out[order] = rows
    me = comm.rank
    return out, Traffic(_remote(send, me), _remote(recv, me), _remote(recv, me))


@dataclass
class Block:
    """One layer's message-flow graph: ``src_nodes`` (global ids, the ``num_dst`` dst vertices first)
    and weighted edges in local indices (src into src_nodes, dst into dst_nodes)."""

    src_nodes: Tensor
    num_dst: int
    src: Tensor
    dst: Tensor
    weight: Tensor

    @property
    def num_src(self) -> int:
        return int(self.src_nodes.numel())


class BlockNorm:
    """Edge weights from global degrees (module docstring); one per run, O(N) memory."""

    def __init__(self, kind: str, src: Tensor, dst: Tensor, num_nodes: int):
        self.kind = kind
        self.in_real = torch.bincount(dst, minlength=num_nodes)
        if kind == "gcn":  # degrees with one self-loop per vertex, as kernels.gcn_weights sees them
            self.out_isqrt = (torch.bincount(src, minlength=num_nodes) + 1).to(torch.float32).pow(-0.5)
            self.in_isqrt = (self.in_real + 1).to(torch.float32).pow(-0.5)
        self.scratch = torch.full((num_nodes,), -1, dtype=torch.int64)

    def make_block(self, dst_nodes: Tensor, counts: Tensor, dst_idx: Tensor, nbrs: Tensor) -> Block:
        n_dst = dst_nodes.numel()
        local = self.scratch
        local[dst_nodes] = torch.arange(n_dst)
        new = torch.unique(nbrs[local[nbrs] < 0])
        local[new] = n_dst + torch.arange(new.numel())
        src_nodes = torch.cat([dst_nodes, new])
        src = local[nbrs]
        local[src_nodes] = -1
        if self.kind == "sage":
            return Block(src_nodes, n_dst, src, dst_idx, counts.clamp(min=1).to(torch.float32).reciprocal()[dst_idx])
        loop = torch.arange(n_dst)
        if self.kind == "gat":  # attention weighs the kept in-edges and the self-loop itself: no weights
            return Block(src_nodes, n_dst, torch.cat([src, loop]), torch.cat([dst_idx, loop]),
                         torch.ones(src.numel() + n_dst))
        w = self.out_isqrt[nbrs] * self.in_isqrt[dst_nodes][dst_idx]
        full = self.in_real[dst_nodes]
        if bool((counts < full).any()):
            w = w * (full.to(torch.float32) / counts.clamp(min=1).to(torch.float32))[dst_idx]
        w_loop = self.out_isqrt[dst_nodes] * self.in_isqrt[dst_nodes]
        return Block(src_nodes, n_dst, torch.cat([src, loop]), torch.cat([dst_idx, loop]), torch.cat([w, w_loop]))
