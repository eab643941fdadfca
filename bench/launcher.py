"""Start P worker processes with torch's elastic launcher (the code path ``torchrun`` uses).

    ranks = launch(cfg)                      # one host, rendezvous on localhost:0 (no port clashes)
    ranks = launch(cfg, nnodes=2, node_rank=0, master_addr="10.0.0.1", master_port=29500)   # per host

A worker that dies ends the run on every host: max_restarts=0, the agent tears the group down and
raises with the failing rank's traceback (workers are wrapped in ``@record``).
"""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from graphpar.strategies import TrainConfig

from .worker import worker_main


class RunFailed(RuntimeError):
    """A worker failed; the message carries its traceback."""


@dataclass
class Cluster:
    """Where the ranks run: torchrun's multi-node flags, passed straight through."""

    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 0
    run_id: str = ""


def _root_cause(err: ChildFailedError) -> str:
    rank, failure = err.get_first_failure()
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", "") + "\n" + message.get("extraInfo", {}).get("py_callstack", "")
    return f"rank {rank} (exit {failure.exitcode}): {message or 'no traceback (killed by a signal?)'}"


def launch(cfg: TrainConfig, cluster: Cluster | None = None, keep_params: bool = False) -> list[dict[str, Any]] | None:
    """Run ``cfg`` on cfg.workers ranks; rank results on the host holding rank 0, else None."""
    cluster = cluster or Cluster()
    if cfg.workers % cluster.nnodes:
        raise ValueError(f"--workers {cfg.workers} is not divisible by --nnodes {cluster.nnodes}")
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo" if cluster.nnodes == 1 else os.environ.get("GLOO_SOCKET_IFNAME", ""))
    if not os.environ["GLOO_SOCKET_IFNAME"]:
        del os.environ["GLOO_SOCKET_IFNAME"]
    os.environ.setdefault("OUTDATED_IGNORE", "1")
    local = cluster.nnodes == 1
    endpoint = f"{'localhost' if local else cluster.master_addr}:{cluster.master_port if not local else 0}"
    config = LaunchConfig(
        min_nodes=cluster.nnodes, max_nodes=cluster.nnodes, nproc_per_node=cfg.workers // cluster.nnodes,
        run_id=cluster.run_id or ("local-" + uuid.uuid4().hex[:8] if local else "graphpar"),
        rdzv_backend="c10d", rdzv_endpoint=endpoint,
        rdzv_configs={"rank": cluster.node_rank, "timeout": int(cfg.timeout_s)} if not local else {"timeout": 60},
        max_restarts=0, monitor_interval=0.2, start_method="spawn",
    )
    try:
        results = elastic_launch(config, worker_main)(cfg.as_dict(), keep_params)
    except ChildFailedError as err:
        raise RunFailed(_root_cause(err)) from None
    for value in results.values():
        if value is not None:
            return value
    return None
