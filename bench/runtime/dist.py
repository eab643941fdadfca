"""The process group: which backend, joining and leaving it, and what a lost peer looks like.

    init(device, timeout_s)   # torch.distributed under the launcher's environment (RANK, WORLD_SIZE, ...)
    ...
    destroy()                 # leaves without the gloo teardown deadlock
"""
from __future__ import annotations

import os
import time
from datetime import timedelta

import torch
import torch.distributed as tdist

# A rank failing with one of these only lost a peer; the launcher reports the first rank to exit.
PEER_DIED = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")


def backend(device: str) -> str:
    """NCCL across GPUs; gloo on CPU and when several ranks must share one GPU (NCCL refuses that)."""
    if device != "cuda":
        return "gloo"
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return "nccl" if torch.cuda.device_count() >= local_world else "gloo"


PG_STORE_ENV = "GRAPHPAR_GROUP_STORE"  # a one-host run's process-group store: a file, not a TCP listener


def init(device: str, timeout_s: float, **kwargs) -> None:
    """Join the process group of this run (``kwargs``: rank/world_size where no launcher set them). On one
    host the launcher names a file store (``GRAPHPAR_GROUP_STORE``), so no rank listens on TCP for it."""
    path = os.environ.get(PG_STORE_ENV)
    if path and not kwargs:
        kwargs = {"init_method": f"file://{path}", "rank": int(os.environ["RANK"]),
                  "world_size": int(os.environ["WORLD_SIZE"])}
    tdist.init_process_group(backend(device), timeout=timedelta(seconds=timeout_s), **kwargs)


def peer_died(err: BaseException | str) -> bool:
    """Whether an error only says that another rank went away."""
    return any(m in str(err) for m in PEER_DIED)


def destroy() -> None:
    """Tear the group down without the gloo teardown deadlock.

    A gloo worker thread drops its last reference to a finished collective's tensors just after the
    collective completes, and that needs the GIL; ``destroy_process_group`` joins those threads while
    holding the GIL. Destroying right after a collective therefore hung ranks in ~ProcessGroupGloo
    (seen after gather_object). A short sleep (releases the GIL) lets the threads finish first.
    """
    time.sleep(0.2)
    tdist.destroy_process_group()
