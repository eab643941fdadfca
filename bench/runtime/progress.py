"""What a run says while it runs: a tqdm bar on a terminal, plain lines elsewhere (Slurm, CI logs, pipes).

    for epoch in epoch_progress(cfg, rank, epochs):   # training_loop: yields 0..epochs-1
        ...                                           # the body appends each epoch's record to ``epochs``
    run_done(label, record)                           # sweep: one line per finished configuration

Only rank 0 reports, on stderr (stdout keeps the tables). Off a terminal, an epoch line is printed when
``GRAPHPAR_PROGRESS_S`` seconds (default 10) have passed since the last one, plus the last epoch, so a
slow run never looks hung and a fast one prints one line. ``GRAPHPAR_PROGRESS=0`` silences both forms.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterator

from tqdm import tqdm


def _enabled() -> bool:
    return os.environ.get("GRAPHPAR_PROGRESS", "1") != "0"


def _interval_s() -> float:
    try:
        return float(os.environ.get("GRAPHPAR_PROGRESS_S", "10"))
    except ValueError:
        return 10.0


def describe(cfg) -> str:
    return f"{cfg.strategy} P={cfg.workers} {cfg.model} L={cfg.layers} on {cfg.dataset}"


def epoch_progress(cfg, rank: int, epochs: list[dict[str, Any]]) -> Iterator[int]:
    """Yield the epoch numbers; after each, report the epoch the caller appended to ``epochs``."""
    if rank != 0 or not _enabled():
        yield from range(cfg.epochs)
        return
    if sys.stderr.isatty():
        with tqdm(total=cfg.epochs, desc=describe(cfg), unit="epoch", leave=False, file=sys.stderr) as bar:
            for epoch in range(cfg.epochs):
                yield epoch
                if epochs:
                    bar.set_postfix_str(f"loss {epochs[-1]['loss']:.4f}", refresh=False)
                bar.update(1)
        return
    interval, last = _interval_s(), time.monotonic()
    for epoch in range(cfg.epochs):
        yield epoch
        now = time.monotonic()
        if epochs and (now - last >= interval or epoch == cfg.epochs - 1):
            e = epochs[-1]
            print(f"graphpar: {describe(cfg)}: epoch {epoch + 1}/{cfg.epochs} loss {e['loss']:.4f} "
                  f"{e['wall_s'] * 1e3:.1f} ms", file=sys.stderr, flush=True)
            last = now


def run_done(label: str, record: dict[str, Any] | None, error: str | None = None) -> None:
    """One line per finished configuration off a terminal (a terminal has the sweep's tqdm bar)."""
    if sys.stderr.isatty() or not _enabled():
        return
    if error is not None:
        print(f"graphpar: FAILED {label}: {error}", file=sys.stderr, flush=True)
    elif record is not None:
        summary = record.get("summary", {})
        acc = record.get("accuracy", {}).get("test_acc")
        print(f"graphpar: done {label}: epoch {summary.get('epoch_s', float('nan')) * 1e3:.1f} ms"
              + (f", test acc {acc:.3f}" if acc is not None else ""), file=sys.stderr, flush=True)
