"""The one communication seam: every collective and point-to-point a strategy does goes through here.

    comm = Communicator.from_env(); y = comm.all_to_all(x, send_rows, recv_rows, tag="layer1/halo/fwd")

It counts bytes sent and received per tag (``layer2/halo/fwd``...), times each call, and waits with a
timeout so a hung peer fails the run with a message. Byte counts are exact and machine-independent:
they are the ground truth the strategies' volume formulas are tested against. Conventions:
- all_to_all / send / recv: bytes that leave (enter) this rank; rows a rank keeps are not counted.
- all_reduce / all_gather / broadcast: the payload, i.e. the tensor's bytes on this rank, once per call
  (the wire volume depends on the algorithm; the projection applies each collective's cost model).
A strategy never imports torch.distributed itself.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from . import tags
from .phases import phase

DEFAULT_TIMEOUT_S = 300.0
COUNTERS = ("calls", "sent_bytes", "recv_bytes", "seconds", "blocked_seconds")  # per-tag counters of TagStats


@dataclass
class TagStats:
    """Counters of one tag on one rank."""

    op: str
    calls: int = 0
    sent_bytes: int = 0
    recv_bytes: int = 0
    seconds: float = 0.0  # issue to completion, per call (async calls may overlap each other and compute)
    blocked_seconds: float = 0.0  # time the caller actually waited inside the communicator

    def as_dict(self) -> dict[str, Any]:
        return {"op": self.op, "calls": self.calls, "sent_bytes": self.sent_bytes,
                "recv_bytes": self.recv_bytes, "seconds": self.seconds, "blocked_seconds": self.blocked_seconds}


class CommTimeout(RuntimeError):
    """A collective did not finish within the communicator's timeout."""


class PendingOp:
    """An asynchronous operation: ``wait()`` returns its result and books its time under its tag."""

    def __init__(self, comm: "Communicator", tag: str, work, result: Tensor | None, start: float,
                 finish: Callable[[], None] | None = None):
        self._comm, self._tag, self._work, self._result, self._start = comm, tag, work, result, start
        self._finish = finish  # runs once the transfer is done (copy a host staging buffer to the device)
        self._done = work is None

    def wait(self, from_start: bool = False) -> Tensor | None:
        """Block until done; ``from_start``: the caller has been blocked since the call was issued (sync)."""
        if not self._done:
            waiting_since = self._start if from_start else time.perf_counter()
            with phase("comm"):
                self._comm._wait(self._work, self._tag)
                if self._finish is not None:
                    self._finish()
            self._done = True
            now = time.perf_counter()
            st = self._comm._stats[self._tag]
            st.seconds += now - self._start
            st.blocked_seconds += now - waiting_since
        return self._result


@dataclass
class Communicator:
    """Counting wrapper around a process group (or a trivial one-rank world when none is initialised)."""

    group: Any = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    _stats: dict[str, TagStats] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank(self.group) if self.distributed else 0
        self.world_size = dist.get_world_size(self.group) if self.distributed else 1
        self.backend = str(dist.get_backend(self.group)) if self.distributed else "none"
        # A one-rank world has no one to talk to: collectives return their input and take no time; the call is
        # still counted (zero bytes, zero seconds) so a record says what the strategy asked for.
        self.solo = self.world_size == 1

    def _host_staged(self, x: Tensor) -> bool:
        """gloo's send/recv read the tensor's memory from the host: CUDA tensors go through a CPU copy.
        (gloo's collectives take CUDA tensors themselves; NCCL takes them everywhere.)"""
        return self.backend == "gloo" and x.is_cuda

    @classmethod
    def from_env(cls, timeout_s: float = DEFAULT_TIMEOUT_S) -> "Communicator":
        return cls(group=None, timeout_s=timeout_s)

    def subgroup(self, ranks: Sequence[int]) -> "Communicator":
        """A communicator over ``ranks`` (global ids) sharing this one's counters. Every rank must call it."""
        if not self.distributed:
            return self
        group = dist.new_group(list(ranks), timeout=timedelta(seconds=self.timeout_s))
        sub = Communicator(group=group if self.rank_global() in ranks else None, timeout_s=self.timeout_s,
                           _stats=self._stats)
        sub.global_ranks = list(ranks)
        return sub

    def rank_global(self) -> int:
        return dist.get_rank() if self.distributed else 0

    # -- bookkeeping --------------------------------------------------------------------------
    def _book(self, tag: str, op: str, sent: int, recv: int) -> TagStats:
        st = self._stats.get(tag)
        if st is None:
            st = self._stats[tag] = TagStats(op=op)
        st.calls += 1
        st.sent_bytes += int(sent)
        st.recv_bytes += int(recv)
        return st

    def _wait(self, work, tag: str) -> None:
        ok = work.wait(timedelta(seconds=self.timeout_s)) if hasattr(work, "wait") else True
        if ok is False:
            raise CommTimeout(f"rank {self.rank}: '{tag}' did not complete in {self.timeout_s:.0f}s "
                              "(a peer died or diverged)")

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per-tag counters of this rank, as plain dicts."""
        return {tag: st.as_dict() for tag, st in sorted(self._stats.items())}

    def reset(self) -> None:
        self._stats.clear()

    def total_bytes(self, prefix: str = "") -> tuple[int, int]:
        sent = sum(st.sent_bytes for t, st in self._stats.items() if t.startswith(prefix))
        recv = sum(st.recv_bytes for t, st in self._stats.items() if t.startswith(prefix))
        return sent, recv

    # -- collectives ------------------------------------------------------------------------
    def all_to_all(self, x: Tensor, send_rows: Sequence[int], recv_rows: Sequence[int], tag: str,
                   async_op: bool = False, out: Tensor | None = None) -> Tensor | PendingOp:
        """Rows ``x[offsets[r]:offsets[r]+send_rows[r]]`` go to rank r; rows from r arrive in rank order
        (into ``out`` when given: a contiguous [sum(recv_rows), ...] tensor, e.g. rows of a larger buffer)."""
        if self.solo and len(send_rows) == 1 and x.shape[0] == int(send_rows[0]) == int(recv_rows[0]):
            self._book(tag, "all_to_all", 0, 0)
            return PendingOp(self, tag, None, x, 0.0) if async_op else x  # the rows stay: no copy, no call
        send_rows, recv_rows = [int(s) for s in send_rows], [int(r) for r in recv_rows]
        if len(send_rows) != self.world_size or len(recv_rows) != self.world_size or sum(send_rows) != x.shape[0]:
            raise ValueError(f"all_to_all '{tag}': splits {send_rows}/{recv_rows} do not fit {tuple(x.shape)} "
                             f"on {self.world_size} ranks")
        row_bytes = x.element_size() * math.prod(x.shape[1:])
        me = self.rank
        sent = (sum(send_rows) - send_rows[me]) * row_bytes
        recv = (sum(recv_rows) - recv_rows[me]) * row_bytes
        self._book(tag, "all_to_all", sent, recv)
        if out is None:
            out = x.new_empty((sum(recv_rows), *x.shape[1:]))
        elif out.shape != (sum(recv_rows), *x.shape[1:]) or not out.is_contiguous():
            raise ValueError(f"all_to_all '{tag}': out {tuple(out.shape)} does not take {sum(recv_rows)} rows")
        start = time.perf_counter()
        if not self.distributed:
            out.copy_(x)
            return PendingOp(self, tag, None, out, start) if async_op else out
        work = dist.all_to_all_single(out, x.contiguous(), recv_rows, send_rows, group=self.group, async_op=True)
        pending = PendingOp(self, tag, work, out, start)
        return pending if async_op else pending.wait(from_start=True)

    def all_reduce(self, x: Tensor, tag: str, async_op: bool = False) -> Tensor | PendingOp:
        """In-place sum over ranks; counts the payload once."""
        if self.solo:
            self._book(tag, "all_reduce", 0, 0)
            return PendingOp(self, tag, None, x, 0.0) if async_op else x
        nbytes = x.numel() * x.element_size() if self.world_size > 1 else 0
        self._book(tag, "all_reduce", nbytes, nbytes)
        start = time.perf_counter()
        work = dist.all_reduce(x, group=self.group, async_op=True) if self.distributed else None
        pending = PendingOp(self, tag, work, x, start)
        return pending if async_op else pending.wait(from_start=True)

    def all_gather(self, x: Tensor, tag: str) -> list[Tensor]:
        """Every rank's tensor (same shape on all ranks), in rank order."""
        if self.solo:
            self._book(tag, "all_gather", 0, 0)
            return [x]
        nbytes = x.numel() * x.element_size()
        self._book(tag, "all_gather", nbytes * (self.world_size > 1), nbytes * (self.world_size - 1))
        if not self.distributed:
            return [x.clone()]
        out = [torch.empty_like(x) for _ in range(self.world_size)]
        start = time.perf_counter()
        work = dist.all_gather(out, x.contiguous(), group=self.group, async_op=True)
        PendingOp(self, tag, work, None, start).wait(from_start=True)
        return out

    def send(self, x: Tensor, dst: int, tag: str, async_op: bool = False) -> PendingOp | None:
        """Point-to-point send to global rank ``dst``."""
        self._book(tag, "send", x.numel() * x.element_size(), 0)
        start = time.perf_counter()
        payload = x.contiguous().cpu() if self._host_staged(x) else x.contiguous()
        work = dist.isend(payload, dst, group=self.group)
        pending = PendingOp(self, tag, work, None, start)
        pending._payload = payload  # keep the (staged) buffer alive until the send is waited on
        if async_op:
            return pending
        pending.wait(from_start=True)
        return None

    def recv(self, out: Tensor, src: int, tag: str, async_op: bool = False) -> Tensor | PendingOp:
        """Point-to-point receive from global rank ``src`` into ``out``."""
        self._book(tag, "recv", 0, out.numel() * out.element_size())
        start = time.perf_counter()
        if self._host_staged(out):
            buf = torch.empty(out.shape, dtype=out.dtype)
            work = dist.irecv(buf, src, group=self.group)
            pending = PendingOp(self, tag, work, out, start, finish=lambda: out.copy_(buf))
        else:
            work = dist.irecv(out, src, group=self.group)
            pending = PendingOp(self, tag, work, out, start)
        return pending if async_op else pending.wait(from_start=True)

    def barrier(self) -> None:
        """Synchronise (not counted: carries no payload)."""
        if self.distributed and not self.solo:
            if self.backend == "nccl":  # name this rank's GPU (NCCL otherwise guesses rank % device_count)
                dist.barrier(group=self.group, device_ids=[torch.cuda.current_device()])
            else:
                dist.barrier(group=self.group)


class _AllToAllFn(torch.autograd.Function):
    """Differentiable all_to_all: the backward sends gradients back the reverse way (tag + '/bwd')."""

    @staticmethod
    def forward(ctx, x, comm, send_rows, recv_rows, tag):
        ctx.comm, ctx.send_rows, ctx.recv_rows, ctx.tag = comm, send_rows, recv_rows, tag
        return comm.all_to_all(x, send_rows, recv_rows, tag + tags.FWD)

    @staticmethod
    def backward(ctx, grad):
        g = ctx.comm.all_to_all(grad.contiguous(), ctx.recv_rows, ctx.send_rows, ctx.tag + tags.BWD)
        return g, None, None, None, None


def all_to_all_autograd(comm: Communicator, x: Tensor, send_rows: Sequence[int], recv_rows: Sequence[int],
                        tag: str) -> Tensor:
    """``comm.all_to_all`` that autograd can differentiate through (counted under tag/fwd and tag/bwd)."""
    if comm.solo:  # identity on a one-rank world: no autograd node, no copy (the forward call is counted)
        comm._book(tag + "/fwd", "all_to_all", 0, 0)
        return x
    return _AllToAllFn.apply(x, comm, list(send_rows), list(recv_rows), tag)


class _AllReduceSumFn(torch.autograd.Function):
    """Differentiable sum over ranks of per-rank partial values that every rank then uses differently: the
    backward sums the ranks' gradients the same way (tag + '/bwd')."""

    @staticmethod
    def forward(ctx, x, comm, tag):
        ctx.comm, ctx.tag = comm, tag
        return comm.all_reduce(x.clone(), tag + tags.FWD)

    @staticmethod
    def backward(ctx, grad):
        return ctx.comm.all_reduce(grad.contiguous().clone(), ctx.tag + tags.BWD), None, None


def all_reduce_autograd(comm: Communicator, x: Tensor, tag: str) -> Tensor:
    """``comm.all_reduce`` (sum) that autograd can differentiate through (counted under tag/fwd and tag/bwd)."""
    if comm.solo:
        comm._book(tag + tags.FWD, "all_reduce", 0, 0)
        return x
    return _AllReduceSumFn.apply(x, comm, tag)
