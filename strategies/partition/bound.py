"""Bounded staleness for ``partition --stale K``: a layer's historical halo is reused only while it is close.

    graphpar run --strategy partition --stale 4 --dataset cora --workers 2            # bound on (default)
    graphpar run --strategy partition --stale 4 --stale-bound 0 --dataset cora --workers 2  # fixed K

At an epoch where a layer would read history, every owner measures how far the rows it sends have moved
since it last sent them (``staleness.relative_drift`` over its send rows: the change the receivers' copies
carry, relative to the rows' norm; the same measure as the record's ``max_drift``); one ``all_gather`` of a
scalar per rank (tag ``stale/drift``, counted) gives every rank the largest. Above the bound, the layer
refreshes now (rows and gradients: ``forced_refreshes``); otherwise it reuses history until K epochs have
passed, the cap. Rows that cannot change (the input features, which need no gradient: drift exactly 0)
are never re-sent: reusing them is exact (Sancus skips a broadcast while its staleness stays under a bound).
"""
from __future__ import annotations

from torch import Tensor

from ..comm import Communicator
from ..staleness import StaleMonitor, max_over_ranks, relative_drift


class DriftBound:
    """The refresh rule of one run's stale halos: the bound, the cap K and the monitor it counts into."""

    def __init__(self, bound: float, max_age: int, monitor: StaleMonitor) -> None:
        self.bound, self.max_age, self.monitor = float(bound), int(max_age), monitor

    def refresh(self, comm: Communicator, sent: Tensor, last: Tensor, age: int, needs_grad: bool) -> bool:
        """Whether a layer whose history is ``age`` epochs old refreshes now; ``sent``/``last``: this rank's
        send rows now and as last sent. Every rank calls it for the same layers (one collective)."""
        local = relative_drift(sent, last) if sent.numel() else 0.0
        drift = max_over_ranks(comm, local)
        if drift > self.bound and age < self.max_age:
            self.monitor.count(forced_refreshes=1)
            return True
        return age >= self.max_age and (drift > 0.0 or needs_grad)
