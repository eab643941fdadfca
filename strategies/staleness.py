"""What the historical-embedding modes record about their staleness, and when a run counts as diverged.

    graphpar run --strategy partition --stale 4 --dataset amazon-computers --workers 2 --eval-every 1

``StaleMonitor`` counts the rows a stale mode reads from history (``stale_read_share``: stale rows read /
all rows read by the aggregations, over the whole run) and the drift of historical rows (relative change
``|new - old| / |new|`` when a remembered row is finally recomputed, over entries that neither dropout nor
ReLU zeroed: the error the stale reads carried),
and keeps the per-epoch global losses. ``divergence`` decides, from the losses alone, whether the run
diverged: a non-finite loss, or a loss that ends well above its own minimum; ``above_reference`` (used by
``graphpar parity``, which has the reference's curve) also flags a loss that ends well above the reference's.
"""
from __future__ import annotations

import math
from typing import Any

from torch import Tensor

RISE_FACTOR = 1.5  # diverged: the last epochs' mean loss > 1.5 x the minimum before them ...
RISE_MIN = 0.1  # ... and at least 0.1 above it (small losses wobble)
REGAIN = 1 / 3  # against the reference: the run gave back more than a third of the reference's loss decrease


def divergence(losses: list[float]) -> str | None:
    """Why the loss curve counts as diverged, or None. Non-finite loss at any epoch; or the mean of the
    last max(5, n/10) epochs above RISE_FACTOR x (and RISE_MIN above) the minimum of the epochs before."""
    for e, v in enumerate(losses):
        if not math.isfinite(v):
            return f"loss {v} at epoch {e}"
    tail = max(5, len(losses) // 10)
    if len(losses) < 2 * tail:
        return None
    best = min(losses[:-tail])
    last = sum(losses[-tail:]) / tail
    if last > RISE_FACTOR * best and last - best > RISE_MIN:
        return f"loss rose from its minimum {best:.3f} to {last:.3f} (mean of the last {tail} epochs)"
    return None


def above_reference(losses: list[float], reference: list[float]) -> str | None:
    """Why a stale run's loss counts as diverged against its exact reference (same recipe, seed, epochs), or
    None: a non-finite loss, or the mean of the last max(5, n/10) epochs above RISE_FACTOR x the reference's
    mean over the same epochs and above it by more than REGAIN of the reference's own decrease (its first
    loss minus that mean; at least RISE_MIN): twice a small final loss is seed noise (a 4-layer GCN with
    dropout ends between 0.2 and 0.32 on Cora), a run back near its starting loss is not."""
    own = divergence(losses)
    if own is not None and "rose" not in own:
        return own
    tail = max(5, min(len(losses), len(reference)) // 10)
    if min(len(losses), len(reference)) < tail:
        return None
    last, ref = sum(losses[-tail:]) / tail, sum(reference[-tail:]) / tail
    if last > RISE_FACTOR * ref and last - ref > max(RISE_MIN, REGAIN * (reference[0] - ref)):
        return f"loss {last:.3f} above the reference's {ref:.3f} (mean of the last {tail} epochs)"
    return None


class StaleMonitor:
    """Stale reads, historical-row drift and the loss curve of one rank's stale mode."""

    def __init__(self) -> None:
        self.rows_read = 0
        self.stale_rows_read = 0
        self.drifts: list[float] = []
        self.losses: list[float] = []

    def reads(self, stale: int, total: int) -> None:
        self.stale_rows_read += stale
        self.rows_read += total

    def drift(self, new: Tensor, old: Tensor) -> None:
        """Relative change of remembered rows ``old`` once recomputed as ``new``, over the entries non-zero
        in both (rows are post-dropout: a fresh dropout mask alone would otherwise read as drift ~1)."""
        both = (new != 0) & (old != 0)
        scale = float(new[both].norm())
        if scale > 0:
            self.drifts.append(float((new[both] - old[both]).norm()) / scale)

    def loss(self, value: float) -> None:
        self.losses.append(float(value))

    def stats(self) -> dict[str, Any]:
        reason = divergence(self.losses)
        return {"stale_read_share": self.stale_rows_read / self.rows_read if self.rows_read else 0.0,
                "stale_rows_read": self.stale_rows_read, "rows_read": self.rows_read,
                "max_drift": max(self.drifts, default=0.0),
                "mean_drift": sum(self.drifts) / len(self.drifts) if self.drifts else 0.0,
                "diverged": reason is not None, "diverged_reason": reason}


def combine(per_rank: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """All ranks' ``stats()`` as one (a pipeline's first stage reads no history: rank 0 alone says little):
    reads summed, drifts' maximum, diverged if any rank says so. None when no rank has stats."""
    stats = [s for s in per_rank if s]
    if not stats:
        return None
    rows = sum(s["rows_read"] for s in stats)
    stale = sum(s["stale_rows_read"] for s in stats)
    reasons = [s["diverged_reason"] for s in stats if s["diverged"]]
    return {"stale_read_share": stale / rows if rows else 0.0, "stale_rows_read": stale, "rows_read": rows,
            "max_drift": max(s["max_drift"] for s in stats),
            "mean_drift": max(s["mean_drift"] for s in stats),
            "diverged": bool(reasons), "diverged_reason": reasons[0] if reasons else None}


def with_combined(info: dict[str, Any], per_rank: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Rank 0's ``info`` with its ``staleness`` replaced by ``combine`` over every rank's (a record's
    ``info.staleness`` speaks for the whole run: a pipeline's stage 0 reads features, not history).
    ``info`` unchanged when no rank has staleness statistics (exact modes)."""
    stats = combine(per_rank)
    return info if stats is None else {**info, "staleness": stats}
