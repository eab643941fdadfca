"""The run API every caller above it shares (CLI, sweep, regress, parity): validate one configuration
before any process starts, then launch it and build its record.

    summary = prepare(cfg)                      # UsageError / ConfigError / DatasetError: one line, exit 2
    record = run_one(cfg, summary, Path("results/runs.jsonl"))
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch

from graphpar.datasets import load_dataset
from graphpar.strategies import get_strategy

from .errors import UsageError
from .hostcheck import check_memory, check_threads_env
from .record import append_record, build_record
from .runtime.launcher import launch

MAX_LOCAL_PROCESSES = 64  # worker processes on one host beyond which a run needs --force
OVERSUBSCRIBE = 4  # a warning past cores x this many processes on one host
MAX_PER_CORE = 8  # an error (unless --force) past cores x this many: a typo, not a measurement


def check_processes(local_workers: int, force: bool = False, warn: bool = True) -> None:
    """P against this host's cores: a warning past cores x OVERSUBSCRIBE; an error, unless ``force``, past
    MAX_LOCAL_PROCESSES or cores x MAX_PER_CORE (each rank is a whole interpreter: memory runs out too)."""
    cores = os.cpu_count() or 1
    if local_workers > MAX_LOCAL_PROCESSES and not force:
        raise UsageError(f"{local_workers} worker processes on this host ({cores} cores) exceeds the limit of "
                         f"{MAX_LOCAL_PROCESSES}; use fewer --workers, more --nnodes, or --force")
    if local_workers > cores * MAX_PER_CORE and not force:
        raise UsageError(f"{local_workers} worker processes on this host exceeds {MAX_PER_CORE} per core ({cores} "
                         f"cores: at most {cores * MAX_PER_CORE}); use fewer --workers, more --nnodes, or --force")
    if warn and local_workers > cores * OVERSUBSCRIBE:
        print(f"graphpar: warning: {local_workers} worker processes on {cores} cores (over {OVERSUBSCRIBE} per core): "
              "timings will mostly measure oversubscription", file=sys.stderr)


def check_out(out: Path | None) -> None:
    """An --out that cannot take a record fails now, not after training (creates nothing)."""
    if out is None:
        return
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; pass a file path such as {out / 'runs.jsonl'}")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if out.exists():
        ok = os.access(out, os.W_OK)
    else:
        ok = parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
    if not ok:
        raise UsageError(f"--out {out} is not writable ({parent} is not a writable folder); pass a writable path")
    try:
        if out.exists():
            with open(out, "ab"):
                pass
        elif parent == out.parent:  # permission bits can lie (root, read-only mounts, /proc): try it
            with open(out, "xb"):
                pass
            out.unlink()
    except OSError as e:
        raise UsageError(f"--out {out} cannot be written ({e.strerror}); pass a writable path") from None


def check_out_dir(path: Path, flag: str = "--out-dir") -> None:
    """A folder output goes into: one that exists, or can be made (nothing is created now)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file; pass a folder")
    parent = path
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: {parent} is not a writable folder; pass a writable folder")


def load_graph(dataset: str):
    """The graph of a dataset name or spec; anything that stops it loading is bad input (one line, exit 2)."""
    try:
        return load_dataset(dataset)
    except ValueError as e:  # DatasetError, and a graph that breaks the conventions (GraphData.validate)
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"dataset {dataset}: {e.strerror or e} ({e.filename}); check the path and its "
                         "permissions") from None


def prepare(cfg, local_workers: int | None = None, force: bool = False,
            ignore_memory: bool = False) -> dict[str, Any]:
    """Validate everything up front (ranges, strategy, dataset, model, P, device, this host's memory unless
    ``ignore_memory``, GRAPHPAR_THREADS); returns the graph summary."""
    cls = get_strategy(cfg.strategy)
    cfg.check()
    check_threads_env()
    local_workers = cfg.workers if local_workers is None else local_workers
    check_processes(local_workers, force, warn=False)
    if cfg.device == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda but no CUDA device is visible; use --device cpu")
    summary = cls.graph_summary(cfg)  # partition --partition-dir: the manifest's, no graph loaded
    if summary is None:
        summary = load_graph(cfg.dataset).summary()
    cls.validate(cfg, summary)
    check_memory(cfg.as_dict(), summary, local_workers, ignore_memory)
    check_processes(local_workers, force)  # the oversubscription warning, once everything else holds
    return summary


def run_one(cfg, summary: dict, out: Path | None, cluster=None) -> dict | None:
    """Launch one configuration and append its record; returns the record (None on non-zero node ranks)."""
    ranks = launch(cfg, cluster)
    if ranks is None:
        return None
    rec = build_record(cfg.as_dict(), summary, ranks)
    if out is not None:
        append_record(rec, out)
    return rec
