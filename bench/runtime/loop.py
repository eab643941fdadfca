"""The per-rank training loop shared by the launcher's workers, the checks and the tests.

    result = train_rank(comm, cfg, graph)   # on every rank; rank 0's result carries the gathered stats

Times each epoch barrier to barrier, splits it into communication (the communicator's timed calls)
and compute (the rest), and snapshots the per-tag byte counters per epoch.
"""
from __future__ import annotations

import os
import resource
import time
from typing import Any

import torch

from graphpar.strategies import Communicator, TrainConfig, dropmask, get_strategy
from graphpar.strategies.base import DEFAULT_TIMEOUT_S
from graphpar.strategies.comm import COUNTERS
from graphpar.strategies.libc import malloc_trim
from graphpar.strategies.phases import TIMER, burn_cpu

from .probe import probe_for
from .progress import epoch_progress
from .spmd import run_spmd


def peak_memory_bytes(device: torch.device) -> int:
    """Peak resident memory of this process (CPU) or peak allocated CUDA memory."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def current_rss_bytes() -> int:
    """Resident memory of this process now (VmRSS; the peak so far where /proc is missing): a rank's
    interpreter baseline, read after its imports and before it loads any data."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def release_free_memory() -> None:
    """Hand the heap's free pages back to the OS (glibc ``malloc_trim``): a setup's freed transients in
    allocations below mmap's threshold otherwise stay in the process's RSS, counted as if still in use."""
    malloc_trim()  # not glibc: nothing to trim


def _inject_fault(rank: int, epoch: int) -> None:
    """Test hook: GRAPHPAR_FAULT=RANK:EPOCH:kill|raise makes that rank die there (proves fail-fast)."""
    spec = os.environ.get("GRAPHPAR_FAULT")
    if not spec:
        return
    f_rank, f_epoch, mode = spec.split(":")
    if int(f_rank) == rank and int(f_epoch) == epoch:
        if mode == "kill":
            os._exit(17)
        raise RuntimeError(f"injected fault on rank {rank} at epoch {epoch}")


def _slowdown(strategy: str) -> float:
    """Test hook: GRAPHPAR_SLOWDOWN=FACTOR or STRATEGY:FACTOR makes each epoch's compute FACTOR times as
    costly: the rank busy-loops (FACTOR-1) x the CPU seconds its compute phases used (slower code, which
    costs CPU on a busy machine too, not a sleep), so the CI regression gate can be shown to catch it."""
    spec = os.environ.get("GRAPHPAR_SLOWDOWN")
    if not spec:
        return 1.0
    name, _, factor = spec.rpartition(":")
    return float(factor) if name in ("", strategy) else 1.0


def _delta(after: dict, before: dict) -> dict:
    out = {}
    for tag, st in after.items():
        b = before.get(tag, dict.fromkeys(COUNTERS, 0))
        if st["calls"] != b["calls"]:
            out[tag] = {"op": st["op"], **{k: st[k] - b[k] for k in COUNTERS}}
    return out


def train_rank(comm: Communicator, cfg: TrainConfig, graph, keep_params: bool = False) -> dict[str, Any]:
    """Set up the strategy, train cfg.epochs epochs, evaluate; return this rank's measurements."""
    device = torch.device(cfg.device if cfg.device != "cuda" else f"cuda:{torch.cuda.current_device()}")
    torch.manual_seed(cfg.seed)
    strategy = get_strategy(cfg.strategy)(cfg, graph, comm, device)
    t0 = time.perf_counter()
    strategy.setup()
    release_free_memory()
    comm.barrier()
    setup_s = time.perf_counter() - t0
    setup_peak = peak_memory_bytes(device)  # the rank's data (graph or part, views, CSR) before any activation
    setup_comm = comm.stats()
    epochs, accuracy_curve = [], []
    slowdown = _slowdown(cfg.strategy)
    probe = probe_for(graph, cfg.hidden)  # CI gate's yardstick, after each epoch (GRAPHPAR_PROBE=1)
    for epoch in epoch_progress(cfg, comm.rank_global(), epochs):  # tqdm on a terminal, a line every 10 s elsewhere
        before = comm.stats()
        comm.barrier()
        start, start_cpu = time.perf_counter(), time.process_time()
        TIMER.start()
        _inject_fault(comm.rank_global(), epoch)
        dropmask.begin_epoch(cfg.seed, epoch, graph.num_nodes)  # keyed dropout masks: this epoch's key
        loss = strategy.train_epoch(epoch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if slowdown > 1.0:
            burn_cpu((slowdown - 1.0) * TIMER.compute_cpu_s())
        phases = TIMER.stop()
        busy = time.perf_counter() - start
        process_cpu = time.process_time() - start_cpu
        comm.barrier()
        wall = time.perf_counter() - start
        moved = _delta(comm.stats(), before)
        comm_s = sum(st["blocked_seconds"] for st in moved.values())  # exposed (not overlapped) comm
        epochs.append({"epoch": epoch, "loss": loss, "wall_s": wall, "comm_s": comm_s,
                       "compute_s": max(wall - comm_s, 0.0), "idle_s": max(wall - busy, 0.0),
                       "sent_bytes": sum(st["sent_bytes"] for st in moved.values()),
                       "recv_bytes": sum(st["recv_bytes"] for st in moved.values()), "comm": moved,
                       "phases": phases, "process_cpu_s": process_cpu,
                       "peak_memory_bytes": peak_memory_bytes(device)})  # so far: which phase set the peak
        if probe is not None:
            epochs[-1]["probe_cpu_s"] = probe()
        if cfg.eval_every and (epoch + 1) % cfg.eval_every == 0 and epoch + 1 < cfg.epochs:
            accuracy_curve.append({"epoch": epoch, **strategy.evaluate()})
    before = comm.stats()
    final = strategy.evaluate()
    accuracy_curve.append({"epoch": cfg.epochs - 1, **final})
    result = {
        "rank": comm.rank_global(), "setup_s": setup_s, "setup_comm": setup_comm,
        "eval_comm": _delta(comm.stats(), before), "epochs": epochs, "accuracy": final,
        "accuracy_curve": accuracy_curve, "peak_memory_bytes": peak_memory_bytes(device),
        "setup_peak_memory_bytes": setup_peak,
        **strategy.worker_stats(),
    }
    if comm.rank_global() == 0:
        result["info"] = strategy.info()
    if keep_params:
        result["params"] = strategy.full_parameters() if comm.rank_global() == 0 else None
    return result


def _spmd_train(comm: Communicator, cfg_dict: dict, graph, keep_params: bool) -> dict[str, Any]:
    return train_rank(comm, TrainConfig.from_dict(cfg_dict), graph, keep_params)


def train_local(cfg: TrainConfig, graph, keep_params: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[dict[str, Any]]:
    """Train on cfg.workers local processes (gloo) without the launcher; per-rank results in rank order."""
    if cfg.workers == 1:
        return [train_rank(Communicator(), cfg, graph, keep_params)]
    return run_spmd(_spmd_train, cfg.workers, (cfg.as_dict(), graph, keep_params), timeout_s=timeout_s)
