"""What this host must hold for a run, checked before any process starts (one line, exit 2, nothing run).

    check_memory(cfg, summary, local_workers)   # UsageError naming the estimate and the memory available
    check_threads_env()                         # GRAPHPAR_THREADS, if set, is a whole number >= 0

Memory: per rank, ``memory.rank_estimates`` (the analytic peak of tensor, partition and pipeline ranks)
or, for a strategy it does not model (single, sampling, plug-ins), a floor: the interpreter and the whole
graph each rank loads (``memory.BASE_BYTES + memory.graph_bytes``). Neither counts the model's state, so
the weights, their gradients and Adam's two moments (16 bytes a parameter: ``model_state_bytes``) are
added. The host's ranks (the largest ``local_workers`` estimates) together are compared with
``hostmem.available_bytes()`` (MemAvailable; ``GRAPHPAR_MEM_AVAILABLE`` overrides it, e.g. ``24G``);
``--ignore-memory-check`` runs anyway. Where the host does not say what is available, nothing is checked.
"""
from __future__ import annotations

import os
from typing import Any

from graphpar.datasets.hostmem import ENV as MEM_ENV
from graphpar.datasets.hostmem import available_bytes, gib

from .errors import UsageError
from .memory import BASE_BYTES, graph_bytes, rank_estimates

THREADS_ENV = "GRAPHPAR_THREADS"
ADAM_COPIES = 4  # weights, gradients, exp_avg, exp_avg_sq: float32 each


def parameter_count(model: str, features: int, hidden: int, classes: int, layers: int) -> int:
    """Weights and biases of the model (sage: a self and a neighbour weight per layer; gat's attention
    vectors are left out: two widths per layer, negligible)."""
    dims = [features] + [hidden] * (layers - 1) + [classes]
    per_weight = 2 if model == "sage" else 1
    return sum(per_weight * dims[i] * dims[i + 1] + dims[i + 1] for i in range(layers))


def model_state_bytes(cfg: dict[str, Any], summary: dict[str, Any]) -> int:
    """Bytes of the model's weights, gradients and Adam moments on one rank (every rank holds them all)."""
    n = parameter_count(cfg.get("model", "gcn"), int(summary["features"]), int(cfg.get("hidden", 16)),
                        int(summary["classes"]), int(cfg.get("layers", 2)))
    return 4 * ADAM_COPIES * n


def host_estimate(cfg: dict[str, Any], summary: dict[str, Any], local_workers: int) -> int | None:
    """Peak bytes of the ranks this host starts (None where the summary lacks the graph's counts)."""
    if not all(k in summary for k in ("nodes", "edges", "features", "classes")):
        return None
    per_rank = rank_estimates(cfg, summary)
    if per_rank is None:  # no model of the strategy: the floor every rank pays
        floor = BASE_BYTES + graph_bytes({k: int(summary[k]) for k in ("nodes", "edges", "features")})
        per_rank = [floor] * max(int(cfg.get("workers", 1)), 1)
    state = model_state_bytes(cfg, summary)
    ranks = sorted(per_rank, reverse=True)[:max(local_workers, 1)]
    return sum(ranks) + state * len(ranks)


def check_memory(cfg: dict[str, Any], summary: dict[str, Any], local_workers: int, ignore: bool = False,
                 available: int | None = None) -> None:
    """Refuse (UsageError) when this host's ranks need more than the memory available now (``available``
    bytes if given, else ``hostmem.available_bytes()``)."""
    if ignore:
        return
    need = host_estimate(cfg, summary, local_workers)
    if need is None:
        return
    try:
        have = available_bytes() if available is None else available
    except ValueError as e:  # a malformed GRAPHPAR_MEM_AVAILABLE
        raise UsageError(str(e)) from None
    if have is None or need <= have:
        return
    ranks = max(local_workers, 1)
    raise UsageError(f"{cfg.get('strategy')} on {cfg.get('dataset')} with --workers {cfg.get('workers')} "
                     f"--hidden {cfg.get('hidden')} --layers {cfg.get('layers')} needs about {gib(need)} on this host "
                     f"({ranks} rank{'s' if ranks > 1 else ''}, about {gib(need / ranks)} each) but {gib(have)} is available "
                     f"({'set by ' + MEM_ENV if os.environ.get(MEM_ENV, '').strip() else 'MemAvailable'}); "
                     "pass a smaller --hidden/--layers/graph, fewer --workers on this host (more --nnodes), "
                     "or --ignore-memory-check to run anyway")


def check_threads_env() -> None:
    """``GRAPHPAR_THREADS`` (threads per rank; 0 or unset: cores / local ranks) is a whole number >= 0."""
    value = os.environ.get(THREADS_ENV)
    if value is None:
        return
    try:
        ok = int(value) >= 0
    except ValueError:
        ok = False
    if not ok:
        raise UsageError(f"{THREADS_ENV}={value!r}: pass a whole number of threads per rank >= 1 (0 or unset: "
                         "cores divided among the host's ranks)")
