"""``pipeline``: GNNPipe-style layer pipelining: contiguous layer stages, vertex chunks, historical embeddings.

    graphpar run --strategy pipeline --dataset cora --workers 4 --layers 8 --pipe-chunks 4
    graphpar check --strategy pipeline --dataset cora --workers 2 --layers 4 --staleness 0

The L layers are cut into S = P contiguous stages balanced by an estimated cost (``stage_cut``); each
stage holds the whole graph and full-size activation buffers for its layers (``pipeline_stage``).
Vertices are cut into K = ``--pipe-chunks`` chunks (``--chunk-order``: K-way METIS parts by default, so few
edges cross chunks and few reads are historical); chunk c's rows go stage to stage by
send/recv (tags ``pipe/cut{s}/fwd``, gradients back under ``pipe/cut{s}/bwd``) in a one-forward-one-
backward order, with an epoch barrier. ``--staleness 1``: a chunk reads last epoch's rows (and
gradients) of chunks not yet done this epoch; ``--pipe-warmup N`` (default 1) runs N whole-graph epochs first,
the last of which seeds the history (rows and late gradients): without it the first stale epoch reads zero rows
and misses the late gradients, and Adam's first step (and its second-moment estimate, remembered for ~1000
steps) takes that wrong gradient, which sank 4-layer seeds for good (notes/staleness.md section 10);
``--pipe-cooldown N`` (default a fifth of the epochs) runs the last N
epochs on the whole graph: a stale forward differs from the exact one evaluation runs and the weights adapt
to it (notes/staleness.md section 9); ``staleness`` in the record counts the historical reads, the drift
of those rows and whether the loss diverged (``staleness.StaleMonitor``). Dropout masks: ``--dropout-masks``
(``dropmask.py``).
``--staleness 0``: one chunk = the whole graph: plain
layer-wise model parallelism, equal to the reference. ``--pipe-update chunk`` steps each stage's
optimiser after every chunk's backward (weight stashing keeps each chunk's backward on the weights its
forward used); ``epoch`` (default) steps once per epoch. Bytes per epoch, exact, summed over ranks:
sent = 2 * (S - 1) * N * H * 4 (every row crosses every cut once each way), plus an 8-byte loss sum
per rank. Evaluation moves N x H rows per cut under ``eval/``. ``--graph-parts G``: P = S x G, each
stage a G-way graph partition group (``hybrid.py``). The schedule drives either kind of stage through one
interface (``stage.Stage``): ``chunked.ChunkedStage`` (the whole graph) or ``hybrid.HybridStage`` (one part).
"""
from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from .. import tags
from ..base import ConfigError, Option, Strategy, TrainConfig, register
from ..models import ModelSpec, init_params, layer_param_names
from ..partitioning.partitioner import METHODS, check_method
from ..staleness import max_over_ranks
from ..training import global_accuracy, global_sum, make_optimizer, make_params
from .chunked import ChunkedStage
from .hybrid import HybridStage
from .stage import Stage


def layer_costs(spec: ModelSpec, num_nodes: int, num_edges: int) -> list[float]:
    """Estimated cost of each layer: aggregation E * (narrower width) + dense N * d_in * d_out (x2 for sage);
    gat: attention E * (H D + 2H) + projection N * d_in * H D."""
    if spec.kind == "gat":
        shapes = [spec.gat_shape(i) for i in range(spec.layers)]
        return [float(num_edges * (h * w + 2 * h) + num_nodes * a * h * w) for a, (h, w) in zip(spec.dims, shapes)]
    dense = 2 if spec.kind == "sage" else 1
    return [float(num_edges * min(a, b) + dense * num_nodes * a * b) for a, b in zip(spec.dims[:-1], spec.dims[1:])]


def stage_cut(costs: list[float], stages: int) -> list[tuple[int, int]]:
    """Contiguous [b, e) layer ranges, one per stage, each non-empty, minimising the heaviest stage."""
    n = len(costs)
    pre = [0.0]
    for c in costs:
        pre.append(pre[-1] + c)
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(stages + 1)]
    arg = [[0] * (n + 1) for _ in range(stages + 1)]
    best[0][0] = 0.0
    for s in range(1, stages + 1):
        for e in range(s, n + 1):
            for b in range(s - 1, e):
                v = max(best[s - 1][b], pre[e] - pre[b])
                if v < best[s][e]:
                    best[s][e], arg[s][e] = v, b
    cut, e = [], n
    for s in range(stages, 0, -1):
        cut.append((arg[s][e], e))
        e = arg[s][e]
    return cut[::-1]


def one_f_one_b(stage: int, stages: int, chunks: int) -> list[tuple[str, int]]:
    """PipeDream-flush order for one stage: warm-up forwards, alternating F/B, cool-down backwards."""
    ops, f, b = [], 0, 0
    for _ in range(min(stages - 1 - stage, chunks)):
        ops.append(("F", f))
        f += 1
    while f < chunks:
        ops += [("F", f), ("B", b)]
        f, b = f + 1, b + 1
    ops += [("B", c) for c in range(b, chunks)]
    return ops


@register
class LayerPipeline(Strategy):
    name = "pipeline"
    description = "layer pipelining (GNNPipe): contiguous layer stages, vertex chunks, historical embeddings"
    models = ("gcn", "sage", "gat")
    options = (
        Option("--pipe-chunks", int, 4, "pipeline: vertex chunks K streamed through the stages",
               old_name="--chunks"),
        Option("--staleness", int, 1, "pipeline: 1 = historical embeddings of later chunks, 0 = exact", (0, 1)),
        Option("--pipe-warmup", int, 1, "pipeline: first N epochs without staleness (one chunk); the last one "
               "seeds the history, so the first stale step is not taken on zero rows"),
        Option("--pipe-cooldown", int, -1, "pipeline: last N epochs without staleness (one chunk), so the weights "
               "end fitted to the exact forward that evaluation runs; -1: a fifth of --epochs, 0: none"),
        Option("--grad-clip", float, 0.0, "pipeline: clamp weight gradients elementwise to +-V (0: off)"),
        Option("--chunk-order", str, "metis", "pipeline: vertices into chunks by K-way 'metis' parts (fewest "
               "historical reads), 'contiguous' id ranges or a 'random' permutation", ("metis", "contiguous", "random")),
        Option("--graph-parts", int, 1, "pipeline: G-way graph partition inside every stage (P = S x G; "
               "hybrid: halo exchange per chunk inside the stage)"),
        Option("--pipe-partition", str, "metis", "pipeline: partitioner of the hybrid's graph parts", METHODS),
        Option("--pipe-update", str, "epoch", "pipeline: optimiser step per 'epoch' or per 'chunk' "
               "(weight stashing)", ("epoch", "chunk")),
        Option("--pipe-stale-bound", float, 0.0, "pipeline, --staleness 1: after an epoch whose historical rows "
               "drifted more than this (relative, largest over stages) the next epoch runs whole-graph (exact, "
               "re-seeds the history); 0 = off"),
    )

    check_fills_exact = False  # --staleness 1 (the default) reads last epoch's rows: refused by check

    @classmethod
    def exact_options(cls) -> dict[str, Any]:
        return {"staleness": 0}

    @classmethod
    def validate(cls, cfg: TrainConfig, graph_summary: dict) -> None:
        super().validate(cfg, graph_summary)
        o = cls.options_of(cfg)
        parts = o.graph_parts
        if parts < 1 or cfg.workers % parts:
            raise ConfigError(f"--workers {cfg.workers} must be stages x --graph-parts {parts}; pass a divisor")
        stages = cfg.workers // parts
        if cfg.layers < stages:
            raise ConfigError(f"pipeline needs a layer per stage: --layers {cfg.layers} < stages {stages} "
                              f"(--workers {cfg.workers} / --graph-parts {parts}); pass --layers >= {stages}")
        check_method("--pipe-partition", o.pipe_partition, parts > 1)
        most = graph_summary["nodes"] // parts
        if not 1 <= o.pipe_chunks <= most:
            raise ConfigError(f"--pipe-chunks {o.pipe_chunks} must be in [1, {most}] (the vertex count"
                              + (f" / --graph-parts {parts})" if parts > 1 else ")"))
        if o.staleness not in (0, 1):
            raise ConfigError(f"--staleness {o.staleness} must be 0 (exact) or 1 (historical embeddings)")
        check_method("--chunk-order", o.chunk_order, bool(o.staleness) and o.pipe_chunks > 1)
        if not o.pipe_stale_bound >= 0:
            raise ConfigError(f"--pipe-stale-bound {o.pipe_stale_bound} must be >= 0 (0 = off)")
        if o.pipe_warmup < 0 or o.pipe_cooldown < -1 or o.grad_clip < 0:
            raise ConfigError(f"--pipe-warmup {o.pipe_warmup}, --pipe-cooldown {o.pipe_cooldown} and --grad-clip "
                              f"{o.grad_clip} must be >= 0 (--pipe-cooldown -1: a fifth of --epochs)")

    def setup(self) -> None:
        g, dev, cfg, comm = self.graph, self.device, self.cfg, self.comm
        self.parts = self.opt.graph_parts
        self.stages, self.stage = comm.world_size // self.parts, comm.rank // self.parts
        if comm.rank > 0:  # every rank starts from the same seed: without this, stages of equal width would
            torch.manual_seed(cfg.seed + 1_000_003 * comm.rank)  # draw identical dropout masks (correlated)
        self.costs = layer_costs(self.spec, g.num_nodes, g.num_edges + g.num_nodes)
        self.cut = stage_cut(self.costs, self.stages)
        b, e = self.cut[self.stage]
        init = init_params(self.spec, cfg.seed)
        mine = [n for i in range(b, e) for n in layer_param_names(self.spec, i)]
        self.params = make_params({n: init[n] for n in mine}, dev)
        self.optimizer = make_optimizer(self.params, cfg.lr, cfg.weight_decay)
        self.times: list[dict[str, float]] = []
        self.gathered: dict[str, Tensor] = {}
        self.k = 1 if self.opt.staleness == 0 else self.opt.pipe_chunks
        cool = self.opt.pipe_cooldown
        self.cooldown = (cfg.epochs // 5 if cool < 0 else cool) if self.k > 1 else 0  # whole-graph epochs at the end
        self.warmup = self.opt.pipe_warmup if self.k > 1 else 0  # ... and at the start
        kind = HybridStage if self.parts > 1 else ChunkedStage
        self.engine: Stage = kind.build(comm, self.spec, g, self.cut, self.params, self.opt, cfg.seed, self.k,
                                        self.kernel_name(), dev)
        self.monitor = self.engine.monitor
        self.refresh_next = False  # --pipe-stale-bound: the last epoch's drift asks for a whole-graph epoch
        if self.monitor is not None:
            self.monitor.bound, self.monitor.unit = float(self.opt.pipe_stale_bound), "epochs"

    # -- one epoch ---------------------------------------------------------------------------------
    def _recv(self, rows: int, width: int, src: int, tag: str, clock: dict) -> Tensor:
        t = time.perf_counter()
        x = self.comm.recv(torch.empty(rows, width, device=self.device), src, tag)
        clock["idle_s"] += time.perf_counter() - t
        return x

    def train_epoch(self, epoch: int) -> float:
        warm = self.warmup
        forced, self.refresh_next = self.refresh_next, False
        k = 1 if self._whole_graph(epoch) or forced else self.k
        seed_k = self.k if k == 1 < self.k and (epoch == warm - 1 or forced) else 0  # seeds the next stale epoch
        drifts_before = len(self.monitor.drifts) if self.monitor is not None else 0
        per_chunk = self.opt.pipe_update == "chunk"
        s, eng, dims = self.stage, self.engine, self.spec.dims
        clock = {"compute_s": 0.0, "idle_s": 0.0}
        sends, ctxs, loss = [], {}, 0.0
        for op, c in one_f_one_b(s, self.stages, k):
            rows = eng.chunk_rows(c, k)
            if op == "F":
                x_in = self._recv(rows, dims[eng.b], eng.peer(s - 1), tags.pipe_cut(s, tags.FWD), clock) if s > 0 else None
                t = time.perf_counter()
                ctxs[c], out = eng.forward_chunk(c, k, x_in, True, stash=per_chunk)
                if eng.last:
                    loss += float(out)
                clock["compute_s"] += time.perf_counter() - t
                if not eng.last:
                    sends.append(self.comm.send(out.detach(), eng.peer(s + 1), tags.pipe_cut(s + 1, tags.FWD), async_op=True))
            else:
                g = None if eng.last else self._recv(rows, dims[eng.e], eng.peer(s + 1), tags.pipe_cut(s + 1, tags.BWD), clock)
                t = time.perf_counter()
                dx = eng.backward_chunk(ctxs.pop(c), k, g, seed_k)
                if per_chunk:
                    self.optimizer_step()
                clock["compute_s"] += time.perf_counter() - t
                if dx is not None:
                    sends.append(self.comm.send(dx.contiguous(), eng.peer(s - 1), tags.pipe_cut(s, tags.BWD), async_op=True))
        t = time.perf_counter()
        for p in sends:
            p.wait()
        clock["idle_s"] += time.perf_counter() - t
        if not per_chunk:
            self.optimizer_step()
        eng.end_epoch()
        t = time.perf_counter()
        total = global_sum(self.comm, [loss], tags.PIPE_LOSS)[0]
        clock["idle_s"] += time.perf_counter() - t
        self.times.append({**clock, "chunks": k})
        if self.monitor is not None:
            self.monitor.loss(total)
            self.monitor.count(refreshed_layer_epochs=k == 1, stale_layer_epochs=k > 1, forced_refreshes=forced)
            if self.monitor.bound and k > 1 and epoch + 1 < self.cfg.epochs and not self._whole_graph(epoch + 1):
                drift = max_over_ranks(self.comm, max(self.monitor.drifts[drifts_before:], default=0.0))
                self.refresh_next = drift > self.monitor.bound
        return total

    def _whole_graph(self, epoch: int) -> bool:
        """A warm-up or cool-down epoch: one chunk, no historical reads."""
        cool = self.cooldown
        return epoch < self.warmup or bool(cool and epoch >= self.cfg.epochs - cool)

    def optimizer_step(self) -> None:
        self.engine.sync_grads()
        clip = self.opt.grad_clip
        if clip:
            for p in self.params.values():
                if p.grad is not None:
                    p.grad.clamp_(-clip, clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.engine.stepped()

    # -- evaluation: exact layer-wise forward, whole graph per stage ----------------------------------
    def evaluate(self) -> dict[str, float]:
        s, eng = self.stage, self.engine
        with torch.no_grad():
            x_in = None
            if s > 0:
                x_in = self.comm.recv(torch.empty(eng.num_rows, self.spec.dims[eng.b], device=self.device),
                                      eng.peer(s - 1), tags.pipe_cut(s, tags.FWD, tags.EVAL))
            _, out = eng.forward_chunk(0, 1, x_in, training=False)
            if not eng.last:
                self.comm.send(out, eng.peer(s + 1), tags.pipe_cut(s + 1, tags.FWD, tags.EVAL))
        self._gather_params()
        if eng.last:
            return global_accuracy(self.comm, out, eng.label, eng.masks, tags.EVAL_ACC)
        none = torch.zeros(0, dtype=torch.bool, device=self.device)
        return global_accuracy(self.comm, torch.zeros(0, self.spec.dims[-1]), eng.label[:0], [none] * 3, tags.EVAL_ACC)

    def _gather_params(self) -> None:
        """Every stage's weights to rank 0 (for full_parameters, which only rank 0 calls)."""
        if self.comm.rank % self.parts:  # the stage's other graph parts hold the same weights
            return
        if self.stage > 0:
            for n, p in self.params.items():
                self.comm.send(p.detach(), 0, tags.EVAL_PARAMS)
            return
        init = init_params(self.spec, self.cfg.seed)
        self.gathered = {n: p.detach().cpu().clone() for n, p in self.params.items()}
        for r in range(1, self.stages):
            b, e = self.cut[r]
            for n in (n for i in range(b, e) for n in layer_param_names(self.spec, i)):
                self.gathered[n] = self.comm.recv(torch.empty_like(init[n], device=self.device), r * self.parts,
                                                  tags.EVAL_PARAMS).cpu()

    def full_parameters(self) -> dict[str, Tensor]:
        return dict(self.gathered) or {n: p.detach().cpu().clone() for n, p in self.params.items()}

    # -- record ------------------------------------------------------------------------------------
    def worker_stats(self) -> dict[str, Any]:
        b, e = self.cut[self.stage]
        steady = self.times[1:] or self.times
        comp = sum(t["compute_s"] for t in steady) / max(len(steady), 1)
        idle = sum(t["idle_s"] for t in steady) / max(len(steady), 1)
        return {"local_vertices": self.graph.num_nodes, "local_edges": self.graph.num_edges, "stage": self.stage,
                "stage_layers": [b, e], "stage_compute_s": comp, "stage_idle_s": idle,
                "bubble_fraction": idle / (comp + idle) if comp + idle > 0 else 0.0,
                "stage_epochs": self.times, "graph_part": self.comm.rank % self.parts,
                **self._staleness(), **self.engine.stats()}

    def _staleness(self) -> dict[str, Any]:
        return {"staleness": self.monitor.stats()} if self.monitor is not None else {}

    def info(self) -> dict[str, Any]:
        n, h, s = self.graph.num_nodes, self.spec.dims, self.stages
        return {"stages": s, "cut": [list(c) for c in self.cut], "stage_cost": [sum(self.costs[b:e]) for b, e in
                                                                                  self.cut],
                "layer_cost": self.costs, "chunks": self.k, "staleness": self.opt.staleness,
                "pipe_update": self.opt.pipe_update, "pipe_warmup": self.warmup,
                "pipe_cooldown": self.cooldown,
                "cut_bytes_per_epoch": sum(2 * n * h[b] * 4 for b, _ in self.cut[1:]),
                "ideal_bubble_fraction": (s - 1) / (self.k + s - 1),
                "chunk_order": self.opt.chunk_order if self.k > 1 else "contiguous", **self._staleness(),
                **self.engine.info()}
