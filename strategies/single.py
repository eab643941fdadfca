"""``single``: one worker, the whole graph; the reference behind the strategy interface.

    graphpar run --strategy single --dataset cora --epochs 200

``--single-impl dgl`` trains DGL's own GraphConv/SAGEConv layers: this is the oracle every other strategy
is checked against (``graphpar check`` always uses it). ``--single-impl twin`` (the default, ``auto``)
trains the same model through the kernel seam with the kernel every strategy uses (``kernels.resolve_kernel``:
the fastest measured on the device), so a strategy's speedup over ``single`` is parallelism only.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .base import ConfigError, Option, Strategy, TrainConfig, register
from .kernels import make_aggregator
from .models import ReferenceModel, aggregation_edges, forward_full, init_params, reference_graph
from .training import global_accuracy, local_loss, make_optimizer, make_params


@register
class Single(Strategy):
    name = "single"
    description = "one worker, whole graph (the reference)"
    options = (Option("--single-impl", str, "auto", "single: 'dgl' layers (the oracle) or the 'twin' "
                      "(auto: the strategies' layer math and kernel)",
                      ("auto", "dgl", "twin")),)

    @classmethod
    def validate(cls, cfg: TrainConfig, graph_summary: dict) -> None:
        super().validate(cfg, graph_summary)
        if cfg.workers != 1:
            raise ConfigError(f"strategy single runs on 1 worker, not {cfg.workers}; pass --workers 1")

    def setup(self) -> None:
        g, dev = self.graph, self.device
        impl = self.opt.single_impl
        self.impl = "twin" if impl == "auto" else impl  # auto: the strategies' layer math and kernel
        init = init_params(self.spec, self.cfg.seed)
        self.x, self.label, self.masks = self.rows_of(slice(None))
        self.n_train = int(g.train_mask.sum())
        if self.impl == "dgl":
            self.model = ReferenceModel(self.spec).to(dev)
            self.model.load_state_dict(init)
            self.dgl_graph = reference_graph(self.spec, g).to(dev)
            self.params = dict(self.model.named_parameters())
            self._forward = lambda training: self._dgl_forward(training)
        else:
            self.params = make_params(init, dev)
            s, d, w = aggregation_edges(self.spec, g.src, g.dst, g.num_nodes)
            agg = make_aggregator(s, d, w, g.num_nodes, g.num_nodes, self.kernel_name(), dev)
            self._forward = lambda training: forward_full(self.spec, self.params, self.x, agg, training)
        self.optimizer = make_optimizer(self.params, self.cfg.lr, self.cfg.weight_decay)

    def _dgl_forward(self, training: bool) -> Tensor:
        self.model.train(training)
        return self.model(self.dgl_graph, self.x)

    def train_epoch(self, epoch: int) -> float:
        return float(self.data_parallel_step(
            lambda: local_loss(self._forward(True), self.label, self.masks[0], self.n_train)))

    def evaluate(self) -> dict[str, float]:
        with torch.no_grad():
            return global_accuracy(self.comm, self._forward(False), self.label, self.masks)

    def worker_stats(self) -> dict:
        return {"local_vertices": self.graph.num_nodes, "local_edges": self.graph.num_edges, "impl": self.impl}
