"""Start P worker processes with torch's elastic launcher (the code path ``torchrun`` uses).

    ranks = launch(cfg)                      # one host, rendezvous on localhost:0 (no port clashes)
    ranks = launch(cfg, nnodes=2, node_rank=0, master_addr="10.0.0.1", master_port=29500)   # per host

A worker that dies ends the run on every host: max_restarts=0, the agent tears the group down and
raises with the failing rank's traceback (workers are wrapped in ``@record``).
"""
from __future__ import annotations

import fcntl
import logging
import os
import socket
import struct
import uuid
from dataclasses import dataclass
from typing import Any

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.elastic.multiprocessing.errors import _EMPTY_ERROR_DATA
from torch.distributed.elastic.rendezvous import RendezvousError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from graphpar.strategies import TrainConfig

from .worker import PEER_DIED, worker_main


# The agent logs a SIGTERM warning for every clean shutdown; real failures still surface as RunFailed.
logging.getLogger("torch.distributed.elastic.multiprocessing.api").setLevel(logging.ERROR)


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
    def secondary(f) -> bool:  # a rank that failed only because a peer died first
        text = str(f.message)
        return any(m in text for m in PEER_DIED)

    rank, failure = min(err.failures.items(), key=lambda kv: (secondary(kv[1]), kv[1].timestamp, kv[0]))
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", "") + "\n" + message.get("extraInfo", {}).get("py_callstack", "")
    if failure.error_file_data == _EMPTY_ERROR_DATA or not message:  # died without raising
        how = f"killed by {failure.signal_name()}" if failure.exitcode < 0 else "exited without raising"
        message = f"no traceback: the process {how} (os._exit, out of memory, or a signal)"
    return f"rank {rank} (exit {failure.exitcode}): {message}"


def _is_local_address(host: str) -> bool:
    """True when ``host`` is an address of this machine (network namespace): binding to it succeeds."""
    try:
        addr = socket.gethostbyname(host)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
        return True
    except OSError:
        return False


def _route_address(master_addr: str, master_port: int) -> str | None:
    """This host's address on the route to the master (what the other hosts can reach us by)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((socket.gethostbyname(master_addr), master_port or 29500))
            return s.getsockname()[0]
    except OSError:
        return None


def _interface_of(addr: str | None) -> str | None:
    """Name of this host's network interface holding IPv4 ``addr`` (SIOCGIFADDR), or None."""
    if not addr:
        return None
    for _, name in socket.if_nameindex():
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
            if socket.inet_ntoa(packed[20:24]) == addr:
                return name
        except OSError:
            continue
    return None


def _multinode_settings(cluster: Cluster) -> dict[str, Any]:
    """Rendezvous settings of one host of a multi-host run.

    The c10d store is hosted by node rank 0 on the host that owns ``master_addr`` (tested by binding to
    it; torch's hostname heuristic says "not me" when the master address is not the hostname's).
    ``local_addr`` (env GRAPHPAR_LOCAL_ADDR, else this host's address on the route to the master) is
    what the rank-0 host publishes as the process group's MASTER_ADDR; torch's default, the FQDN, can
    resolve to an interface the other hosts cannot reach.
    """
    local_addr = os.environ.get("GRAPHPAR_LOCAL_ADDR") or _route_address(cluster.master_addr, cluster.master_port)
    is_host = cluster.node_rank == 0 and _is_local_address(cluster.master_addr)
    return {"is_host": is_host, "local_addr": local_addr}


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
    multi = {} if local else _multinode_settings(cluster)
    if not local and os.environ.get("GLOO_SOCKET_IFNAME", "lo") == "lo":  # loopback reaches no other host
        iface = _interface_of(multi["local_addr"])
        if iface:
            os.environ["GLOO_SOCKET_IFNAME"] = iface
        else:
            os.environ.pop("GLOO_SOCKET_IFNAME", None)  # gloo falls back to the hostname's address
    endpoint = f"{'localhost' if local else cluster.master_addr}:{cluster.master_port if not local else 0}"
    config = LaunchConfig(
        min_nodes=cluster.nnodes, max_nodes=cluster.nnodes, nproc_per_node=cfg.workers // cluster.nnodes,
        run_id=cluster.run_id or ("local-" + uuid.uuid4().hex[:8] if local else "graphpar"),
        rdzv_backend="c10d", rdzv_endpoint=endpoint,
        rdzv_configs={"rank": cluster.node_rank, "timeout": int(cfg.timeout_s), "is_host": multi["is_host"]}
        if not local else {"timeout": 60},
        local_addr=multi.get("local_addr"),
        max_restarts=0, monitor_interval=0.2, start_method="spawn",
    )
    try:
        results = elastic_launch(config, worker_main)(cfg.as_dict(), keep_params)
    except ChildFailedError as err:
        raise RunFailed(_root_cause(err)) from None
    except RendezvousError as err:  # another host's agent ended (its rank failed) or the master is unreachable
        raise RunFailed(f"lost the rendezvous with the other hosts at {endpoint} ({type(err).__name__}: {err}); "
                        "a rank on another host failed (see that host's output) or the master is unreachable"
                        ) from None
    for value in results.values():
        if value is not None:
            return value
    return None
