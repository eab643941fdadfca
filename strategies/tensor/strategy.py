"""``tensor``: NeutronTP tensor parallelism, feature-sliced aggregation over the whole graph on every worker.

    graphpar run --strategy tensor --dataset cora --workers 4 --model decoupled [--tp-mode decoupled]
    graphpar check --strategy tensor --dataset cora --workers 3 --model sage --tp-mode naive --tp-chunks 4

Every worker holds the whole topology; dense tensors live vertex-split for NN operations and
feature-split for aggregation (``tensor_layout``). ``--tp-mode naive`` (gcn, sage; gat below): per layer,
split to column slices, aggregate the slice over the whole graph (no communication), gather to owned
rows, the layer's NN op. Aggregation commutes with column slicing and the layer math is the shared
``conv_layer`` (its linear before aggregation where DGL does that), so this is the reference exactly;
the raw input's slice is read locally, and a layer moves min(d_in, d_out) columns each way.
``--tp-mode decoupled`` (the ``decoupled`` model): MLP data-parallel on owned rows, one split, K
propagation steps on the slice with no communication, one gather, loss; backward mirrors it with the
transposed adjacency: four all-to-alls per epoch whatever the depth, plus the gradient all-reduce.
``gat`` (naive mode): per layer, project owned rows (z = W h), split z into column slices, each slice's
partial attention logits (el, er: sums over its own columns) summed over ranks by one all_reduce of
N x 2H values, the edge softmax computed on every rank over every edge, the slice's attention sum, gather.
Columns, not heads, are split: a slice may cut a head (its columns know their head), so any P works with
any head count, the output layer's single head included. Bytes sent by rank r per epoch, layer i with
C_i = H_i D_i columns (c_r of them on r) and n_r rows: 4 x 2 [n_r (C_i - c_r) + (N - n_r) c_r] (split and
gather, forward and back) + 4 x 2 x 2 H_i N (the logits' all_reduce payload, forward and back), + 4|W| + 8;
over all ranks per layer 16 (N C_i - sum_r n_r c_r) + 16 P H_i N. No row-block streaming for gat.
``--tp-chunks``/``--memory-budget`` stream the adjacency in destination-row blocks (``tensor_chunks``);
in decoupled mode the gather of each block's rows overlaps the aggregation of the next block.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import attention, tags
from ..base import ConfigError, Option, Strategy, TrainConfig, register
from ..comm import Communicator, all_reduce_autograd
from ..kernels import CSRMatrix, sparse_mm
from ..models import activate, aggregation_edges, conv_layer, dropout, init_params, mlp_layer
from ..training import global_accuracy, global_sum, local_loss
from .chunks import ChunkedAdjacency, ChunkedSpMM, choose_chunks, minimum_budget
from .layout import Layout, finish_gather_chunk, gather, gather_chunk_async, split, split_raw

MODES = ("naive", "decoupled")
F32 = 4


def propagate(comm: Communicator, layout: Layout, adj: ChunkedAdjacency, rows: Tensor, steps: int,
              transpose: bool, tags: tuple[str, str]) -> Tensor:
    """gather(Â^steps split(rows)) on owned rows [n_r, C]: one split, local steps, a chunked gather.

    The last step runs block by block; each block's rows start their gather asynchronously while the
    next block aggregates. With ``transpose`` it applies Âᵀ: the adjoint of the whole map, because the
    adjoint of a split is a gather and vice versa."""
    width = rows.shape[1]
    if layout.world_size == 1:  # the reference's K products, nothing to split, gather or overlap
        z = rows
        for _ in range(steps):
            z = adj.matmul(z, transpose)
        return z
    z = split_raw(comm, layout, rows.contiguous(), tags[0])
    for _ in range(steps - 1):
        z = adj.matmul(z, transpose)
    out = rows.new_empty(rows.shape)
    pending = None
    for lo, hi, mat in adj.iter_blocks(transpose):
        op = (gather_chunk_async(comm, layout, sparse_mm(mat, z), width, lo, hi, tags[1]), lo, hi)
        if pending is not None:
            finish_gather_chunk(layout, pending[0], out, pending[1], pending[2])
        pending = op
    finish_gather_chunk(layout, pending[0], out, pending[1], pending[2])
    return out


class DecoupledPropagate(torch.autograd.Function):
    """Owned MLP rows -> owned logits through split, K steps of Â, gather; backward the same with Âᵀ."""

    @staticmethod
    def forward(ctx, rows: Tensor, comm, layout, adj, steps: int, prefix: str) -> Tensor:
        ctx.comm, ctx.layout, ctx.adj, ctx.steps, ctx.prefix = comm, layout, adj, steps, prefix
        return propagate(comm, layout, adj, rows, steps, False,
                         (tags.prop("split", tags.FWD, prefix), tags.prop("gather", tags.FWD, prefix)))

    @staticmethod
    def backward(ctx, grad: Tensor):
        p = ctx.prefix
        g = propagate(ctx.comm, ctx.layout, ctx.adj, grad.contiguous(), ctx.steps, True,
                      (tags.prop("split", tags.BWD, p), tags.prop("gather", tags.BWD, p)))
        return g, None, None, None, None, None


def dense_bytes_for(spec, mode: str, lay: Layout) -> int:
    """Bytes of the dense tensors an epoch keeps alive on rank 0 (the largest row block)."""
    N, n0 = lay.num_nodes, lay.row_count(0)
    if mode == "decoupled":  # x rows, MLP activations + grads, z ping-pong, gathered rows
        C = spec.dims[-1]
        return F32 * (n0 * spec.dims[0] + 2 * n0 * sum(spec.dims[1:]) + 2 * N * lay.col_count(C, 0) + n0 * C)
    total = n0 * spec.dims[0] + N * lay.col_count(spec.dims[0], 0)
    for i in range(spec.layers):  # per layer: input, split slice, aggregated slice, gathered rows, output
        m = min(spec.dims[i], spec.dims[i + 1])
        total += n0 * spec.dims[i] + 2 * N * lay.col_count(m, 0) + n0 * m + n0 * spec.dims[i + 1]
    return F32 * 2 * total  # activations and their gradients


def resolve_mode(cfg: TrainConfig) -> str:
    """``auto``: decoupled for the decoupled model (NeutronTP's default), naive for gcn/sage."""
    mode = TensorParallel.options_of(cfg).tp_mode
    if mode == "auto":
        return "decoupled" if cfg.model == "decoupled" else "naive"
    return mode


@register
class TensorParallel(Strategy):
    name = "tensor"
    description = "NeutronTP tensor parallelism: feature-sliced aggregation, decoupled training, chunking"
    models = ("gcn", "sage", "gat", "decoupled")
    options = (
        Option("--tp-mode", str, "auto", "tensor: 'naive' per-layer split/gather (gcn, sage), "
               "'decoupled' MLP-then-propagate (model decoupled); 'auto' picks by --model", ("auto", *MODES)),
        Option("--tp-chunks", int, 1, "tensor: destination-row blocks the aggregation streams through",
               old_name="--chunks"),
        Option("--memory-budget", int, 0, "tensor: device bytes per worker; derives --tp-chunks (0: off)"),
    )

    @classmethod
    def validate(cls, cfg: TrainConfig, graph_summary: dict) -> None:
        super().validate(cfg, graph_summary)
        mode = resolve_mode(cfg)
        if mode not in MODES:
            raise ConfigError(f"--tp-mode {mode!r} is not one of {', '.join(MODES)}")
        if mode == "naive" and cfg.model == "decoupled":
            raise ConfigError("--tp-mode naive trains gcn, sage or gat; pass --tp-mode decoupled for --model decoupled")
        if mode == "decoupled" and cfg.model != "decoupled":
            raise ConfigError(f"--tp-mode decoupled trains --model decoupled, not {cfg.model}; "
                              f"pass --model decoupled or --tp-mode naive")
        opts = cls.options_of(cfg)
        chunks, budget = opts.tp_chunks, opts.memory_budget
        if cfg.model == "gat" and (chunks != 1 or budget):
            raise ConfigError(f"--model gat streams no row blocks (--tp-chunks {chunks}, --memory-budget {budget}); "
                              "pass --tp-chunks 1 and no --memory-budget")
        if chunks < 1 or chunks > graph_summary["nodes"]:
            raise ConfigError(f"--tp-chunks {chunks} must be in [1, {graph_summary['nodes']}] (the vertex count)")
        if budget < 0 or (budget and chunks != 1):
            raise ConfigError(f"--memory-budget {budget} with --tp-chunks {chunks}: give one of them (budget >= 0)")
        if budget:  # the dense tensors alone are a floor no chunking can go below
            spec = cfg.model_spec(graph_summary["features"], graph_summary["classes"])
            floor = dense_bytes_for(spec, mode, Layout(graph_summary["nodes"], cfg.workers, 0))
            if budget < floor:
                raise ConfigError(f"--memory-budget {budget} is below this worker's minimum {floor} bytes of dense "
                                  f"tensors; raise it (or use more --workers)")

    # -- setup ------------------------------------------------------------------------------------
    def setup(self) -> None:
        g, dev, spec = self.graph, self.device, self.spec
        self.mode = resolve_mode(self.cfg)
        self.layout = Layout(g.num_nodes, self.comm.world_size, self.comm.rank)
        self.lo, self.hi = self.layout.row_range()
        s, d, w = aggregation_edges(spec, g.src, g.dst, g.num_nodes)
        matrix = CSRMatrix(s, d, w, g.num_nodes, g.num_nodes, "cpu")
        dense = self.dense_bytes()
        chunks = self.opt.tp_chunks
        if self.opt.memory_budget:
            chunks = choose_chunks(matrix, dense, self.opt.memory_budget)
            if chunks is None:
                raise ConfigError(f"--memory-budget {self.opt.memory_budget} is below this worker's minimum "
                                  f"{minimum_budget(matrix, dense)} bytes; raise it to at least that")
        self.adj = ChunkedAdjacency(matrix, chunks, dev)
        self.edges = (s.to(dev), d.to(dev)) if spec.kind == "gat" else None
        self.dense = dense
        self.init_model(init_params(spec, self.cfg.seed))
        rows = slice(self.lo, self.hi)
        self.x_rows = g.feat[rows].to(dev)
        self.owned_ids = torch.arange(self.lo, self.hi)  # global vertex ids of the owned rows (keyed dropout)
        if self.mode == "naive":  # the input's column slice comes straight from the dataset: no comm
            a, b = self.layout.col_range(g.num_features)
            self.x_slice = g.feat[:, a:b].contiguous().to(dev)
        self.label = g.label[rows].to(dev)
        self.masks = [m[rows].to(dev) for m in (g.train_mask, g.val_mask, g.test_mask)]
        self.n_train = int(g.train_mask.sum())

    def dense_bytes(self) -> int:
        """Analytic bytes of the dense tensors an epoch keeps alive (rank 0's blocks: the largest)."""
        return dense_bytes_for(self.spec, self.mode, self.layout)

    # -- forward ------------------------------------------------------------------------------------
    def _aggregate(self, sliced: Tensor) -> Tensor:
        return ChunkedSpMM.apply(sliced, self.adj)

    def _layer_aggregate(self, i: int, prefix: str):
        """Layer i's aggregation over vertex-split rows: split, aggregate the slice locally, gather.

        ``conv_layer`` calls it where DGL aggregates (after the linear when that shrinks the width),
        so the operation order, and the rounding, is the reference's. The raw input needs no split:
        its column slice comes straight from the dataset."""
        def aggregate(rows: Tensor) -> Tensor:
            if rows is self.x_rows:
                sliced = self.x_slice
            else:
                sliced = split(self.comm, self.layout, rows, tags.tp_split(i, prefix))
            return gather(self.comm, self.layout, self._aggregate(sliced), rows.shape[1], tags.tp_gather(i, prefix))
        return aggregate

    def _gat_layer(self, i: int, h_in: Tensor, prefix: str) -> Tensor:
        """gat layer i on owned rows: project, split the projection into column slices, each slice's partial
        attention logits summed over ranks (one all_reduce of N x 2H), the softmax over every edge on every
        rank, the slice's attention sum, gather."""
        heads, width = self.spec.gat_shape(i)
        cols = heads * width
        z = attention.project(self.params, i, h_in)
        zs = split(self.comm, self.layout, z, tags.tp_split(i, prefix))
        lo, hi = self.layout.col_range(cols)
        el, er = attention.logits(self.params, i, zs, lo, hi)
        both = all_reduce_autograd(self.comm, torch.cat([el, er], 1), tags.tp_logits(i, prefix))
        src, dst = self.edges
        n = self.graph.num_nodes
        alpha = attention.edge_softmax(src, dst, n, both[:, :heads], both[:, heads:])
        out = attention.attend(src, dst, n, zs, alpha, attention.column_heads(heads, width, lo, hi, zs.device))
        out = gather(self.comm, self.layout, out, cols, tags.tp_gather(i, prefix))
        return attention.finish(self.params, i, out, i == self.spec.layers - 1)

    def _forward_naive(self, training: bool, prefix: str) -> Tensor:
        spec, h, ids = self.spec, self.x_rows, self.owned_ids
        for i in range(spec.layers):
            h_in = dropout(spec, i, h, training, ids)
            if spec.kind == "gat":
                out = self._gat_layer(i, h_in, prefix)
            else:
                out = conv_layer(spec, self.params, i, self._layer_aggregate(i, prefix), h_in)
            h = activate(spec, i, out, h_in)
        return h

    def _forward_decoupled(self, training: bool, prefix: str) -> Tensor:
        spec, h, ids = self.spec, self.x_rows, self.owned_ids
        for i in range(spec.layers):
            h = activate(spec, i, mlp_layer(spec, self.params, i, dropout(spec, i, h, training, ids)), h)
        if spec.prop_steps == 0:
            return h
        return DecoupledPropagate.apply(h, self.comm, self.layout, self.adj, spec.prop_steps, prefix)

    def forward(self, training: bool, prefix: str = "") -> Tensor:
        """This rank's logits for its owned rows V_r."""
        if self.mode == "naive":
            return self._forward_naive(training, prefix)
        return self._forward_decoupled(training, prefix)

    # -- the strategy interface ------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> float:
        loss = self.data_parallel_step(lambda: local_loss(self.forward(True), self.label, self.masks[0], self.n_train))
        return global_sum(self.comm, [float(loss)], tags.LOSS_ALLREDUCE)[0] if self.comm.world_size > 1 else float(loss)

    def evaluate(self) -> dict[str, float]:
        with torch.no_grad():
            return global_accuracy(self.comm, self.forward(False, tags.EVAL), self.label, self.masks)

    def worker_stats(self) -> dict[str, Any]:
        lay = self.layout
        # local edges: the graph's edges this rank aggregates over (all of them: a feature slice of every
        # row), self-loops the model adds not counted, as for every strategy
        return {"local_vertices": self.hi - self.lo, "local_edges": self.graph.num_edges,
                "slice_width_classes": lay.col_count(self.spec.dims[-1]),
                "slice_width_features": lay.col_count(self.spec.dims[0]),
                "model_peak_bytes": self.dense + self.adj.adjacency_device_bytes(),
                "model_peak_unchunked_bytes": self.dense + self.adj.full_bytes,
                "adjacency_device_bytes": self.adj.adjacency_device_bytes(), "chunks": self.adj.chunks}

    def info(self) -> dict[str, Any]:
        return {"mode": self.mode, "chunks": self.adj.chunks, "memory_budget": self.opt.memory_budget,
                "row_bounds": self.layout.rows, "class_col_bounds": self.layout.cols(self.spec.dims[-1])}
