"""One pipeline stage's layers on the whole graph, run chunk by chunk with historical embeddings.

    graphpar run --strategy pipeline --dataset cora --workers 2 --layers 4 --pipe-chunks 4

A stage owns layers [b, e). It keeps the whole graph structure and full-size row buffers: ``X[i]``
holds layer i's (post-dropout) input for every vertex. Vertices are cut into K contiguous chunks of ids
(``vertex_order``/``relabel`` renumber them first, e.g. by METIS parts).
Forward of chunk c runs each layer on the chunk's destination rows, gathering in-neighbour rows from
``X[i]``: rows of chunks already done this epoch are fresh, the others still hold last epoch's values
(historical embeddings). Backward pushes each chunk's input gradients into two buffers per layer:
contributions a source row's own chunk will still read this epoch (its chunk comes later or is c:
``G_fresh``), and contributions arriving after that row's chunk already went back (``G_late``), which
become next epoch's historical gradients (``G_hist``). With K=1 every read is fresh: exact training.

Weights: each chunk's forward captures the weight version it used (weight stashing, PipeDream-style);
its backward differentiates exactly those tensors, even if the optimiser stepped in between.

``ChunkedStage`` is the pipeline's ``stage.Stage``; ``hybrid.HybridStage`` is the same engine on one graph part,
whose aggregation also reads halo rows (``num_src`` > ``num_rows``), refreshed by the ``_refresh`` /
``_return_grads`` hooks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .. import tags
from ..kernels import make_aggregator
from ..models import ModelSpec, activate, aggregation_edges, conv_layer, dropout, layer_param_names
from ..partitioning.partitioner import shared_partition
from ..staleness import StaleMonitor
from ..training import local_loss
from .stage import Stage


def vertex_order(comm, g, k: int, how: str, seed: int) -> Tensor | None:
    """Which old vertex id becomes new id i (None: keep ids); chunks are contiguous ranges of the new ids.
    'metis': vertices sorted by a K-way METIS part (rank 0 partitions, shared), so few edges cross chunks and
    few reads are historical; 'random': a seeded permutation (spreads training rows over all chunks)."""
    if how == "contiguous" or k == 1:
        return None
    if how == "random":
        return torch.randperm(g.num_nodes, generator=torch.Generator().manual_seed(seed + 7919))
    part = shared_partition(comm, g, k, how, seed=seed, tag=tags.SETUP_CHUNK_ORDER)
    return torch.argsort(part.part_id, stable=True)


def relabel(g, order: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor, list[Tensor]]:
    """(src, dst, feat, label, [train, val, test] masks) with vertex ``order[i]`` renamed i."""
    masks = [g.train_mask, g.val_mask, g.test_mask]
    if order is None:
        return g.src, g.dst, g.feat, g.label, masks
    new_id = torch.empty_like(order)
    new_id[order] = torch.arange(order.numel())
    return new_id[g.src], new_id[g.dst], g.feat[order], g.label[order], [m[order] for m in masks]


@dataclass
class ChunkGraph:
    """Destination rows [lo, hi), the rows their aggregation reads, and which of those are fresh."""

    lo: int
    hi: int
    src_ids: Tensor  # buffer rows the aggregation reads (sorted)
    agg: object  # aggregator: [len(src_ids), d] -> [hi - lo, d]
    fresh_pos: Tensor  # positions in src_ids whose row chunk is >= this chunk (read again this epoch)
    late_pos: Tensor  # positions whose row chunk already went back this epoch
    stale_reads: int = 0  # rows read from history in forward (their chunk comes later this epoch)
    whole: bool = False  # one chunk reading every row in order: layers run on the buffers themselves
    c: int = 0  # the chunk's index


def chunk_bounds(num_rows: int, k: int) -> list[tuple[int, int]]:
    """K contiguous row ranges of equal size (+-1)."""
    cuts = [num_rows * c // k for c in range(k + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def chunk_of_rows(num_rows: int, k: int) -> Tensor:
    """The chunk of every row [0, num_rows) when they are cut into ``chunk_bounds(num_rows, k)``."""
    ends = torch.tensor([hi for _, hi in chunk_bounds(num_rows, k)])
    return torch.bucketize(torch.arange(num_rows), ends, right=True)


def build_chunks(src: Tensor, dst: Tensor, w: Tensor, num_rows: int, k: int, backend: str,
                 device: torch.device, chunk_of: Tensor | None = None,
                 bounds: list[tuple[int, int]] | None = None) -> list[ChunkGraph]:
    """Per-chunk aggregators over the in-edges of each chunk's destination rows (global weights).
    ``chunk_of``: the chunk of every source row (default: the destination chunks, sources = destinations);
    ``bounds``: the destination rows of each chunk (default ``chunk_bounds(num_rows, k)``)."""
    chunk_of = chunk_of_rows(num_rows, k) if chunk_of is None else chunk_of
    out = []
    for c, (lo, hi) in enumerate(chunk_bounds(num_rows, k) if bounds is None else bounds):
        sel = (dst >= lo) & (dst < hi)
        ids, inv = torch.unique(src[sel], return_inverse=True)
        agg = make_aggregator(inv, dst[sel] - lo, w[sel], int(ids.numel()), hi - lo, backend, device)
        fresh = chunk_of[ids] >= c
        whole = k == 1 and int(ids.numel()) == num_rows == chunk_of.numel()  # every row, in order: the identity
        out.append(ChunkGraph(lo, hi, ids.to(device), agg, torch.nonzero(fresh).flatten().to(device),
                              torch.nonzero(~fresh).flatten().to(device), int((chunk_of[ids] > c).sum()), whole, c))
    return out


@dataclass
class ChunkContext:
    """What a chunk's forward leaves for its backward: the autograd pieces and the weights it used."""

    chunk: int
    weights: dict[str, Tensor]
    version: int
    layers: list[tuple[Tensor, Tensor, Tensor]] = field(default_factory=list)  # (xs, xd, out) per layer
    pre: list[Tensor] = field(default_factory=list)  # each layer's output before activation
    entry: tuple[Tensor, Tensor] | None = None  # (received rows, their dropout) at the stage's first layer


class ChunkedStage(Stage):
    """Layers [b, e) of ``spec`` over ``num_rows`` vertices; chunked forward/backward with history.
    ``num_src`` (default ``num_rows``): rows the aggregation reads, the destination rows first."""

    def __init__(self, spec: ModelSpec, b: int, e: int, params: dict[str, Tensor], edges: tuple[Tensor, Tensor, Tensor],
                 num_rows: int, backend: str, device: torch.device, feat: Tensor | None = None,
                 label: Tensor | None = None, masks: list[Tensor] | None = None, n_train: int = 0,
                 num_src: int | None = None):
        self.spec, self.b, self.e, self.params = spec, b, e, params
        self.edges, self.num_rows, self.backend, self.device = edges, num_rows, backend, device
        self.num_src = num_rows if num_src is None else num_src
        self.label, self.masks, self.n_train = label, masks, n_train
        self.train_mask = masks[0] if masks else None
        self.last = e == spec.layers
        d = spec.dims
        self.X = {i: torch.zeros(self.num_src, d[i], device=device) for i in range(max(b, 1), e)}
        if b == 0:
            self.X[0] = feat
        self.G_fresh = {i: torch.zeros(self.num_src, d[i], device=device) for i in range(max(b, 1), e)}
        self.G_late = {i: torch.zeros_like(t) for i, t in self.G_fresh.items()}
        self.G_hist = {i: torch.zeros_like(t) for i, t in self.G_fresh.items()}
        self._chunks: dict[int, list[ChunkGraph]] = {}
        self._late_aggs: dict[int, object] = {}
        self.version = 0  # bumped by every optimiser step
        self._stash: tuple[int, dict[str, Tensor]] | None = None
        self.stash_stashed = 0  # weight copies made (for the record)
        self.monitor = None  # a staleness.StaleMonitor (set by the strategy when chunks read history)
        self.keep_history = True  # False (every epoch one chunk): whole-graph layers skip the row buffers
        self.vertex_ids: Tensor | None = None  # each row's global vertex id (keyed dropout); None: the row's index
        self._dirty = {"fresh": False, "late": False, "hist": False}  # which gradient buffers hold non-zeros

    @classmethod
    def build(cls, comm, spec: ModelSpec, graph, cut: list[tuple[int, int]], params: dict[str, Tensor], opt,
              seed: int, k: int, backend: str, device: torch.device) -> "ChunkedStage":
        """Rank ``comm.rank``'s stage of ``cut`` on the whole graph, vertices renumbered by ``--chunk-order``."""
        b, e = cut[comm.rank]
        order = vertex_order(comm, graph, k, opt.chunk_order, seed)
        src, dst, feat, label, masks = relabel(graph, order)
        edges = aggregation_edges(spec, src, dst, graph.num_nodes)
        stage = cls(spec, b, e, params, edges, graph.num_nodes, backend, device, feat.to(device) if b == 0 else None,
                    label.to(device), [m.to(device) for m in masks], int(graph.train_mask.sum()))
        stage.stage = comm.rank
        stage.monitor = StaleMonitor() if k > 1 else None
        stage.keep_history = k > 1  # one chunk every epoch: no historical rows to keep
        stage.vertex_ids = None if order is None else order.to(device)
        return stage

    stage = 0  # this stage's index (its rank)

    def peer(self, stage: int) -> int:
        return stage

    def bounds(self, k: int) -> list[tuple[int, int]]:
        """The destination rows [lo, hi) of each of k chunks: equal contiguous ranges."""
        return chunk_bounds(self.num_rows, k)

    def chunk_rows(self, c: int, k: int) -> int:
        lo, hi = self.bounds(k)[c]
        return hi - lo

    def chunk_of(self, k: int) -> Tensor:
        """The chunk of every source row when the destination rows are cut into k chunks."""
        return chunk_of_rows(self.num_rows, k)

    def chunks(self, k: int) -> list[ChunkGraph]:
        if k not in self._chunks:
            self._chunks[k] = build_chunks(*self.edges, self.num_rows, k, self.backend, self.device, self.chunk_of(k),
                                           self.bounds(k))
        return self._chunks[k]

    def sync_grads(self) -> None:
        """One rank holds the stage's weights: its gradients are whole."""

    def stats(self) -> dict[str, Any]:
        return {"weight_versions_stashed": self.stash_stashed}

    def _refresh(self, i: int, cg: ChunkGraph, k: int, x: Tensor, training: bool) -> None:
        """Before layer i of chunk ``cg``: make the chunk's source rows of ``x`` current (here: they are)."""

    def _return_grads(self, i: int, cg: ChunkGraph, k: int) -> None:
        """After layer i's backward of chunk ``cg``, before its rows' gradient is read (here: nothing to do)."""

    def weights(self, stash: bool) -> tuple[int, dict[str, Tensor]]:
        """The current weights: live leaves (no step within the epoch) or a stashed copy per version."""
        if not stash:
            return self.version, self.params
        if self._stash is None or self._stash[0] != self.version:
            self._stash = (self.version, {k: p.detach().clone().requires_grad_(True) for k, p in self.params.items()})
            self.stash_stashed += 1
        return self._stash

    # -- forward ---------------------------------------------------------------------------------
    def forward_chunk(self, c: int, k: int, x_in: Tensor | None, training: bool, stash: bool = False
                      ) -> tuple[ChunkContext, Tensor]:
        """Chunk c through layers [b, e); returns its context and its output rows (or its loss, last stage)."""
        cg, spec = self.chunks(k)[c], self.spec
        version, w = self.weights(stash and training)
        ctx = ChunkContext(c, w, version)
        # evaluation writes into scratch buffers: the training history (post-dropout rows) stays intact
        X = self.X if training else {i: (t if i == 0 else torch.empty_like(t)) for i, t in self.X.items()}
        watch = self.monitor if training and k > 1 else None
        ids = self.vertex_ids[cg.lo:cg.hi] if self.vertex_ids is not None else torch.arange(cg.lo, cg.hi)
        with torch.set_grad_enabled(training):
            if self.b > 0:
                r = x_in.requires_grad_(training)
                xb = dropout(spec, self.b, r, training, ids)
                self._write(X[self.b], cg, xb.detach(), watch)
                ctx.entry = (r, xb)
            carry = None  # whole-graph chunk without history: the previous layer's output, no buffer copy
            for i in range(self.b, self.e):
                need = training and i > 0
                if watch is not None and i > 0:
                    watch.reads(cg.stale_reads, int(cg.src_ids.numel()))
                self._refresh(i, cg, k, X[i], training)
                if cg.whole:  # every row, in order: the buffer (or the carried rows) is both sides' input
                    xs = (X[i] if carry is None else carry).detach().requires_grad_(need)
                    xd = xs
                else:
                    xs = X[i].index_select(0, cg.src_ids).requires_grad_(need)
                    xd = X[i][cg.lo:cg.hi].clone().requires_grad_(need)
                z = conv_layer(spec, w, i, cg.agg, xs, xd)
                ctx.pre.append(z)
                y = activate(spec, i, z, xd)
                if i + 1 < self.e:
                    y = dropout(spec, i + 1, y, training, ids)
                    if cg.whole and not (self.keep_history and training):
                        carry = y
                    else:
                        self._write(X[i + 1], cg, y.detach(), watch)
                ctx.layers.append((xs, xd, y))
            if self.last and training:
                loss = local_loss(y, self.label[cg.lo:cg.hi], self.train_mask[cg.lo:cg.hi], self.n_train)
                xs, xd, _ = ctx.layers[-1]
                ctx.layers[-1] = (xs, xd, loss)
                return ctx, loss
        return ctx, y

    @staticmethod
    def _write(buf: Tensor, cg: ChunkGraph, rows: Tensor, watch) -> None:
        """Store a chunk's fresh rows; a monitor sees how far they moved from the historical ones."""
        if watch is not None and bool(buf[cg.lo:cg.hi].any()):  # all-zero: never written yet (first epoch)
            watch.drift(rows, buf[cg.lo:cg.hi])
        buf[cg.lo:cg.hi] = rows

    # -- backward --------------------------------------------------------------------------------
    def backward_chunk(self, ctx: ChunkContext, k: int, grad_out: Tensor | None, seed_k: int = 0) -> Tensor | None:
        """Chunk c's backward through its stashed graph; accumulates weight grads into the live params'
        ``.grad``; returns the gradient of the rows it received (None on the first stage).

        ``seed_k`` (a whole-graph epoch, k=1, right before the first K-chunk epoch): also record the
        contributions that K chunks would deliver late (edges from an earlier chunk into a later one), so
        the first stale epoch starts with the historical gradients it would have had, not zeros."""
        cg, g = self.chunks(k)[ctx.chunk], grad_out
        for i in reversed(range(self.b, self.e)):
            xs, xd, out = ctx.layers[i - self.b]
            names = layer_param_names(self.spec, i)
            inputs = ([xs] if xd is xs else [xs, xd]) * (i > 0) + [ctx.weights[n] for n in names]
            if seed_k and i > 0:
                self._seed_late(i, ctx, out, g, seed_k)
            grads = torch.autograd.grad(out, inputs, g, allow_unused=True)
            for n, gr in zip(names, grads[len(inputs) - len(names):]):
                if gr is not None:
                    p = self.params[n]
                    p.grad = gr.clone() if p.grad is None else p.grad.add_(gr)
            if i == 0:
                return None
            if xd is xs and not self._dirty["hist"]:  # whole graph, no history: the input's gradient itself
                g = grads[0] if grads[0] is not None else torch.zeros_like(xs)
                continue
            self._scatter(i, cg, grads[0], None if xd is xs else grads[1])
            self._return_grads(i, cg, k)
            g = self.G_fresh[i][cg.lo:cg.hi] + self.G_hist[i][cg.lo:cg.hi]
        r, xb = ctx.entry
        return g if xb is r else torch.autograd.grad(xb, r, g)[0]

    def _scatter(self, i: int, cg: ChunkGraph, gs: Tensor | None, gd: Tensor | None) -> None:
        self._dirty["fresh"] = True
        self._dirty["late"] |= bool(cg.late_pos.numel())
        if gs is not None:
            self.G_fresh[i].index_add_(0, cg.src_ids[cg.fresh_pos], gs[cg.fresh_pos])
            if cg.late_pos.numel():
                self.G_late[i].index_add_(0, cg.src_ids[cg.late_pos], gs[cg.late_pos])
        if gd is not None:
            self.G_fresh[i][cg.lo:cg.hi] += gd

    def _seed_late(self, i: int, ctx: ChunkContext, out: Tensor, g: Tensor | None, k: int) -> None:
        """Add to ``G_late[i]`` layer i's gradient through the edges a K-chunk epoch reads late."""
        z = ctx.pre[i - self.b]
        g_z = torch.autograd.grad(out, z, g, retain_graph=True)[0]
        if k not in self._late_aggs:
            src, dst, w = self.edges
            chunk_of = self.chunk_of(k)
            late = chunk_of[src] < chunk_of[dst]
            if self.spec.kind == "gat":  # attention couples a row's in-edges: every edge, late sources read a copy
                n = self.num_src
                self._late_aggs[k] = make_aggregator(torch.where(late, src + n, src), dst, w, 2 * n, self.num_rows,
                                                     self.backend, self.device)
            else:
                self._late_aggs[k] = make_aggregator(src[late], dst[late], w[late], self.num_src, self.num_rows,
                                                     self.backend, self.device)
        self._dirty["late"] = True
        x = self.X[i].detach().requires_grad_(True)
        x_src = torch.cat([x.detach(), x]) if self.spec.kind == "gat" else x
        with torch.enable_grad():
            z_late = conv_layer(self.spec, ctx.weights, i, self._late_aggs[k], x_src, x[:self.num_rows].detach())
            self.G_late[i] += torch.autograd.grad(z_late, x, g_z)[0]

    def end_epoch(self) -> None:
        """Epoch barrier: late gradient contributions become next epoch's history."""
        d = self._dirty
        for i in self.G_fresh:
            self.G_hist[i], self.G_late[i] = self.G_late[i], self.G_hist[i]
            if d["hist"]:  # the old history, now the late buffer
                self.G_late[i].zero_()
            if d["fresh"]:
                self.G_fresh[i].zero_()
        self._dirty = {"fresh": False, "late": False, "hist": d["late"]}
