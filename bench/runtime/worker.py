"""What each rank runs under the elastic launcher (torchrun's code path): init, train, gather to rank 0.

    (started by graphpar.bench.runtime.launcher.launch; not run by hand)
"""
from __future__ import annotations

import io
import os
import signal
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
    # Ctrl-C reaches the whole process group: the launcher reports it once; a worker just leaves quietly
    signal.signal(signal.SIGINT, lambda signum, _frame: os._exit(128 + signum))
    from graphpar.datasets import load_dataset  # noqa: PLC0415
    from graphpar.strategies import Communicator, TrainConfig  # noqa: PLC0415

    from .loop import train_rank  # noqa: PLC0415

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
        gathered = gather_results(result)
        dist.barrier()
        return gathered
    except RuntimeError as err:
        if any(m in str(err) for m in PEER_DIED):  # let the launcher see the rank that died first
            time.sleep(2.0)
        raise
    finally:
        _destroy_process_group()


def gather_results(result: Any) -> list[Any] | None:
    """Every rank's result on rank 0 (None elsewhere), sent as ``torch.save`` bytes and read back with
    ``weights_only=True``: tensors, numbers, strings and containers only, so a peer cannot send code
    (``gather_object`` would unpickle whatever arrives)."""
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    buffer = io.BytesIO()
    torch.save(result, buffer)
    data = torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)
    world = dist.get_world_size()
    sizes = [torch.zeros(1, dtype=torch.int64, device=device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([data.numel()], dtype=torch.int64, device=device))
    longest = max(int(s) for s in sizes)
    padded = torch.zeros(longest, dtype=torch.uint8, device=device)
    padded[:data.numel()] = data.to(device)
    blobs = [torch.empty(longest, dtype=torch.uint8, device=device) for _ in range(world)]
    dist.all_gather(blobs, padded)
    if dist.get_rank() != 0:
        return None
    return [torch.load(io.BytesIO(blob[:int(size)].cpu().numpy().tobytes()), weights_only=True)
            for blob, size in zip(blobs, sizes)]


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
