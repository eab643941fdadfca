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

import torch
from torch import Tensor

from . import tags

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


DECISIONS = ("forced_refreshes", "refreshed_layer_epochs", "stale_layer_epochs")  # collective: the same on every rank
BYTES = ("halo_sent_bytes", "exact_halo_bytes", "stale_saved_bytes")  # this rank's: summed over ranks
COUNTS = DECISIONS + BYTES  # bounded staleness's counters


def relative_drift(new: Tensor, old: Tensor) -> float:
    """``|new - old| / |new|`` over the entries non-zero in both (rows are post-dropout: a fresh dropout mask
    alone would otherwise read as drift ~1); 0 when nothing is non-zero in both."""
    both = (new != 0) & (old != 0)
    scale = float(new[both].norm())
    return float((new[both] - old[both]).norm()) / scale if scale > 0 else 0.0


def max_over_ranks(comm, value: float) -> float:
    """The largest of every rank's ``value`` (one float32 ``all_gather``, counted under ``tags.STALE_DRIFT``):
    the collective a drift bound decides with, so all ranks refresh together."""
    return max(float(t) for t in comm.all_gather(torch.tensor([float(value)]), tags.STALE_DRIFT))


class StaleMonitor:
    """Stale reads, historical-row drift and the loss curve of one rank's stale mode."""

    def __init__(self) -> None:
        self.rows_read = 0
        self.stale_rows_read = 0
        self.drifts: list[float] = []
        self.losses: list[float] = []
        self.counts: dict[str, int] = {}  # COUNTS a mode keeps (partition's bounded staleness)
        self.bound: float | None = None  # the drift bound, where the mode has one (0 = fixed K)
        self.unit = "layer-epochs"  # what a refresh decision covers (partition: one layer's halo; pipeline: an epoch)

    def count(self, **added: int) -> None:
        for k, v in added.items():
            self.counts[k] = self.counts.get(k, 0) + int(v)

    def reads(self, stale: int, total: int) -> None:
        self.stale_rows_read += stale
        self.rows_read += total

    def drift(self, new: Tensor, old: Tensor) -> None:
        """Relative change of remembered rows ``old`` once recomputed as ``new``, over the entries non-zero
        in both (rows are post-dropout: a fresh dropout mask alone would otherwise read as drift ~1)."""
        if bool(((new != 0) & (old != 0)).any()):
            self.drifts.append(relative_drift(new, old))

    def loss(self, value: float) -> None:
        self.losses.append(float(value))

    def stats(self) -> dict[str, Any]:
        reason = divergence(self.losses)
        return {"stale_read_share": self.stale_rows_read / self.rows_read if self.rows_read else 0.0,
                "stale_rows_read": self.stale_rows_read, "rows_read": self.rows_read,
                "max_drift": max(self.drifts, default=0.0),
                "mean_drift": sum(self.drifts) / len(self.drifts) if self.drifts else 0.0,
                "diverged": reason is not None, "diverged_reason": reason, **self._bounded()}

    def _bounded(self) -> dict[str, Any]:
        if self.bound is None:
            return {}
        return {"bound": self.bound, "refresh_unit": self.unit, **_derived(self.counts),
                **drift_flag(self.bound, self.counts, self.drifts)}


def _derived(counts: dict[str, int]) -> dict[str, Any]:
    """The counters and what follows from them: communication saved against the exact mode, forced share."""
    c = {k: int(counts.get(k, 0)) for k in COUNTS}
    would_be_stale = c["forced_refreshes"] + c["stale_layer_epochs"]
    return {**c, "saved_vs_exact_bytes": c["exact_halo_bytes"] - c["halo_sent_bytes"],
            "forced_share": c["forced_refreshes"] / would_be_stale if would_be_stale else 0.0}


BOUND_CHOSEN_ON = ("cora", "amazon-computers")  # graphs DEFAULT_BOUND was chosen on; the others only check it


def graph_group(dataset: str) -> str:
    """Whether ``dataset`` helped choose the stale modes' defaults or only checks them (``graphpar parity``)."""
    return "tuned" if dataset in BOUND_CHOSEN_ON else "check-only"


DEFAULT_BOUND = 0.1  # partition --stale K: a layer's halo is refreshed early once its drift exceeds this
FLAG_SHARE = 0.5  # flagged: the bound forced (or, without one, would have forced) over half the stale layer-epochs
FLAG_DRIFT = DEFAULT_BOUND  # fixed K: a refresh's drift above this counts as one the default bound would have forced


def drift_flag(bound: float, counts: dict[str, int], drifts: list[float]) -> dict[str, Any]:
    """``drift_flagged`` and its one-line reason: with a bound, it forced refreshes on over FLAG_SHARE of
    the would-be-stale layer-epochs (parity kept by refreshing: little saved); with a fixed K, over
    FLAG_SHARE of the non-zero refresh drifts exceed FLAG_DRIFT (the rows reused were off by more than
    that for most of the run: accuracy may be lost silently)."""
    reason = None
    if bound > 0:
        d = _derived(counts)
        if d["forced_share"] > FLAG_SHARE:
            reason = (f"the drift bound {bound:g} forced {d['forced_refreshes']} refreshes, "
                      f"{d['forced_share']:.0%} of the stale ones: little staleness left")
    else:
        moved = [x for x in drifts if x > 0]
        over = sum(x > FLAG_DRIFT for x in moved)
        if moved and over / len(moved) > FLAG_SHARE:
            reason = (f"{over} of {len(moved)} refreshes found rows drifted over {FLAG_DRIFT:g} (fixed K, no bound): "
                      f"accuracy may be lost; try --stale-bound {FLAG_DRIFT:g}")
    return {"drift_flagged": reason is not None, "drift_flag_reason": reason}


def combine(per_rank: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """All ranks' ``stats()`` as one (a pipeline's first stage reads no history: rank 0 alone says little):
    reads and bytes summed, drifts' maximum, refresh decisions (collective) once, diverged if any rank says so.
    None when no rank has stats."""
    stats = [s for s in per_rank if s]
    if not stats:
        return None
    rows = sum(s["rows_read"] for s in stats)
    stale = sum(s["stale_rows_read"] for s in stats)
    reasons = [s["diverged_reason"] for s in stats if s["diverged"]]
    bounded = {}
    if any("bound" in s for s in stats):
        counts = {**{k: max(int(s.get(k, 0)) for s in stats) for k in DECISIONS},
                  **{k: sum(int(s.get(k, 0)) for s in stats) for k in BYTES}}
        flags = [s["drift_flag_reason"] for s in stats if s.get("drift_flagged")]
        bound = stats[0]["bound"]
        flag = drift_flag(bound, counts, []) if bound > 0 else {  # fixed K: the ranks' own drifts decide
            "drift_flagged": bool(flags), "drift_flag_reason": flags[0] if flags else None}
        bounded = {"bound": bound, "refresh_unit": stats[0].get("refresh_unit", "layer-epochs"),
                   **_derived(counts), **flag}
    return {**bounded, "stale_read_share": stale / rows if rows else 0.0, "stale_rows_read": stale, "rows_read": rows,
            "max_drift": max(s["max_drift"] for s in stats),
            "mean_drift": max(s["mean_drift"] for s in stats),
            "diverged": bool(reasons), "diverged_reason": reasons[0] if reasons else None}


def with_combined(info: dict[str, Any], per_rank: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Rank 0's ``info`` with its ``staleness`` replaced by ``combine`` over every rank's (a record's
    ``info.staleness`` speaks for the whole run: a pipeline's stage 0 reads features, not history).
    ``info`` unchanged when no rank has staleness statistics (exact modes)."""
    stats = combine(per_rank)
    return info if stats is None else {**info, "staleness": stats}
