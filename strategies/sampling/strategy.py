"""``sampling``: DistDGL-style mini-batch data parallelism with distributed neighbour sampling.

    graphpar run --strategy sampling --dataset cora --workers 2 --fanouts 15,10 --batch-size 32
    graphpar check --strategy sampling --dataset cora --workers 3 --fanouts -1 --batch-size 0

The graph is partitioned as ``partition`` does (METIS by default); each rank owns its part's vertices,
their in-edges, their feature rows and their training vertices (``sampling_blocks.OwnedStore``). An epoch
is a shuffled pass over every rank's own training vertices in batches of ``--batch-size`` (0 = all of
them in one step); every rank runs the same number of steps, max_r ceil(n_r / B), with empty batches
where it has run out. One step, from the output layer down: the owners of the layer's destination
vertices sample up to ``--fanouts[i]`` in-neighbours each (-1 = all) and send them back (the output
layer's destinations are the rank's own seeds: sampled locally); the union forms the next layer's
destinations. Then the input vertices' feature rows come from their owners, the model
runs on the blocks (MFGs) with the reference's layer math (``models.conv_layer``) and global-degree
normalisation, the loss is the batch's cross-entropy over the global batch size, and the gradients are
summed with one all_reduce before every replica takes the same Adam step. With ``--fanouts -1
--batch-size 0`` an epoch is one step over the exact L-hop neighbourhoods: the full-graph reference step (on one
rank nothing is random and nothing remote, so those blocks are built in the first epoch and kept: ``_fixed_batch``).
Evaluation is layer-wise full-neighbourhood inference with the halo exchange of ``partition``.

Bytes per training step sent by rank r (exact, tested), P ranks, L layers, F input features:
    sum_{i<L-1} [8(P-1) + 8 q_i + 8 s_i + 8 e_i]  +  8(P-1) + 8 q_in + 4F s_in  +  4|W|
and 8 bytes per epoch for the loss. q_i: layer i's destination vertices owned by other ranks (requested
ids), s_i: ids other ranks requested from r (r returns one int64 sampled degree each), e_i: neighbour ids r
returns for them (<= fanout_i x s_i), q_in / s_in: the same for the input vertices' feature rows; 8(P-1)
is each exchange's per-peer request sizes (the output layer samples the rank's own seeds: no exchange).
Over all ranks sum q = sum s, so a step moves
    sum_{i<L-1} [8P(P-1) + 16 Q_i + 8 E_i] + 8P(P-1) + (8 + 4F) Q_in + 4P|W|.
worker_stats keeps q, s, e per epoch (``traffic``), the sampling and feature-fetch seconds per epoch
(``sample_s``, ``fetch_s``, their communication included) and ``steps_per_epoch``.
"""
from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import tags
from ..base import PARTITION_OPTION, ConfigError, Option, Strategy, TrainConfig, register
from ..models import activate, conv_layer, dropout, init_params
from ..partitioning.halo import build_local_view, halo_exchange, halo_layer
from ..partitioning.partitioner import check_method, partition_stats, shared_partition
from ..training import allreduce_grads, global_accuracy, global_sum
from .blocks import Block, BlockNorm, OwnedStore, Traffic, fetch_rows, sample_layer, sample_owned

DEFAULT_FANOUTS = (15, 10, 5)  # DGL's GraphSAGE examples; deeper models repeat the last one


def parse_fanouts(text: str, layers: int) -> list[int]:
    """``"15,10"`` -> per-layer fanouts, input layer first; one value applies to every layer; ``auto`` is
    15,10,5,5,... cut to the depth. Raises ConfigError naming the fix."""
    if str(text).strip() == "auto":
        return [DEFAULT_FANOUTS[min(i, len(DEFAULT_FANOUTS) - 1)] for i in range(layers)]
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise ConfigError(f"--fanouts {text!r} is not a comma-separated list of integers; pass e.g. 15,10") from None
    if any(v == 0 or v < -1 for v in values):
        raise ConfigError(f"--fanouts {text}: each fanout must be >= 1 or -1 (all neighbours)")
    if len(values) == 1:
        return values * layers
    if len(values) != layers:
        raise ConfigError(f"--fanouts {text} has {len(values)} values for --layers {layers}; pass {layers} "
                          "values (input layer first) or one for every layer")
    return values


@register
class Sampling(Strategy):
    name = "sampling"
    description = "mini-batch data parallelism (DistDGL): METIS parts, distributed neighbour sampling"
    models = ("gcn", "sage", "gat")
    options = (
        PARTITION_OPTION,
        Option("--batch-size", int, 1024, "sampling: training vertices per rank per step (0 = all in one step)"),
        Option("--fanouts", str, "auto", "sampling: neighbours per layer, input layer first, -1 = all "
                                          "(auto = 15,10,5,...)"),
    )

    @classmethod
    def exact_options(cls) -> dict[str, Any]:
        """The options under which training equals the full-graph reference (for checks): every
        neighbour, one batch of every training vertex."""
        return {"fanouts": "-1", "batch_size": 0}

    @classmethod
    def validate(cls, cfg: TrainConfig, graph_summary: dict) -> None:
        super().validate(cfg, graph_summary)
        opts = cls.options_of(cfg)
        check_method("--partition", opts.partition, cfg.workers > 1)
        if int(opts.batch_size) < 0:
            raise ConfigError(f"--batch-size {opts.batch_size} must be >= 1, or 0 for all training vertices")
        parse_fanouts(opts.fanouts, cfg.layers)

    def setup(self) -> None:
        g, comm, cfg, dev = self.graph, self.comm, self.cfg, self.device
        self.num_parts, rank = comm.world_size, comm.rank
        self.fanouts = parse_fanouts(self.opt.fanouts, self.spec.layers)
        self.part = shared_partition(comm, g, self.num_parts, self.opt.partition, False, cfg.seed)
        part_id = self.part.part_id
        self.store = OwnedStore(g, part_id, rank, self.num_parts)
        self.norm = BlockNorm(self.spec.kind, g.src, g.dst, g.num_nodes)
        self.label = g.label.to(dev)
        self.train_ids = self.store.owned[g.train_mask[self.store.owned]]
        per_rank = torch.bincount(part_id[g.train_mask], minlength=self.num_parts)
        self.n_train = int(per_rank.sum())
        b = int(self.opt.batch_size)
        self.batch = b if b > 0 else max(int(per_rank.max()), 1)
        self.steps = max(max(math.ceil(int(n) / self.batch) for n in per_rank), 1)
        # the global batch size of every step, known to every rank without communication
        self.global_batch = [int((per_rank - s * self.batch).clamp(0, self.batch).sum()) for s in range(self.steps)]
        self.kernel = self.kernel_name()
        self.init_model(init_params(self.spec, cfg.seed))
        self.sample_gen = torch.Generator().manual_seed(cfg.seed * 1000 + 17 + rank)
        self.shuffle_gen = torch.Generator().manual_seed(cfg.seed * 1000 + 911 + rank)
        # evaluation: layer-wise full-graph inference with the halo exchange
        self.view = build_local_view(g, part_id, rank, self.spec, self.num_parts).to(dev)
        self.eval_agg = self.view.aggregator(self.kernel, dev)
        self.masks = [m[self.store.owned].to(dev) for m in (g.train_mask, g.val_mask, g.test_mask)]
        self.sample_s, self.fetch_s, self.traffic = [], [], []
        # one rank, full fanout, one step: nothing random, nothing to fetch (``_fixed_batch``)
        self.fixed = self.num_parts == 1 and self.steps == 1 and all(f < 0 for f in self.fanouts)
        self._fixed: tuple | None = None
        self.quality = partition_stats(g.src, g.dst, part_id, self.num_parts) if rank == 0 else {}

    # -- one mini-batch -------------------------------------------------------------------------------
    def _sample(self, seeds: Tensor, traffic: dict) -> list[Block]:
        """Blocks for layers 0..L-1 (input first), sampled from the output layer down."""
        blocks: list[Block] = []
        dst = seeds
        for i in reversed(range(self.spec.layers)):
            if i == self.spec.layers - 1:  # the seeds are this rank's own vertices
                counts, dst_idx, nbrs = sample_owned(self.store, dst, self.fanouts[i], self.sample_gen)
            else:
                counts, dst_idx, nbrs, t = sample_layer(self.comm, self.store, dst, self.fanouts[i],
                                                        self.sample_gen, tags.sample(i))
                _add(traffic, f"layer{i}", t)
            blocks.append(self.norm.make_block(dst, counts, dst_idx, nbrs))
            dst = blocks[-1].src_nodes
        return blocks[::-1]

    def _layer(self, i: int, blk: Block, h_in: Tensor) -> Tensor:
        """Layer i on its block, before activation: ``h_in`` holds the block's src rows, dst rows first."""
        agg = blk.aggregator(self.kernel, self.device)
        return conv_layer(self.spec, self.params, i, agg, h_in, h_in[:blk.num_dst])

    def _forward_blocks(self, blocks: list[Block], x: Tensor, training: bool) -> Tensor:
        h = x
        for i, blk in enumerate(blocks):
            h_in = dropout(self.spec, i, h, training, blk.src_nodes)
            h = activate(self.spec, i, self._layer(i, blk, h_in), h_in[:blk.num_dst])
        return h

    def _batch(self, seeds: Tensor, traffic: dict) -> tuple[list[Block], Tensor, float, float]:
        """One step's blocks and input rows, with the seconds spent sampling and fetching."""
        t0 = time.perf_counter()
        blocks = self._sample(seeds, traffic)
        t1 = time.perf_counter()
        x, t = fetch_rows(self.comm, self.store, blocks[0].src_nodes, tags.FETCH)
        _add(traffic, "input", t)
        return blocks, x.to(self.device), t1 - t0, time.perf_counter() - t1

    def _fixed_batch(self, seeds: Tensor, traffic: dict) -> tuple[list[Block], Tensor, float, float]:
        """One rank, every neighbour, one batch: the blocks are the same every epoch (the training vertices'
        exact L-hop neighbourhoods) and there is no one to fetch from, so they are built on the first epoch
        and kept, with their aggregators and input rows, as the full-graph reference keeps its graph."""
        if self._fixed is None:
            self._fixed = self._batch(torch.sort(seeds).values, traffic)
            return self._fixed
        for key in [f"layer{i}" for i in range(self.spec.layers - 1)] + ["input"]:
            _add(traffic, key, Traffic())  # the same (zero) rows as the first epoch's
        return (*self._fixed[:2], 0.0, 0.0)

    def train_epoch(self, epoch: int) -> float:
        order = self.train_ids[torch.randperm(self.train_ids.numel(), generator=self.shuffle_gen)]
        ce_sum, sample_s, fetch_s, traffic = 0.0, 0.0, 0.0, {}
        make = self._fixed_batch if self.fixed else self._batch
        for step in range(self.steps):
            seeds = order[step * self.batch:(step + 1) * self.batch]
            blocks, x, s_s, f_s = make(seeds, traffic)
            sample_s, fetch_s = sample_s + s_s, fetch_s + f_s
            self.optimizer.zero_grad(set_to_none=True)
            if seeds.numel():
                if self.fixed:
                    seeds = blocks[-1].src_nodes[:blocks[-1].num_dst]
                logits = self._forward_blocks(blocks, x, True)
                ce = F.cross_entropy(logits, self.label[seeds.to(self.device)], reduction="sum")
                (ce / self.global_batch[step]).backward()
                ce_sum += float(ce)
            allreduce_grads(self.comm, self.params)
            self.optimizer.step()
        self.sample_s.append(sample_s)
        self.fetch_s.append(fetch_s)
        self.traffic.append({**traffic, "steps": self.steps})
        if self.num_parts == 1:
            return ce_sum / max(self.n_train, 1)
        return global_sum(self.comm, [ce_sum], tags.LOSS_ALLREDUCE)[0] / max(self.n_train, 1)

    # -- evaluation: full neighbourhoods, layer by layer ------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        with torch.no_grad():
            h = self.store.feat.to(self.device)
            for i in range(self.spec.layers):
                tag = tags.halo(i, tags.EVAL)
                exchange = lambda rows, tag=tag: halo_exchange(self.comm, self.view, rows, tag)
                h = activate(self.spec, i, halo_layer(self.spec, self.params, i, self.eval_agg, h, exchange), h)
        return global_accuracy(self.comm, h, self.label[self.store.owned.to(self.device)], self.masks)

    def worker_stats(self) -> dict[str, Any]:
        return {"local_vertices": int(self.store.owned.numel()), "local_edges": self.store.num_edges,
                "train_vertices": int(self.train_ids.numel()), "steps_per_epoch": self.steps,
                "sample_s": self.sample_s, "fetch_s": self.fetch_s, "traffic": self.traffic}

    def info(self) -> dict[str, Any]:
        q = self.quality
        return {"partition_method": self.part.method, **self.part.info(), "fanouts": self.fanouts,
                "batch_size": self.batch, "steps_per_epoch": self.steps,
                **{k: q[k] for k in ("edge_cut", "edge_cut_fraction", "vertex_imbalance", "owned_vertices") if k in q}}


def _add(traffic: dict, key: str, t: Traffic) -> None:
    """Accumulate an exchange's row counts under ``key`` (q = requested, s = served, e = rows sent back)."""
    acc = traffic.setdefault(key, {"q": 0, "s": 0, "e": 0})
    acc["q"] += t.requested
    acc["s"] += t.served
    acc["e"] += t.served_rows
