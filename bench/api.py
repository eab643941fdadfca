"""The run API every caller above it shares (CLI, sweep, regress, parity): validate one configuration
before any process starts, then launch it and build its record.

    summary = prepare(cfg)                      # UsageError / ConfigError / DatasetError: one line, exit 2
    record = run_one(cfg, summary, Path("results/runs.jsonl"))
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
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


def _try_creating(path: Path, folder: bool) -> None:
    """Make the missing folders of ``path`` and a file of a random name beginning with ``path``'s own name
    (inside it for a folder, beside it for a file: an existing file is opened for appending instead), then
    remove what was made: an OSError says the output cannot be created, and nothing is left behind. The
    probe never has the output's name, so a run appending to it meanwhile never loses a record to it."""
    top = path if folder else path.parent
    missing = []
    while not top.exists() and top != top.parent:
        missing.append(top)
        top = top.parent
    made: list[Path] = []
    try:
        for d in reversed(missing):
            try:
                d.mkdir()
            except FileExistsError:  # made meanwhile by another run: not ours to remove
                continue
            made.append(d)
        if not folder and path.exists():  # O_NONBLOCK: a FIFO nobody reads is refused (ENXIO), not waited on
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK))
        else:
            fd, probe = tempfile.mkstemp(prefix=".graphpar-probe-" if folder else f".{path.name}.", suffix=".probe",
                                         dir=path if folder else path.parent)
            os.close(fd)
            made.append(Path(probe))
    finally:
        for m in reversed(made):
            with contextlib.suppress(OSError):  # a folder another run has put a file in meanwhile stays
                m.rmdir() if m.is_dir() and not m.is_symlink() else m.unlink()


def _refusal(flag: str, path: Path, e: OSError, probe_dir: Path, what: str) -> UsageError:
    """One line for an output that could not be tried: the cause, and the folder it failed at (not a probe)."""
    at = Path(e.filename) if e.filename else None
    where = f" at {at}" if at is not None and at != path and at.parent != probe_dir else ""
    return UsageError(f"{flag} {path} cannot be written ({e.strerror or e}{where}); pass a writable {what}")


def check_out(out: Path | None, flag: str = "--out") -> None:
    """An output file that cannot be created or appended to fails now, before any work: its missing folders
    and a file beside it are made for real, then removed (nothing is left)."""
    if out is None:
        return
    try:
        if out.is_dir():
            raise UsageError(f"{flag} {out} is a directory; pass a file path such as {out / 'runs.jsonl'}")
        parent = out.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if out.exists():
            ok = os.access(out, os.W_OK)
        else:
            ok = parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
        if not ok:
            raise UsageError(f"{flag} {out} is not writable ({parent} is not a writable folder); pass a writable path")
        _try_creating(out, folder=False)  # permission bits can lie (root, read-only mounts, /proc): try it
    except OSError as e:
        raise _refusal(flag, out, e, out.parent, "path") from None


def check_out_dir(path: Path, flag: str = "--out-dir") -> None:
    """A folder output goes into: one that exists or can be made, and takes a file (tried, then removed)."""
    try:
        if path.exists() and not path.is_dir():
            raise UsageError(f"{flag} {path} is a file; pass a folder")
        parent = path
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"{flag} {path}: {parent} is not a writable folder; pass a writable folder")
        _try_creating(path, folder=True)
    except OSError as e:
        raise _refusal(flag, path, e, path, "folder") from None


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
