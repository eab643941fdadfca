"""Builders the tests share: configs, one thread for in-process references, batched training of several
configurations in one set of local ranks, training with extra strategy modules loaded, and synthetic run
records for the harness tests (``fake_record``, built through record.build_record, so the schema is real)."""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import Any, Iterator

import torch

from graphpar.bench.record import build_record
from graphpar.bench.runtime.loop import train_rank
from graphpar.bench.runtime.spmd import run_spmd
from graphpar.strategies import Communicator, TrainConfig


def config(strategy: str, dataset: str = "cora", workers: int = 2, **kw: Any) -> TrainConfig:
    """A short, deterministic TrainConfig (dropout off, 5 epochs) unless ``kw`` says otherwise."""
    base = {"epochs": 5, "dropout": 0.0, "hidden": 16, "layers": 2}
    return TrainConfig(strategy=strategy, dataset=dataset, workers=workers, **{**base, **kw})


def train_rank_with(comm: Communicator, modules: list[str], cfg_dict: dict, graph, keep_params: bool = True) -> dict:
    """``train_rank`` in a (spawned) rank after importing ``modules``, so strategies they register exist there."""
    for name in modules:
        importlib.import_module(name)
    return train_rank(comm, TrainConfig.from_dict(cfg_dict), graph, keep_params)


@contextmanager
def one_thread() -> Iterator[None]:
    """In-process reference runs on one thread: on a loaded 2-core machine more threads run ~8x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train_all(comm: Communicator, cfg_dicts: list[dict], graphs: dict) -> list[dict]:
    return [train_rank(comm, TrainConfig.from_dict(c), graphs[c["dataset"]], keep_params=True) for c in cfg_dicts]


def train_batch(cfgs: list[TrainConfig], graphs: list) -> list[list[dict]]:
    """Per configuration, the per-rank results; all configurations share cfgs[0].workers processes."""
    p = cfgs[0].workers
    by_name = {g.name: g for g in graphs}
    per_rank = run_spmd(_train_all, p, ([c.as_dict() for c in cfgs], by_name), timeout_s=120)
    return [[per_rank[r][i] for r in range(p)] for i in range(len(cfgs))]


DATASET = {"name": "toy", "nodes": 1000, "edges": 8000, "features": 16, "classes": 4, "train": 100, "val": 100,
           "test": 100, "hash": "x"}
ENV = {"git_sha": "abc123", "host": "h", "cores": 2, "python": "3.11", "torch": "2", "dgl": "2", "platform": "p",
       "device": "cpu"}


def fake_record(strategy: str, workers: int, compute_s: float = 0.1, tags: dict[str, tuple[str, int, int]] | None = None,
                comm_s: float = 0.0, epochs: int = 4, imbalance: float = 1.0, info: dict | None = None,
                dataset: str = "toy", time_scale: float = 1.0, probe_s: float | None = None,
                **cfg_overrides: Any) -> dict[str, Any]:
    """A record of ``workers`` ranks: rank 0 computes ``compute_s * imbalance``, others ``compute_s``;
    ``tags`` maps tag -> (op, calls per epoch, sent bytes per call); every epoch is identical; ``probe_s``:
    the CI probe's CPU seconds after each epoch (none when None)."""
    tags = tags or {}
    ranks = []
    for r in range(workers):
        c = compute_s * (imbalance if r == 0 else 1.0) * time_scale
        ep = []
        for e in range(epochs):
            comm = {t: {"op": op, "calls": calls, "sent_bytes": calls * nbytes, "recv_bytes": calls * nbytes,
                        "seconds": comm_s / max(len(tags), 1)} for t, (op, calls, nbytes) in tags.items()}
            wall = compute_s * imbalance * time_scale + comm_s
            phases = {"wall_s": {"aggregation": 0.4 * c, "dense": 0.5 * c, "layout": 0.0, "optimizer": 0.1 * c,
                                 "comm": comm_s},
                      "cpu_s": {"aggregation": 0.4 * c, "dense": 0.5 * c, "layout": 0.0, "optimizer": 0.1 * c,
                                "comm": 0.0}}
            ep.append({"epoch": e, "loss": 1.0 / (e + 1), "wall_s": wall, "comm_s": comm_s, "phases": phases,
                       "compute_s": wall - comm_s, "idle_s": wall - comm_s - c,
                       "sent_bytes": sum(v["sent_bytes"] for v in comm.values()),
                       "recv_bytes": sum(v["recv_bytes"] for v in comm.values()), "comm": comm,
                       **({"probe_cpu_s": probe_s} if probe_s is not None else {})})
        ranks.append({"rank": r, "setup_s": 0.0, "setup_comm": {}, "eval_comm": {}, "epochs": ep,
                      "accuracy": {"train_acc": 0.9, "val_acc": 0.8, "test_acc": 0.7},
                      "accuracy_curve": [{"epoch": e, "train_acc": 0.5 + 0.1 * e, "val_acc": 0.5, "test_acc": 0.4 + 0.1 * e}
                                         for e in range(epochs)],
                      "peak_memory_bytes": 1000 + r, "local_vertices": 1000 // workers,
                      "local_edges": 8000 // workers, "info": info or {}})
    cfg = {"strategy": strategy, "dataset": dataset, "workers": workers, "model": "gcn", "layers": 2, "hidden": 16,
           "epochs": epochs, "warmup_epochs": 1, "seed": 0, "device": "cpu", "options": {}, **cfg_overrides}
    return build_record(cfg, {**DATASET, "name": dataset}, ranks, env=ENV)
