"""The one stage interface the pipeline schedule (``strategy.py``) drives, whatever a stage holds.

    graphpar check --strategy pipeline --dataset cora --workers 4 --layers 4 --graph-parts 2 --staleness 0

A ``Stage`` is one rank's share of a pipeline stage: layers [b, e) over ``num_rows`` destination rows
(the whole graph for ``chunked.ChunkedStage``, one graph part's owned vertices for ``hybrid.HybridStage``),
cut into K chunks of contiguous rows. The schedule only moves chunk rows between ``peer`` ranks and calls
``forward_chunk`` / ``backward_chunk`` in 1F1B order, ``sync_grads`` + the optimiser step, ``end_epoch``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from torch import Tensor


class Stage(ABC):
    """Layers [b, e) of the model on this rank's rows, run chunk by chunk."""

    b: int
    e: int
    last: bool  # the stage holds the model's last layer (its forward returns the loss)
    num_rows: int  # destination rows (what crosses the cuts, in chunks)
    label: Tensor  # labels and [train, val, test] masks of those rows (scored on the last stage)
    masks: list[Tensor]
    version: int  # optimiser steps so far (weight stashing keys on it)
    stash_stashed: int  # weight copies stashing made (for the record)
    monitor: Any  # a staleness.StaleMonitor while chunks read history, else None

    @abstractmethod
    def peer(self, stage: int) -> int:
        """Global rank of this rank's counterpart in stage ``stage`` (rows cross the cuts between them)."""

    @abstractmethod
    def chunk_rows(self, c: int, k: int) -> int:
        """Rows of chunk c (of k) that this rank receives and sends at the cuts."""

    @abstractmethod
    def forward_chunk(self, c: int, k: int, x_in: Tensor | None, training: bool, stash: bool = False
                      ) -> tuple[Any, Tensor]:
        """Chunk c through layers [b, e) from the rows received (None on the first stage); a context for its
        backward and the rows to send on (the chunk's loss on the last stage, when training)."""

    @abstractmethod
    def backward_chunk(self, ctx: Any, k: int, grad_out: Tensor | None, seed_k: int = 0) -> Tensor | None:
        """Backward of a chunk's forward; weight gradients accumulate in the params' ``.grad``; returns the
        gradient of the received rows (None on the first stage)."""

    @abstractmethod
    def sync_grads(self) -> None:
        """Right before every optimiser step: make the weight gradients whole (a partitioned stage sums them)."""

    def stepped(self) -> None:
        """Right after every optimiser step."""
        self.version += 1

    @abstractmethod
    def end_epoch(self) -> None:
        """Epoch barrier (late gradient contributions become next epoch's history)."""

    def stats(self) -> dict[str, Any]:
        """Per-rank facts for the record."""
        return {}

    def info(self) -> dict[str, Any]:
        """Run-level facts for the record."""
        return {}
