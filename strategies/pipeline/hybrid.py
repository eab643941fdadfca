"""Hybrid layer pipelining x graph partitioning: P = S stages x G graph parts (``pipeline --graph-parts G``).

    graphpar check --strategy pipeline --dataset cora --workers 4 --layers 4 --graph-parts 2 --staleness 0

Rank ``stage * G + g`` runs the stage's layers on graph part g of one G-way partition (computed once by
rank 0 and shared, so every stage sees the same owners). Within a stage the G ranks form a partition
group (``comm.subgroup``): each layer completes its input with the halo rows through ``halo.py``'s
``halo_exchange`` (tags ``layer{i}/halo/fwd|bwd``) and the stage's weight gradients are summed with one
all_reduce in the group (``grad/allreduce``). Stage to stage, rank (s, g) sends only part g's owned rows
to rank (s + 1, g) (``pipe/cut{s}/fwd``, gradients back on ``pipe/cut{s}/bwd``). The whole graph moves as
one chunk (``--staleness 0``): this equals the reference exactly.
Bytes per epoch over all ranks: 2 (S - 1) N H 4 at the cuts + ``halo_bytes(spec, halo rows)`` for the
halo (gat: each halo row's projection and el, ``partition``'s formula) + G x (stage parameters x 4) per
stage for the gradient all_reduce + 8 per rank for the loss sum.
"""
from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from .. import tags
from ..comm import Communicator
from ..models import ModelSpec, activate, dropout
from ..partition.halo import build_local_view, halo_bytes, halo_exchange, halo_layer
from ..partition.partitioner import partition_stats, shared_partition
from ..training import allreduce_grads, global_accuracy, local_loss


def stage_groups(comm: Communicator, stages: int, parts: int) -> Communicator:
    """This rank's stage group; every rank creates every group, in the same order (collective)."""
    mine = None
    for s in range(stages):
        group = comm.subgroup(list(range(s * parts, (s + 1) * parts)))
        if s == comm.rank // parts:
            mine = group
    return mine


class HybridStage:
    """Layers [b, e) on graph part ``g`` of stage ``s``: forward/backward of the whole part per epoch."""

    def __init__(self, comm: Communicator, spec: ModelSpec, graph, cut: list[tuple[int, int]], parts: int,
                 method: str, seed: int, params: dict[str, Tensor], backend: str, device: torch.device):
        self.comm, self.spec, self.params, self.device = comm, spec, params, device
        self.parts, self.stages = parts, len(cut)
        self.stage, self.g = comm.rank // parts, comm.rank % parts
        self.b, self.e = cut[self.stage]
        self.last = self.e == spec.layers
        self.part = shared_partition(comm, graph, parts, method, seed=seed, tag=tags.SETUP_PARTITION)
        self.group = stage_groups(comm, self.stages, parts)
        self.view = build_local_view(graph, self.part.part_id, self.g, spec, parts).to(device)
        self.agg = self.view.aggregator(backend, device)
        owned = self.view.owned
        self.x = graph.feat[owned].to(device) if self.b == 0 else None
        self.label = graph.label[owned].to(device)
        self.masks = [m[owned].to(device) for m in (graph.train_mask, graph.val_mask, graph.test_mask)]
        self.n_train = int(graph.train_mask.sum())
        self.halo_rows = partition_stats(graph.src, graph.dst, self.part.part_id, parts)["halo_vertices"]

    @property
    def rows(self) -> int:
        return self.view.num_owned

    def _peer(self, stage: int) -> int:
        return stage * self.parts + self.g

    def _layers(self, h: Tensor, training: bool, prefix: str) -> Tensor:
        for i in range(self.b, self.e):
            h_in = dropout(self.spec, i, h, training)
            tag = tags.halo(i, prefix)
            exchange = lambda rows, tag=tag: halo_exchange(self.group, self.view, rows, tag)  # noqa: E731
            h = activate(self.spec, i, halo_layer(self.spec, self.params, i, self.agg, h_in, exchange), h_in)
        return h

    def _recv(self, width: int, peer: int, tag: str, clock: dict[str, float]) -> Tensor:
        t = time.perf_counter()
        x = self.comm.recv(torch.empty(self.rows, width, device=self.device), self._peer(peer), tag)
        clock["idle_s"] += time.perf_counter() - t
        return x

    def train_epoch(self, clock: dict[str, float]) -> float:
        """Forward then backward of the whole part; weight grads summed in the stage group; returns the local loss."""
        s, dims = self.stage, self.spec.dims
        x_in = self._recv(dims[self.b], s - 1, tags.pipe_cut(s, tags.FWD), clock).requires_grad_(True) if s > 0 else self.x
        t = time.perf_counter()
        out = self._layers(x_in, True, "")
        clock["compute_s"] += time.perf_counter() - t
        if not self.last:
            self.comm.send(out.detach(), self._peer(s + 1), tags.pipe_cut(s + 1, tags.FWD))
            grad = self._recv(dims[self.e], s + 1, tags.pipe_cut(s + 1, tags.BWD), clock)
            loss = 0.0
        else:
            out, grad = local_loss(out, self.label, self.masks[0], self.n_train), None
            loss = float(out)
        t = time.perf_counter()
        torch.autograd.backward(out, grad)
        allreduce_grads(self.group, self.params)
        clock["compute_s"] += time.perf_counter() - t
        if s > 0:
            self.comm.send(x_in.grad.contiguous(), self._peer(s - 1), tags.pipe_cut(s, tags.BWD))
        return loss

    def evaluate(self) -> dict[str, float]:
        s, dims = self.stage, self.spec.dims
        with torch.no_grad():
            h = self._recv(dims[self.b], s - 1, tags.pipe_cut(s, tags.FWD, tags.EVAL), {"idle_s": 0.0}) if s > 0 else self.x
            out = self._layers(h, False, tags.EVAL)
            if not self.last:
                self.comm.send(out, self._peer(s + 1), tags.pipe_cut(s + 1, tags.FWD, tags.EVAL))
        if self.last:
            return global_accuracy(self.comm, out, self.label, self.masks, tags.EVAL_ACC)
        none = torch.zeros(0, dtype=torch.bool, device=self.device)
        return global_accuracy(self.comm, torch.zeros(0, dims[-1]), self.label[:0], [none] * 3, tags.EVAL_ACC)

    def halo_bytes_per_epoch(self) -> int:
        """All ranks' halo bytes in one epoch: every stage exchanges the halo of its own layers."""
        return halo_bytes(self.spec, sum(self.halo_rows)) if self.parts > 1 else 0

    def info(self) -> dict[str, Any]:
        return {"graph_parts": self.parts, "partition_method": self.part.method,
                "halo_vertices": self.halo_rows, "halo_bytes_per_epoch": self.halo_bytes_per_epoch()}
