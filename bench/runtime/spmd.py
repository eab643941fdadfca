"""Run a function on P local ranks with gloo (tests and in-process checks), tracebacks surfaced.

    results = run_spmd(fn, world_size=2, args=(cfg,))   # fn(comm, *args) -> picklable, runs on each rank

Used by tests to exercise strategies across real processes without the launcher's start-up cost.
"""
from __future__ import annotations

import os
import socket
import traceback
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from graphpar.strategies.comm import Communicator

from .dist import destroy
from .wire import pack, unpack


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world_size: int, port: int, fn: Callable, args: tuple, queue, timeout_s: float,
           threads: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo",
                      RANK=str(rank), WORLD_SIZE=str(world_size), OUTDATED_IGNORE="1")
    torch.set_num_threads(threads)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout_s))
        result = fn(Communicator(timeout_s=timeout_s), *args)
        data = pack(result)  # bytes, not shared-memory tensors: the rank may exit before the parent reads
        dist.barrier()
        queue.put((rank, True, data))
    except BaseException:  # noqa: BLE001  (report every failure to the parent)
        queue.put((rank, False, traceback.format_exc()))
        return  # peers may be stuck in a collective: no teardown handshake, the parent reaps us
    if dist.is_initialized():
        destroy()


def run_spmd(fn: Callable, world_size: int, args: tuple = (), timeout_s: float = 120.0) -> list[Any]:
    """fn(comm, *args) on every rank; returns results in rank order or raises with the failing tracebacks."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    threads = max(1, (os.cpu_count() or 1) // world_size)
    procs = [ctx.Process(target=_entry, args=(r, world_size, port, fn, args, queue, timeout_s, threads))
             for r in range(world_size)]
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    errors = []
    try:
        for _ in range(world_size):
            rank, ok, value = queue.get(timeout=timeout_s + 60)
            if ok:
                results[rank] = unpack(value)
            else:
                errors.append(f"rank {rank} failed:\n{value}")
                break
    finally:
        for p in procs:
            p.join(timeout=5 if errors else timeout_s)
            if p.is_alive():
                p.kill()
    if errors or len(results) != world_size:
        raise RuntimeError("\n".join(errors) or f"only {len(results)}/{world_size} ranks reported")
    return [results[r] for r in range(world_size)]
