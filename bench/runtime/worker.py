"""What each rank runs under the elastic launcher (torchrun's code path): init, train, gather to rank 0.

    (started by graphpar.bench.runtime.launcher.launch; not run by hand)
"""
from __future__ import annotations

import os
import signal
import time
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from graphpar.datasets import load_dataset
from graphpar.strategies import Communicator, TrainConfig, get_strategy

from . import heartbeat
from .dist import destroy, init, peer_died
from .heartbeat import start_beating
from .loop import current_rss_bytes, train_rank
from .wire import pack, unpack


@record
def worker_main(cfg_dict: dict[str, Any], keep_params: bool = False) -> Any:
    """Entry point of one rank; rank 0 returns every rank's results, the others return None."""
    os.environ.setdefault("OUTDATED_IGNORE", "1")
    # Ctrl-C reaches the whole process group: the launcher reports it once; a worker just leaves quietly
    signal.signal(signal.SIGINT, lambda signum, _frame: os._exit(128 + signum))
    start_beating(os.environ.get(heartbeat.ENV), int(os.environ.get("RANK", "0")))  # the launcher's watchdog
    cfg = TrainConfig.from_dict(cfg_dict)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    # GRAPHPAR_THREADS pins threads per rank (bench-ci: 1, so P=1 and P=2 runs do not differ in OpenMP spinning)
    torch.set_num_threads(int(os.environ.get("GRAPHPAR_THREADS", "0")) or max(1, (os.cpu_count() or 1) // local_world))
    if cfg.device == "cuda":
        torch.cuda.set_device(local_rank % max(torch.cuda.device_count(), 1))
    init(cfg.device, cfg.timeout_s)
    try:
        baseline = current_rss_bytes()  # the interpreter (torch, DGL, the process group): no data loaded yet
        graph = get_strategy(cfg.strategy).rank_graph(cfg, dist.get_rank())  # its own part only, where it can
        if graph is None:
            graph = load_dataset(cfg.dataset)
        result = train_rank(Communicator(timeout_s=cfg.timeout_s), cfg, graph, keep_params=keep_params)
        result["baseline_memory_bytes"] = baseline
        gathered = gather_results(result)
        dist.barrier()
        return gathered
    except RuntimeError as err:
        if peer_died(err):  # let the launcher see the rank that died first
            time.sleep(2.0)
        raise
    finally:
        destroy()


def gather_results(result: Any) -> list[Any] | None:
    """Every rank's result on rank 0 (None elsewhere), sent as ``wire.pack`` bytes (JSON and a tensor file:
    data only, never unpickled nor ``torch.load``-ed, so a peer cannot send code; ``gather_object`` would
    unpickle whatever arrives)."""
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    data = torch.frombuffer(bytearray(pack(result)), dtype=torch.uint8)
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
    return [unpack(blob[:int(size)].cpu().numpy().tobytes()) for blob, size in zip(blobs, sizes)]
