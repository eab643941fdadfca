"""Host addressing for multi-host runs: who hosts the rendezvous, which address and interface to publish.

    settings = multinode_settings("10.77.0.1", 29500, node_rank=0)   # used by graphpar.bench.runtime.launcher
"""
from __future__ import annotations

import fcntl
import os
import socket
import struct
from typing import Any


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


def interface_of(addr: str | None) -> str | None:
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


def multinode_settings(master_addr: str, master_port: int, node_rank: int) -> dict[str, Any]:
    """Rendezvous settings of one host of a multi-host run.

    The c10d store is hosted by node rank 0 on the host that owns ``master_addr`` (tested by binding to
    it; torch's hostname heuristic says "not me" when the master address is not the hostname's).
    ``local_addr`` (env GRAPHPAR_LOCAL_ADDR, else this host's address on the route to the master) is
    what the rank-0 host publishes as the process group's MASTER_ADDR; torch's default, the FQDN, can
    resolve to an interface the other hosts cannot reach.
    """
    local_addr = os.environ.get("GRAPHPAR_LOCAL_ADDR") or _route_address(master_addr, master_port)
    is_host = node_rank == 0 and _is_local_address(master_addr)
    return {"is_host": is_host, "local_addr": local_addr}
