"""Liveness of every local rank: each worker beats, the launcher kills and names a rank that stops.

    beat = start_beating(folder, rank)        # in the worker, first thing: a daemon thread
    silent = silent_ranks(folder, started, limit_s)   # in the launcher's reaper: [(rank, seconds), ...]

Each worker writes its pid into ``<folder>/rank-<global rank>`` and touches it every ``BEAT_S`` seconds
from a daemon thread. The
thread runs whatever the main thread does while it releases the GIL (setup, partitioning, cache
building, a collective that waits, training), so long steps are never mistaken for a hang; it stops when
the whole process stops (SIGSTOP, a debugger, a deadlock that holds the GIL). The launcher's reaper checks
the files of its host's ranks: one silent for ``limit_s`` (``--timeout``) ends the run, every local worker
is killed, and the error names that rank, its host and how long it was silent. A rank that has not beaten
yet (still importing) is judged from the launch, with ``STARTUP_GRACE_S`` more.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

BEAT_S = 2.0
STARTUP_GRACE_S = 30.0  # interpreter start and imports before the first beat (a loaded host is slow)
ENV = "GRAPHPAR_HEARTBEAT_DIR"


def _file(folder: Path, rank: int) -> Path:
    return Path(folder) / f"rank-{rank}"


def start_beating(folder: str | os.PathLike | None, rank: int) -> threading.Thread | None:
    """Touch this rank's file now and every BEAT_S seconds from a daemon thread (None: no folder given)."""
    if not folder:
        return None
    path = _file(Path(folder), rank)

    def beat() -> None:
        while True:
            try:
                path.touch()
            except OSError:  # the launcher removed the folder: the run is over
                return
            time.sleep(BEAT_S)

    path.write_text(str(os.getpid()))  # which process is which rank, for a person (or a test) looking
    thread = threading.Thread(target=beat, name="graphpar-heartbeat", daemon=True)
    thread.start()
    return thread


def silent_ranks(folder: Path, ranks: list[int], started: float, limit_s: float,
                 now: float | None = None) -> list[tuple[int, float]]:
    """(rank, seconds silent) of each of ``ranks`` whose file is older than ``limit_s`` (or, with no file
    yet, whose launch at wall time ``started`` is older than ``limit_s + STARTUP_GRACE_S``)."""
    now = time.time() if now is None else now
    out = []
    for rank in ranks:
        try:
            last = _file(folder, rank).stat().st_mtime
            allowed = limit_s
        except FileNotFoundError:
            last, allowed = started, limit_s + STARTUP_GRACE_S
        if now - last > allowed:
            out.append((rank, now - last))
    return out
