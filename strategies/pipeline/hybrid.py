"""Hybrid layer pipelining x graph partitioning: P = S stages x G graph parts (``pipeline --graph-parts G``).

    graphpar check --strategy pipeline --dataset cora --workers 4 --layers 4 --graph-parts 2 --staleness 0
    graphpar run --strategy pipeline --dataset coauthor-cs --workers 4 --layers 4 --graph-parts 2 --staleness 1

Rank ``stage * G + g`` runs the stage's layers on graph part g of one G-way partition (computed once by
rank 0 and shared, so every stage sees the same owners): ``chunked.ChunkedStage``'s engine over the part's
owned rows, whose aggregation also reads the halo rows (remote in-neighbours). Within a stage the G ranks
form a partition group (``comm.subgroup``); the stage's weight gradients are summed with one all_reduce in
the group before every optimiser step (``grad/allreduce``). Stage to stage, rank (s, g) sends only part g's
owned rows to rank (s + 1, g) (``pipe/cut{s}/fwd``, gradients back on ``pipe/cut{s}/bwd``).

Chunks (``--staleness 1``, GNNPipe's hybrid mode): with ``--chunk-order metis`` (default) a vertex's chunk is
its K-way METIS part of the whole graph (``chunk_order``), in whichever graph part owns it, so an edge inside a
METIS part, across graph parts too, is read fresh; chunk sizes then differ between parts (falls back to equal
cuts when a METIS part would leave a graph part an empty chunk). With 'contiguous'/'random' each part's owned
vertices in that order are cut into K equal chunks. Chunk c of the stage is the union of every part's chunk c,
and a vertex's chunk is the one its owner gives it. (Equal cuts of the METIS order split METIS parts over
chunks: on amazon-computers, 2 parts x 4 chunks, 33 % of the rows read came from history against 25 %, and
the 4-layer run at P=4 collapsed to ln 10 on every seed; notes/staleness.md section 8.) Before layer i of chunk c
the group exchanges the halo rows of chunk c (``layer{i}/halo/fwd``: the owners' rows just written this
epoch); the halo rows of later chunks are last epoch's (historical embeddings). In backward, after layer i
of chunk c, each rank sends the gradient it holds for its halo rows of chunk c (this epoch's contributions of
chunks <= c plus last epoch's late ones, as the chunked stage keeps them) to their owners
(``layer{i}/halo/bwd``), who add it before reading their rows' gradient. K = 1 (``--staleness 0``): one chunk,
every halo row fresh: this equals the reference exactly.

Bytes per epoch over all ranks, any K (each halo row crosses once per layer and direction per epoch):
2 (S - 1) N H 4 at the cuts + ``halo_volume_bytes(halo rows, dims)`` for the halo (every layer's input width
forward, layers >= 1 backward) + G x (stage parameters x 4) per stage and optimiser step for the gradient
all_reduce (``--pipe-update chunk``: K steps) + 8 per rank for the loss sum. K only splits these into K calls.
The same for gat: a halo row is a layer's input row, projected where it is read (partition sends the
projection and el instead; both are exact).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import tags
from ..comm import Communicator
from ..models import ModelSpec, aggregation_edges
from ..partitioning.halo import build_local_view, halo_volume_bytes
from ..partitioning.partitioner import partition_stats, shared_partition
from ..staleness import StaleMonitor
from ..training import allreduce_grads
from .chunked import ChunkedStage, ChunkGraph, chunk_bounds, relabel, vertex_order


def stage_groups(comm: Communicator, stages: int, parts: int) -> Communicator:
    """This rank's stage group; every rank creates every group, in the same order (collective)."""
    mine = None
    for s in range(stages):
        group = comm.subgroup(list(range(s * parts, (s + 1) * parts)))
        if s == comm.rank // parts:
            mine = group
    return mine


def chunk_order(comm: Communicator, graph, k: int, how: str, seed: int) -> tuple[Tensor | None, Tensor | None]:
    """(``vertex_order``'s renaming, every renamed vertex's chunk or None: equal cuts of each part).

    'metis' (k > 1): a vertex's chunk is its K-way METIS part of the whole graph, in every graph part, so
    an edge inside a METIS part (across graph parts too) joins rows of one chunk: they are read fresh. Equal
    cuts of each part's vertices in that order split METIS parts over chunks (amazon-computers, 2 parts x
    4 chunks: 33 % of the rows read were historical against 25 %, and 4-layer training collapsed)."""
    if how != "metis" or k == 1:
        return vertex_order(comm, graph, k, how, seed), None
    part = shared_partition(comm, graph, k, how, seed=seed, tag=tags.SETUP_CHUNK_ORDER)
    order = torch.argsort(part.part_id, stable=True)
    return order, part.part_id[order]


def global_chunks(part_id: Tensor, parts: int, k: int) -> Tensor:
    """Every vertex's chunk: its part's vertices in id order cut into ``chunk_bounds(part size, k)``."""
    chunk = torch.empty_like(part_id)
    for p in range(parts):
        ids = torch.nonzero(part_id == p).flatten()
        for c, (lo, hi) in enumerate(chunk_bounds(int(ids.numel()), k)):
            chunk[ids[lo:hi]] = c
    return chunk


class HybridStage(ChunkedStage):
    """Layers [b, e) on graph part ``g`` of stage ``s``; chunks exchange their halo rows inside the stage group."""

    @classmethod
    def build(cls, comm: Communicator, spec: ModelSpec, graph, cut: list[tuple[int, int]], params: dict[str, Tensor],
              opt, seed: int, k: int, backend: str, device: torch.device) -> "HybridStage":
        parts = opt.graph_parts
        stage, g = comm.rank // parts, comm.rank % parts
        b, e = cut[stage]
        part = shared_partition(comm, graph, parts, opt.pipe_partition, seed=seed, tag=tags.SETUP_PARTITION)
        group = stage_groups(comm, len(cut), parts)
        order, chunk = chunk_order(comm, graph, k, opt.chunk_order, seed)
        src, dst, feat, label, masks = relabel(graph, order)
        part_id = part.part_id if order is None else part.part_id[order]
        if chunk is not None and bool((torch.bincount(part_id * k + chunk, minlength=parts * k) == 0).any()):
            chunk = None  # a METIS part inside one graph part: another part would stream an empty chunk
        edges = None if order is None else aggregation_edges(spec, src, dst, graph.num_nodes)
        view = build_local_view(graph, part_id, g, spec, parts, edges=edges)
        owned, local = view.owned, torch.cat([view.owned, view.halo])
        vsrc, vdst, w = view.src, view.dst, view.weight
        x = torch.zeros(view.num_local, spec.dims[0])
        x[:view.num_owned] = feat[owned]
        x[view.num_owned:] = feat[view.halo]  # constant: no chunk's first epoch reads zeros for halo features
        st = cls(spec, b, e, params, (vsrc, vdst, w), view.num_owned, backend, device, x.to(device) if b == 0 else None,
                   label[owned].to(device), [m[owned].to(device) for m in masks], int(graph.train_mask.sum()),
                   num_src=view.num_local)
        st.stage, st.parts, st.g, st.group, st.view = stage, parts, g, group, view.to(device)
        st.part, st.part_id, st.local_ids = part, part_id, local
        st.halo_rows = partition_stats(graph.src, graph.dst, part.part_id, parts)["halo_vertices"]
        st._plans = {}
        st.chunk_label, st.label_k = (None, 0) if chunk is None else (chunk[local], k)  # local rows' METIS chunks
        st.monitor = StaleMonitor() if k > 1 else None
        st.vertex_ids = (owned if order is None else order[owned]).to(device)  # owned rows' global ids
        return st

    def peer(self, stage: int) -> int:
        return stage * self.parts + self.g

    def chunk_of(self, k: int) -> Tensor:
        """Local rows' chunks: an owned row's own, a halo row's at its owner."""
        if k == self.label_k:
            return self.chunk_label
        return global_chunks(self.part_id, self.parts, k)[self.local_ids]

    def bounds(self, k: int) -> list[tuple[int, int]]:
        """Owned rows of each chunk: contiguous (sorted by chunk); sizes differ when chunks are METIS parts."""
        if k != self.label_k:
            return super().bounds(k)
        ends = torch.cumsum(torch.bincount(self.chunk_label[:self.num_rows], minlength=k), 0).tolist()
        return list(zip([0] + ends[:-1], ends))

    def _plan(self, k: int) -> list[tuple[Tensor, list[int], Tensor, list[int]]]:
        """Per chunk: (owned rows sent, rows per peer, halo rows received, rows per peer) of its halo exchange."""
        if k not in self._plans:
            v, chunk = self.view, self.chunk_of(k).to(self.device)
            to = torch.repeat_interleave(torch.arange(self.parts), torch.tensor(v.send_counts)).to(self.device)
            owner = torch.repeat_interleave(torch.arange(self.parts), torch.tensor(v.recv_counts)).to(self.device)
            halo_chunk = chunk[v.num_owned:]
            plan = []
            for c in range(k):
                send = chunk[v.send_idx] == c
                recv = halo_chunk == c
                plan.append((v.send_idx[send], torch.bincount(to[send], minlength=self.parts).tolist(),
                             v.num_owned + torch.nonzero(recv).flatten(),
                             torch.bincount(owner[recv], minlength=self.parts).tolist()))
            self._plans[k] = plan
        return self._plans[k]

    def _refresh(self, i: int, cg: ChunkGraph, k: int, x: Tensor, training: bool) -> None:
        """The halo rows of chunk c from their owners, into ``x`` (layer i's input rows)."""
        send_idx, send_counts, recv_pos, recv_counts = self._plan(k)[cg.c]
        tag = tags.halo(i, "" if training else tags.EVAL) + tags.FWD
        x[recv_pos] = self.group.all_to_all(x.index_select(0, send_idx), send_counts, recv_counts, tag)

    def _return_grads(self, i: int, cg: ChunkGraph, k: int) -> None:
        """This rank's gradient of its halo rows of chunk c back to their owners, added to their own rows."""
        send_idx, send_counts, recv_pos, recv_counts = self._plan(k)[cg.c]
        g = self.G_fresh[i].index_select(0, recv_pos) + self.G_hist[i].index_select(0, recv_pos)
        back = self.group.all_to_all(g, recv_counts, send_counts, tags.halo(i) + tags.BWD)
        self.G_fresh[i].index_add_(0, send_idx, back)

    def sync_grads(self) -> None:
        allreduce_grads(self.group, self.params)

    def halo_bytes_per_epoch(self) -> int:
        """All ranks' halo bytes in one epoch: every stage exchanges the halo of its own layers."""
        return halo_volume_bytes(sum(self.halo_rows), self.spec.dims)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), **self.view.stats()}

    def info(self) -> dict[str, Any]:
        return {"graph_parts": self.parts, "partition_method": self.part.method,
                "halo_vertices": self.halo_rows, "halo_bytes_per_epoch": self.halo_bytes_per_epoch()}
