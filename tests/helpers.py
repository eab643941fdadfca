"""Builders the tests share: configs, one thread for in-process references, batched training of several
configurations in one set of local ranks, and training with extra strategy modules loaded."""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import Any, Iterator

import torch

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
