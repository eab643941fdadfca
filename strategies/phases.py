"""Always-on per-phase wall and CPU time of one rank's training epoch.

    pytest tests/test_metrics.py -k phase

Phases: ``aggregation`` (SpMM, ``kernels``), ``layout`` (tensor layout packing/unpacking,
``tensor_layout``), ``comm`` (waiting inside the communicator), ``optimizer`` (the optimiser step,
``training``) and ``dense`` (everything else of the epoch: linear layers, activations, loss, autograd).
The end-of-epoch barrier wait (``idle``) is timed by the training loop, outside the epoch.

The timer keeps a stack: entering a phase charges the time since the last switch to the phase on top,
so nested phases never count twice and the phases of an epoch sum to its busy time exactly. Each switch
reads ``time.perf_counter`` and ``time.thread_time`` (CPU seconds of this thread: what the rank's
code costs, whatever else the machine is doing); about 5 us per phase entered, 10-20 per epoch.
Outside ``start()``/``stop()`` (setup, evaluation) and on threads other than the one that started it,
entering a phase does nothing.
"""
from __future__ import annotations

import threading
import time
from typing import Any

PHASES = ("aggregation", "dense", "layout", "comm", "optimizer")
COMPUTE_PHASES = ("aggregation", "dense", "layout", "optimizer")  # CPU of these = compute CPU seconds
_DEFAULT = "dense"


class PhaseTimer:
    """Wall and thread-CPU seconds per phase between ``start()`` and ``stop()`` (one per process)."""

    def __init__(self) -> None:
        self.active = False
        self._thread = 0
        self._stack: list[str] = []
        self._t = self._c = 0.0
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.entered = 0

    def start(self) -> None:
        self.entered = 0
        self.wall = dict.fromkeys(PHASES, 0.0)
        self.cpu = dict.fromkeys(PHASES, 0.0)
        self._stack = [_DEFAULT]
        self._thread = threading.get_ident()
        self.active = True
        self._t, self._c = time.perf_counter(), time.thread_time()

    def _switch(self) -> None:
        t, c = time.perf_counter(), time.thread_time()
        top = self._stack[-1]
        self.wall[top] += t - self._t
        self.cpu[top] += c - self._c
        self._t, self._c = t, c

    def push(self, name: str) -> bool:
        """Enter ``name``; False (and nothing happens) when the timer is off or on another thread."""
        if not self.active or threading.get_ident() != self._thread:
            return False
        self._switch()
        self._stack.append(name)
        self.entered += 1
        return True

    def pop(self) -> None:
        if self.active and len(self._stack) > 1:
            self._switch()
            self._stack.pop()

    def compute_cpu_s(self) -> float:
        """CPU seconds of the compute phases so far in this epoch."""
        if self.active:
            self._switch()
        return sum(self.cpu[p] for p in COMPUTE_PHASES)

    def stop(self) -> dict[str, Any]:
        """End the epoch: {"wall_s": {phase: s}, "cpu_s": {phase: s}, "entered": phases entered}."""
        if self.active:
            self._switch()
        self.active = False
        return {"wall_s": dict(self.wall), "cpu_s": dict(self.cpu), "entered": self.entered}


TIMER = PhaseTimer()


class phase:
    """Context manager: the enclosed code is charged to ``name``."""

    __slots__ = ("name", "pushed")

    def __init__(self, name: str) -> None:
        self.name = name
        self.pushed = False

    def __enter__(self) -> "phase":
        self.pushed = TIMER.push(self.name)
        return self

    def __exit__(self, *exc) -> None:
        if self.pushed:
            TIMER.pop()


def time_backward(out, name: str):
    """Charge the backward of the autograd node that produced ``out`` to ``name`` (for ops whose backward
    we do not write ourselves, e.g. DGL's message passing). Returns ``out``."""
    fn = getattr(out, "grad_fn", None)
    if fn is None or not TIMER.active:
        return out
    pushed = [False]

    def pre(grad_outputs):
        pushed[0] = TIMER.push(name)

    def post(grad_inputs, grad_outputs):
        if pushed[0]:
            TIMER.pop()
            pushed[0] = False

    fn.register_prehook(pre)
    fn.register_hook(post)
    return out


def burn_cpu(seconds: float) -> None:
    """Busy-loop until this thread has used ``seconds`` more CPU (GRAPHPAR_SLOWDOWN: slower code, not a sleep)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
