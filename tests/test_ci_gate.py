"""The CI gate cannot be fooled by load (slow tier; 16 launches, 10 minutes on a 2-core machine already loaded):

- with two busy processes pinned on the cores, unchanged code passes;
- an injected 1.5x slowdown of one strategy's compute (GRAPHPAR_SLOWDOWN=tensor:1.5, a CPU busy-loop)
  fails, with and without the busy processes.

Runs the gate exactly as ``make bench-ci`` does (the launcher, threads=1 per rank), on a smaller set:
one graph, gcn, single + tensor + partition at P=2, 2 interleaved rounds.
"""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager

import pytest

from graphpar.bench.harness import regress

SPEC = {"strategies": ["tensor", "partition"], "workers": 2, "rounds": 2, "threads": 1,
        "margin": regress.DEFAULT_MARGIN, "margins": {}, "models": ["gcn"],
        "datasets": ["rmat:nodes=20000,edges=200000,feat=64,classes=8,seed=1"],
        "fixed": {"layers": 2, "hidden": 16, "dropout": 0.0, "epochs": 20, "warmup_epochs": 3, "seed": 0}}


@contextmanager
def busy_cores(n: int = 2):
    """``n`` processes spinning in Python, process i pinned on core i (mod the cores we may use)."""
    cores = sorted(os.sched_getaffinity(0))
    procs = [subprocess.Popen([sys.executable, "-c", "while 1: pass"],
                              preexec_fn=lambda i=i: os.sched_setaffinity(0, {cores[i % len(cores)]}))
             for i in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _gate(baseline: dict) -> tuple[list, bool]:
    records, _ = regress.run_ci(SPEC)
    return regress.compare(baseline, regress.measure(records), SPEC["margin"])


@pytest.mark.slow
def test_gate_passes_under_load_and_catches_a_slowdown(monkeypatch):
    import torch

    threads = torch.get_num_threads()
    monkeypatch.setenv("GRAPHPAR_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("GRAPHPAR_SLOWDOWN", raising=False)
    try:
        records, _ = regress.run_ci(SPEC)
        baseline = {"entries": regress.measure(records)}
        with busy_cores():
            rows, failed = _gate(baseline)
            assert not failed, "unchanged code failed under load:\n" + regress.table(rows)
            monkeypatch.setenv("GRAPHPAR_SLOWDOWN", "tensor:1.5")
            rows, failed = _gate(baseline)
            assert failed, "1.5x slower tensor passed under load:\n" + regress.table(rows)
            assert {r[0].split("@")[0] for r in rows if r[-1] == "FAIL"} == {"tensor"}, regress.table(rows)
        rows, failed = _gate(baseline)
        assert failed, "1.5x slower tensor passed on a quiet machine:\n" + regress.table(rows)
    finally:
        torch.set_num_threads(threads)
