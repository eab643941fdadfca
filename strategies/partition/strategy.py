"""``partition``: graph-partition data parallelism (DistDGL/DistGNN/PipeGCN's baseline) with halo exchange.

    graphpar run --strategy partition --dataset cora --workers 4 --partition metis [--stale 4]
    graphpar check --strategy partition --dataset cora --workers 3 --model sage
    graphpar partition cora --parts 3 --out parts/cora-p3   # then: graphpar run ... --partition-dir parts/cora-p3

Each worker owns a part of the vertices (METIS by default, see ``partitioning``), holds their features,
their in-edges and the halo (remote in-neighbours). Per layer: one all_to_all sends every peer exactly
the boundary rows it needs (projected rows where W shrinks the width, see below), the worker aggregates over its
local edges with global-degree weights and transforms its owned rows; autograd sends the halo rows'
gradients back (layers >= 1; the input features need none). Weight gradients are summed with one flat
all_reduce per step, then every replica takes the same Adam step, so with ``--stale 1`` training equals
the single-process reference. ``--stale K`` reuses the last exchanged halo rows and gradients, the
Sancus/PipeGCN idea: by default a layer's history is reused only while its rows' drift stays under
``--stale-bound`` and at most K epochs (``bound.DriftBound``); ``--stale-bound 0`` is the fixed schedule (all
layers refresh on epochs 0, K, 2K...). worker_stats records the bytes this saved and ``staleness``
(``staleness.StaleMonitor``: stale reads, drift at each refresh, forced refreshes, bytes against the exact
mode, divergence).
``--partition-dir DIR`` (written by ``graphpar partition``, see ``parts_io``): each rank loads only its part,
halo map and feature rows, never the whole graph; same view, same numbers, same bytes.
Bytes per epoch (exact, per rank, ``--stale 1``): sent = sum_i send_rows * f_i * 4 forward + sum_i recv_rows *
b_i * 4 backward, plus the |W| * 4-byte gradient all_reduce and an 8-byte loss sum, with (f_i, b_i) =
``halo.exchange_widths``: a gcn/sage layer whose weight shrinks the width projects its owned rows first and
exchanges z = h W (d_{i+1} both ways: W needs z's halo gradients, at layer 0 too); another layer its input
(d_i forward, d_i back for i >= 1, none for the input features). ``--stale K`` always exchanges layer inputs
(its reused layer-0 rows are then the constant features: exact). The output layer computes only the rows the
loss reads in training (``rows_loss``).
``gat`` exchanges each halo vertex's projected row and source attention term (z = W h, el: H_i D_i + H_i
columns, H_i heads of width D_i) instead of the layer input, and their gradients back at every layer (W
needs them at layer 0 too): sent = sum_i (send_rows + recv_rows) * (H_i D_i + H_i) * 4 + the same all_reduce
and loss; over all ranks R * 4 * sum_i 2 (H_i D_i + H_i) + P (4|W| + 8). The edge softmax needs no
exchange: a vertex's in-edges all live on its owner.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import tags
from ..base import PARTITION_OPTION, ConfigError, Option, Strategy, TrainConfig, register
from ..kernels import CSRMatrix, SplitAggregator, SplitCSR
from ..models import activate_dropout, init_params
from ..partitioning.halo import (
    StaleHalo,
    build_local_view,
    exchange_widths,
    halo_aggregate,
    halo_bytes,
    halo_exchange,
    halo_layer,
    head_before_weight,
)
from ..partitioning.partitioner import check_method, partition_stats, shared_partition
from ..partitioning.parts_io import PartData, check_manifest, load_part
from ..staleness import DEFAULT_BOUND, StaleMonitor
from ..training import global_accuracy, global_sum, linear_predictions, linear_rows_loss, rows_loss
from .bound import DriftBound


@register
class GraphPartition(Strategy):
    name = "partition"
    description = "graph-partition data parallelism: vertex partition (METIS), per-layer halo exchange"
    models = ("gcn", "sage", "gat")
    options = (
        PARTITION_OPTION,
        Option("--balance-edges", int, 0, "partition: 1 = METIS also balances in-edges per part", (0, 1)),
        Option("--stale", int, 1, "partition: reuse halo rows and gradients for at most K epochs (1 = exact)"),
        Option("--stale-bound", float, DEFAULT_BOUND, "partition, --stale K > 1: refresh a layer's halo early once "
               "its rows drifted more than this since last sent (relative); 0 = fixed K, every K epochs"),
        Option("--partition-dir", str, "", "partition: a graphpar partition folder; each rank loads only its part"),
    )

    check_fills_exact = False  # --stale K > 1 is a different training: refused by check, not switched off

    @classmethod
    def exact_options(cls) -> dict[str, Any]:
        return {"stale": 1}

    @classmethod
    def validate(cls, cfg: TrainConfig, graph_summary: dict) -> None:
        super().validate(cfg, graph_summary)
        opts = cls.options_of(cfg)
        check_method("--partition", opts.partition, cfg.workers > 1 and not opts.partition_dir)
        if int(opts.stale) < 1:
            raise ConfigError(f"--stale {opts.stale} must be >= 1 (1 = exact, K = refresh every K epochs)")
        if not float(opts.stale_bound) >= 0:
            raise ConfigError(f"--stale-bound {opts.stale_bound} must be >= 0 (0 = fixed K, refresh every K epochs)")
        if int(opts.balance_edges) not in (0, 1):
            raise ConfigError(f"--balance-edges {opts.balance_edges} must be 0 or 1")

    @classmethod
    def graph_summary(cls, cfg: TrainConfig) -> dict[str, Any] | None:
        folder = cls.options_of(cfg).partition_dir
        if not folder:
            return None
        m = check_manifest(Path(folder), cfg.dataset, cfg.workers, cfg.options.get("partition"))
        return dict(m["graph"])

    @classmethod
    def rank_graph(cls, cfg: TrainConfig, rank: int) -> PartData | None:
        folder = cls.options_of(cfg).partition_dir
        return load_part(Path(folder), rank) if folder else None

    def setup(self) -> None:
        g, dev, comm, cfg = self.graph, self.device, self.comm, self.cfg
        self.num_parts, self.stale_k = comm.world_size, int(self.opt.stale)
        self.projected = self.stale_k == 1  # exact path: layers that multiply first exchange z = h W
        kind, backend = self.spec.kind, self.kernel_name()
        if isinstance(g, PartData):  # --partition-dir: this rank's part only, the same view, matrix and rows
            self.part = g.partition()
            if g.direct_csr(kind, backend):  # the CSR straight from the stored one, no edge list
                self.view = g.view(kind, edges=False).to(dev)
                nnz = g.indices.numel() + (g.owned.numel() if kind == "gcn" else 0)  # with gcn's self-loops
                self.aggregate = g.aggregator(kind, dev, transpose=SplitCSR.keeps_pair(nnz, dev))
                self.view.local_edges = g.local_edges
            else:
                self.view = g.view(kind).to(dev)
                g.drop_edges()  # the view holds the edges now
                self.aggregate = self.view.aggregator(backend, dev)
                self.view.drop_edges()  # the aggregator holds them now: keep only what training reads
            self.x, self.label, self.masks = g.feat.to(dev), g.label.to(dev), [m.to(dev) for m in g.masks]
            self.n_train = g.num_train
        else:
            self.part = shared_partition(comm, g, self.num_parts, self.opt.partition,
                                         bool(int(self.opt.balance_edges)), cfg.seed)
            self.view = build_local_view(g, self.part.part_id, comm.rank, self.spec, self.num_parts).to(dev)
            self.x, self.label, self.masks = self.rows_of(self.view.owned)
            self.n_train = int(g.train_mask.sum())
            self.aggregate = self.view.aggregator(backend, dev)
        mat = getattr(self.aggregate, "matrix", None)
        if kind in ("gcn", "sage") and isinstance(mat, CSRMatrix):  # owned and halo columns apart, the pair freed
            self.aggregate = SplitAggregator(SplitCSR(mat, self.view.num_owned))
        del mat
        self.train_rows = torch.nonzero(self.masks[0]).flatten()  # the rows the loss reads, ascending
        self.train_label = self.label.index_select(0, self.train_rows)
        self.init_model(init_params(self.spec, cfg.seed))
        self.monitor = StaleMonitor() if self.stale_k > 1 else None
        bound = None
        if self.monitor is not None:
            self.monitor.bound = float(self.opt.stale_bound)
            bound = DriftBound(self.monitor.bound, self.stale_k, self.monitor) if self.monitor.bound > 0 else None
        self.history = [StaleHalo(self.monitor, bound) for _ in range(self.spec.layers)]
        self.layer_bytes = self._layer_bytes(self.projected)
        self.exact_layer_bytes = self._layer_bytes(True)
        self.stale_epochs, self.stale_saved_bytes = 0, 0
        if comm.rank != 0:
            self.quality = {}
        elif isinstance(g, PartData):
            self.quality = g.manifest["quality"]
        else:
            self.quality = partition_stats(g.src, g.dst, self.part.part_id, self.num_parts)

    def _forward(self, training: bool, refresh: bool | None = True, tag_prefix: str = "", rows: Tensor | None = None,
                 before_weight: bool = False) -> Tensor:
        """The model on owned rows; each layer's input is completed with its halo rows first. ``rows``: the
        output layer computes only these owned rows (training: the training rows, all the loss reads).
        With a split matrix (gcn/sage on torch) a fresh exchange and its aggregation are one step
        (``halo_aggregate``: no [owned; halo] rows), and each hidden layer's relu and the next dropout run in
        place on its output (``activate_dropout``). ``before_weight``: the output layer's rows before its
        weight (``halo.head_before_weight``; the loss applies it)."""
        h_in, split, last_layer = self.x, getattr(self.aggregate, "split", None), self.spec.layers - 1
        for i in range(self.spec.layers):
            tag, hist, gather = tags.halo(i, tag_prefix), self.history[i], None
            if self.stale_k > 1 and training:
                exchange = lambda rows, hist=hist, tag=tag: hist.exchange(self.comm, self.view, rows, tag, refresh)
            else:
                exchange = lambda rows, tag=tag: halo_exchange(self.comm, self.view, rows, tag)
                if split is not None:
                    gather = lambda rows, tag=tag: halo_aggregate(self.comm, self.view, split, rows, tag)
            last = rows if i == last_layer else None
            out = halo_layer(self.spec, self.params, i, self.aggregate, h_in, exchange, self.projected, last, gather,
                             before_weight and i == last_layer)
            if i == last_layer:
                return out
            h_in = activate_dropout(self.spec, i, out, h_in, training, self.view.owned)
            del out  # the layer's output is h_in now (in place) or freed
        raise AssertionError("a model has at least one layer")

    def _layer_bytes(self, projected: bool) -> list[int]:
        """Bytes this rank sends in each layer's halo exchange of a training epoch (forward + backward)."""
        v = self.view
        return [(sum(v.send_counts) * f + sum(v.recv_counts) * b) * 4 * (self.num_parts > 1)
                for f, b in exchange_widths(self.spec, projected)]

    def exchange_bytes(self) -> int:
        """Bytes this rank sends in one training epoch's halo exchanges (forward + backward), a refreshing one
        with ``--stale K`` (its layers exchange their input rows; the exact path projects first where it can)."""
        return sum(self.layer_bytes)

    def train_epoch(self, epoch: int) -> float:
        refresh = self.stale_k == 1 or epoch % self.stale_k == 0
        if self.stale_k > 1 and self.history[0].bound is not None:
            refresh = None  # each layer asks its bound
        loss = self.data_parallel_step(lambda: self._loss(refresh))
        total = float(loss) if self.num_parts == 1 else global_sum(self.comm, [float(loss)], tags.LOSS_ALLREDUCE)[0]
        if self.monitor is not None:
            self._count_staleness(total)
        return total

    def _count_staleness(self, loss: float) -> None:
        """This epoch's stale layers: reads from history, bytes sent and saved (against a refresh, and against
        the exact mode's projected exchange), the loss."""
        reused = [h.reused and self.num_parts > 1 for h in self.history]
        saved = sum(b for b, r in zip(self.layer_bytes, reused) if r)
        self.stale_epochs += all(reused)
        self.stale_saved_bytes += saved
        self.monitor.count(stale_layer_epochs=sum(reused), refreshed_layer_epochs=len(reused) - sum(reused),
                           halo_sent_bytes=sum(self.layer_bytes) - saved, stale_saved_bytes=saved,
                           exact_halo_bytes=sum(self.exact_layer_bytes))
        self.monitor.reads(self.view.num_halo * sum(reused), self.view.num_local * self.spec.layers)
        self.monitor.loss(loss)

    def _loss(self, refresh: bool | None) -> Tensor:
        """This rank's share of the training loss over its training rows; a gcn output layer that aggregates
        first hands its rows and weight to ``linear_rows_loss`` (no logits nor log-softmax kept for backward)."""
        if head_before_weight(self.spec):
            i = self.spec.layers - 1
            h = self._forward(True, refresh, rows=self.train_rows, before_weight=True)
            return linear_rows_loss(h, self.params[f"layers.{i}.weight"], self.params[f"layers.{i}.bias"],
                                    self.train_label, self.n_train)
        return rows_loss(self._forward(True, refresh, rows=self.train_rows), self.train_label, self.n_train)

    def evaluate(self) -> dict[str, float]:
        with torch.no_grad():
            if head_before_weight(self.spec):  # the classes block by block, no [owned, classes] logits
                i = self.spec.layers - 1
                h = self._forward(False, tag_prefix=tags.EVAL, before_weight=True)
                pred = linear_predictions(h, self.params[f"layers.{i}.weight"], self.params[f"layers.{i}.bias"])
                return global_accuracy(self.comm, None, self.label, self.masks, pred=pred)
            logits = self._forward(False, tag_prefix=tags.EVAL)
        return global_accuracy(self.comm, logits, self.label, self.masks)

    def worker_stats(self) -> dict[str, Any]:
        return {**self.view.stats(), "exchange_bytes_per_epoch": self.exchange_bytes(),
                "stale_epochs": self.stale_epochs, "stale_saved_bytes": self.stale_saved_bytes,
                **({"staleness": self.monitor.stats()} if self.monitor is not None else {})}

    def analytic_bytes_per_epoch(self) -> float:
        """Sent bytes per training epoch over all ranks by the formula (rank 0, which holds the stats):
        halo rows x widths (``halo_bytes``) + P x (gradient all_reduce + 8-byte loss sum).
        With ``--stale K`` the halo part is averaged over a K-epoch cycle (one refresh in K): the fixed schedule's
        (``--stale-bound 0``); a bounded run's halo bytes depend on its drift (``staleness.halo_sent_bytes``)."""
        if self.num_parts == 1:
            return 0
        n_params = sum(p.numel() for p in self.params.values())
        halo = halo_bytes(self.spec, sum(self.quality["halo_vertices"]), projected=self.projected)
        return halo / self.stale_k + self.num_parts * (n_params * 4 + 8)

    def info(self) -> dict[str, Any]:
        q = self.quality
        return {"partition_method": self.part.method, "stale": self.stale_k, **self.part.info(),
                **({"staleness": self.monitor.stats()} if self.monitor is not None else {}),
                "analytic_bytes_per_epoch": self.analytic_bytes_per_epoch(),
                **{k: q[k] for k in ("edge_cut", "edge_cut_fraction", "replication_factor", "vertex_imbalance",
                                     "edge_imbalance", "halo_vertices", "owned_vertices") if k in q}}
