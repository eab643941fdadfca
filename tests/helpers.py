"""Builders the tests share: configs, and training on local ranks with extra strategy modules loaded."""
from __future__ import annotations

import importlib
from typing import Any

from graphpar.bench.runtime.loop import train_rank
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
