"""A fixed reference workload timed right after every epoch in the same rank: the CI gate's yardstick.

    probe = Probe(graph, width=16); cpu_s = probe()     # thread CPU seconds of one probe

CPU seconds of memory-bound work grow with what else the machine runs (cache refills after preemption,
shared caches): the same rank's compute moved 1.6x between two runs under load. A yardstick measured
seconds apart in the same process, under the same load, with the same kind of work on the same graph
moves with it, so ``compute CPU / probe CPU`` is a number load and machine speed barely move. The probe
is one GCN layer's forward on the whole graph (features @ W, then the normalised SpMM with the
reference's kernel), whatever the strategy, so a strategy that switches to a slower kernel or does more
work still shows. Enabled by ``GRAPHPAR_PROBE=1`` (``make bench-ci`` sets it); off, nothing is run.
"""
from __future__ import annotations

import os
import time

import torch

from graphpar.datasets.graph import GraphData
from graphpar.strategies.kernels import add_self_loops, default_backend, gcn_weights, make_aggregator

ENV = "GRAPHPAR_PROBE"


class Probe:
    """One GCN layer forward over the whole graph with the reference's kernel, timed in thread CPU."""

    def __init__(self, graph: GraphData, width: int) -> None:
        n = graph.num_nodes
        src, dst = add_self_loops(graph.src, graph.dst, n)
        self.aggregate = make_aggregator(src, dst, gcn_weights(src, dst, n), n, n, backend=default_backend())
        self.features = graph.feat
        self.weight = torch.randn(graph.num_features, width, generator=torch.Generator().manual_seed(0))

    def __call__(self) -> float:
        start = time.thread_time()
        with torch.no_grad():
            self.aggregate(self.features @ self.weight)
        return time.thread_time() - start


def probe_for(graph: GraphData, width: int) -> Probe | None:
    """A probe when ``GRAPHPAR_PROBE`` is set and the rank holds the whole graph (not one part), else None."""
    return Probe(graph, width) if os.environ.get(ENV) and isinstance(graph, GraphData) else None
