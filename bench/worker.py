"""What each rank runs under the elastic launcher (torchrun's code path): init, train, gather to rank 0.

    (started by graphpar.bench.launcher.launch; not run by hand)
"""
from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record


def _backend(device: str) -> str:
    """NCCL across GPUs; gloo on CPU and when several ranks must share one GPU (NCCL refuses that)."""
    if device != "cuda":
        return "gloo"
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return "nccl" if torch.cuda.device_count() >= local_world else "gloo"


@record
def worker_main(cfg_dict: dict[str, Any], keep_params: bool = False) -> Any:
    """Entry point of one rank; rank 0 returns every rank's results, the others return None."""
    os.environ.setdefault("OUTDATED_IGNORE", "1")
    from graphpar.datasets import load_dataset  # noqa: PLC0415
    from graphpar.strategies import Communicator, TrainConfig  # noqa: PLC0415

    from .training_loop import train_rank  # noqa: PLC0415

    cfg = TrainConfig.from_dict(cfg_dict)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    # GRAPHPAR_THREADS pins threads per rank (bench-ci: 1, so P=1 and P=2 runs do not differ in OpenMP spinning)
    torch.set_num_threads(int(os.environ.get("GRAPHPAR_THREADS", "0")) or max(1, (os.cpu_count() or 1) // local_world))
    if cfg.device == "cuda":
        torch.cuda.set_device(local_rank % max(torch.cuda.device_count(), 1))
    dist.init_process_group(_backend(cfg.device), timeout=timedelta(seconds=cfg.timeout_s))
    try:
        graph = load_dataset(cfg.dataset)
        result = train_rank(Communicator(timeout_s=cfg.timeout_s), cfg, graph, keep_params=keep_params)
        gathered = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
        dist.gather_object(result, gathered, dst=0)
        dist.barrier()
        return gathered if dist.get_rank() == 0 else None
    except RuntimeError as err:
        if any(m in str(err) for m in PEER_DIED):  # let the launcher see the rank that died first
            time.sleep(2.0)
        raise
    finally:
        _destroy_process_group()


# A rank failing with one of these only lost a peer; the launcher reports the first rank to exit.
PEER_DIED = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")


def _destroy_process_group() -> None:
    """Tear the group down without the gloo teardown deadlock.

    A gloo worker thread drops its last reference to a finished collective's tensors just after the
    collective completes, and that needs the GIL; ``destroy_process_group`` joins those threads while
    holding the GIL. Destroying right after a collective therefore hung ranks in ~ProcessGroupGloo
    (seen after gather_object). A short sleep (releases the GIL) lets the threads finish first.
    """
    time.sleep(0.2)
    dist.destroy_process_group()
