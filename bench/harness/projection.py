"""Project a measured run to a cluster: P' workers joined by links of bandwidth B and latency alpha.

    graphpar project --dataset rmat-arxiv --workers 16 --bandwidth-gbps 15 --latency-us 20
    graphpar project --validate --measure-link      # predicted vs measured on the local runs, loopback link

Inputs from one record: each rank's compute per epoch (median over the timed epochs of the thread CPU
seconds of its compute phases: the work itself, not inflated by ranks sharing cores; wall compute for
records without phases) and its exact bytes and calls per tag per epoch (``comm_by_tag`` / epochs).
Cost of one call, per rank, with n the payload on this rank (``comm.py`` byte conventions):
- all_reduce (ring): 2(P-1)/P * n/B + 2(P-1) alpha
- all_gather (ring): (P-1) * n/B + (P-1) alpha     (recv bytes = (P-1) n)
- all_to_all (pairwise exchange, full duplex): max(sent, recv)/B + (P-1) alpha
- send / recv (point to point): bytes/B + alpha
Epoch time: without overlap max_r(compute_r + comm_r); with perfect overlap max_r max(compute_r, comm_r);
the strategy's own estimate uses overlap when its ``info`` says ``overlap: true``.

Scaling from the measured P to P' (assumptions, also in the README):
- compute: the total over ranks is conserved and split evenly, times the measured max/mean imbalance
  (``info["compute_scaling"] = "replicated"`` keeps per-rank compute as measured instead);
- all_reduce payloads are replicated model state: unchanged; send/recv per rank is a pipeline cut of
  N x H rows: unchanged; all_to_all moves a fixed N x d block spread over the ranks: per-rank bytes scale
  by ((P'-1)/P'^2) / ((P-1)/P^2); all_gather payloads are shards of a fixed whole: scale by P/P'.
Bytes at P' are therefore a model unless the run was measured at P' (then they are exact). When the same
configuration was measured at two worker counts, per-tag bytes follow the power law through both instead
(``project(rec, P', link, other=rec_at_other_P)``: halo volumes grow with P in a graph-dependent way).
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from .. import metrics
from ..metrics import rank_medians
from ..results import config_key
from ..runtime.spmd import run_spmd


@dataclass(frozen=True)
class Link:
    """A network link: bandwidth in bytes/s per rank (each direction), latency in seconds per message."""

    bandwidth_Bps: float
    latency_s: float

    @classmethod
    def from_gbps(cls, gbps: float, latency_us: float) -> "Link":
        return cls(gbps * 1e9 / 8, latency_us * 1e-6)

    def describe(self) -> str:
        return f"{self.bandwidth_Bps * 8 / 1e9:.2f} Gbps, {self.latency_s * 1e6:.1f} us"


@dataclass
class Projection:
    """Predicted epoch time of one record at ``workers`` ranks on ``link``."""

    workers: int
    compute_s: float        # slowest rank's compute
    comm_s: float           # slowest rank's communication
    epoch_no_overlap_s: float
    epoch_overlap_s: float
    overlap_allowed: bool
    bytes_per_rank: float   # max over ranks of bytes sent per epoch

    @property
    def epoch_s(self) -> float:
        return self.epoch_overlap_s if self.overlap_allowed else self.epoch_no_overlap_s


def call_cost(op: str, sent: float, recv: float, calls: float, workers: int, link: Link) -> float:
    """Seconds one rank spends in ``calls`` calls of ``op`` moving ``sent``/``recv`` bytes in total."""
    p, b, a = workers, link.bandwidth_Bps, link.latency_s
    if p <= 1 or calls == 0:
        return 0.0
    if op == "all_reduce":
        return 2 * (p - 1) / p * sent / b + 2 * (p - 1) * a * calls
    if op == "all_gather":
        return recv / b + (p - 1) * a * calls
    if op == "all_to_all":
        return max(sent, recv) / b + (p - 1) * a * calls
    if op in ("send", "recv"):
        return max(sent, recv) / b + a * calls
    return max(sent, recv) / b + (p - 1) * a * calls  # unknown collective: treat as a pairwise exchange


def byte_scale(op: str, measured: int, target: int) -> float:
    """Factor applied to one rank's bytes of ``op`` going from ``measured`` to ``target`` ranks."""
    if measured == target or measured <= 1:
        return 1.0
    if op == "all_to_all":
        return ((target - 1) / target ** 2) / ((measured - 1) / measured ** 2)
    if op == "all_gather":
        return measured / target
    return 1.0


def per_rank_tags(rec: dict[str, Any]) -> list[dict[str, dict[str, float]]]:
    """Per rank: tag -> {op, calls, sent, recv} per epoch (training tags only)."""
    n = max(len(rec["epochs"]), 1)
    return [{tag: {"op": st["op"], "calls": st["calls"] / n, "sent": st["sent_bytes"] / n,
                   "recv": st["recv_bytes"] / n} for tag, st in (w.get("comm_by_tag") or {}).items()}
            for w in rec["workers"]]


def fitted_scales(rec: dict[str, Any], other: dict[str, Any], target: int) -> dict[str, float]:
    """Per tag, the factor on ``rec``'s per-rank bytes at ``target`` ranks from a power law through the
    mean per-rank bytes measured at two worker counts (``rec``'s and ``other``'s)."""
    p1, p2 = rec["config"]["workers"], other["config"]["workers"]

    def mean_bytes(r: dict[str, Any]) -> dict[str, float]:
        tags = per_rank_tags(r)
        names = {t for rt in tags for t in rt}
        return {t: sum(rt.get(t, {}).get("sent", 0.0) for rt in tags) / len(tags) for t in names}

    b1, b2 = mean_bytes(rec), mean_bytes(other)
    out = {}
    for tag, v1 in b1.items():
        v2 = b2.get(tag, 0.0)
        if v1 > 0 and v2 > 0 and p1 != p2:
            k = math.log(v1 / v2) / math.log(p1 / p2)
            out[tag] = (target / p1) ** k
    return out


def compute_per_rank(rec: dict[str, Any]) -> list[float]:
    """Each rank's compute seconds per epoch: the CPU seconds of its compute phases (what the work costs
    on a core of its own, not inflated by ranks sharing cores); wall compute for records without phases."""
    return [r["cpu_compute_s"] or r["compute_s"] for r in rank_medians(rec)]


def project(rec: dict[str, Any], workers: int | None, link: Link, other: dict[str, Any] | None = None) -> Projection:
    """Predicted epoch time of ``rec`` at ``workers`` ranks (default: as measured) on ``link``. With
    ``other`` (the same configuration at another P), per-tag bytes follow the power law through both
    measurements instead of the per-op rule."""
    measured = rec["config"]["workers"]
    target = workers or measured
    info = rec.get("info") or {}
    compute = compute_per_rank(rec)
    tags = per_rank_tags(rec)
    fitted = fitted_scales(rec, other, target) if other is not None and target != measured else {}
    comm = []
    sent_rank = []
    for rank_tags in tags:
        t, sent_total = 0.0, 0.0
        for tag, st in rank_tags.items():
            f = fitted.get(tag, byte_scale(st["op"], measured, target))
            t += call_cost(st["op"], st["sent"] * f, st["recv"] * f, st["calls"], target, link)
            sent_total += st["sent"] * f
        comm.append(t)
        sent_rank.append(sent_total)
    if target != measured:
        mean = statistics.mean(compute)
        imbalance = max(compute) / mean if mean > 0 else 1.0
        if info.get("compute_scaling") == "replicated":
            c_max = max(compute)
        else:
            c_max = sum(compute) / target * imbalance
        # the slowest rank is paired with the slowest-communicating rank's comm (conservative)
        comm_max = max(comm) if comm else 0.0
        no_overlap, overlap = c_max + comm_max, max(c_max, comm_max)
        comp_out = c_max
    else:
        no_overlap = max(c + m for c, m in zip(compute, comm)) if comm else max(compute)
        overlap = max(max(c, m) for c, m in zip(compute, comm)) if comm else max(compute)
        comp_out = max(compute)
        comm_max = max(comm) if comm else 0.0
    return Projection(target, comp_out, comm_max, no_overlap, overlap, bool(info.get("overlap")),
                      max(sent_rank) if sent_rank else 0.0)


# -- measuring the local link -------------------------------------------------------------------
def _probe(comm, sizes: list[int], repeats: int) -> dict[str, list[float]]:
    p = comm.world_size
    out: dict[str, list[float]] = {"all_to_all": [], "all_reduce": []}
    for nbytes in sizes:
        rows = max(p, nbytes // 4 // 256 // p * p)
        x = torch.ones(rows, 256)
        split = [rows // p] * p
        for name, fn in (("all_to_all", lambda x=x, split=split: comm.all_to_all(x, split, split, "probe/a2a")),
                         ("all_reduce", lambda x=x: comm.all_reduce(x, "probe/ar"))):
            fn()
            times = []
            for _ in range(repeats):
                comm.barrier()
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            out[name].append(statistics.median(times))
    return out


def measure_link(workers: int = 2, small: int = 4096, large: int = 32 << 20, repeats: int = 5) -> dict[str, Any]:
    """Loopback gloo link between ``workers`` local processes: latency from a small all_to_all, bandwidth
    from a large one (bytes per rank per second, the pairwise model inverted); all_reduce fitted likewise."""
    t = run_spmd(_probe, workers, ([small, large], repeats), timeout_s=120)[0]
    p = workers
    rows_large = max(p, large // 4 // 256 // p * p)
    rows_small = max(p, small // 4 // 256 // p * p)
    sent_large = rows_large * 256 * 4 * (p - 1) / p
    sent_small = rows_small * 256 * 4 * (p - 1) / p
    alpha = max(t["all_to_all"][0] - sent_small / max(sent_large / t["all_to_all"][1], 1.0), 0.0) / (p - 1)
    bw = sent_large / max(t["all_to_all"][1] - (p - 1) * alpha, 1e-9)
    payload = rows_large * 256 * 4
    ar_alpha = t["all_reduce"][0] / (2 * (p - 1))
    ar_bw = 2 * (p - 1) / p * payload / max(t["all_reduce"][1] - 2 * (p - 1) * ar_alpha, 1e-9)
    return {"workers": p, "bandwidth_Bps": bw, "latency_s": alpha, "allreduce_bandwidth_Bps": ar_bw,
            "allreduce_latency_s": ar_alpha, "raw_s": t}


def overlapping_comm(rec: dict[str, Any]) -> bool:
    """True when a rank's timed communication exceeds its epoch (asynchronous ops overlapping each other and
    compute, e.g. a pipeline's receives): its compute time is then unknown and the projection unreliable."""
    return any(r["comm_s"] > 0.98 * r["wall_s"] for r in rank_medians(rec))


def validate(records: list[dict[str, Any]], link: Link | dict[int, Link]) -> list[dict[str, Any]]:
    """Predicted vs measured epoch time: each multi-rank record at its own P, and each record projected to
    the larger-P runs of the same configuration. ``link`` may map P to the link measured with P ranks.
    ``compute_error`` compares the predicted slowest rank's compute with the measured one (CPU seconds):
    the compute model on its own, which P ranks sharing fewer cores cannot distort."""
    ok = [r for r in records if r.get("status") == "ok" and r["config"]["workers"] > 1]
    rows = []
    by_key = {}
    for r in ok:
        cfg = {k: v for k, v in r["config"].items() if k != "workers"}
        by_key.setdefault(config_key(cfg), {})[r["config"]["workers"]] = r
    for group in by_key.values():
        for p, r in sorted(group.items()):
            measured = metrics.summary(r)["epoch_s"]
            sources = [(p, r)] + [(q, s) for q, s in sorted(group.items()) if q < p]
            for q, src in sources:
                pred = project(src, p, link[p] if isinstance(link, dict) else link)
                measured_compute = max(compute_per_rank(r))
                rows.append({"strategy": r["config"]["strategy"], "dataset": r["config"]["dataset"],
                             "from_P": q, "P": p, "measured_s": measured, "predicted_s": pred.epoch_no_overlap_s,
                             "measured_compute_s": measured_compute, "predicted_compute_s": pred.compute_s,
                             "compute_error": pred.compute_s / measured_compute - 1.0 if measured_compute else 0.0,
                             "predicted_overlap_s": pred.epoch_overlap_s, "comm_s": pred.comm_s,
                             "error": pred.epoch_no_overlap_s / measured - 1.0,
                             "note": "overlapping async comm" if overlapping_comm(src) else ""})
    return rows
