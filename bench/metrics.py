"""The one derivation of every number a record yields: the record summary, the results tables, the
terminal tables, the CI gate and the projection all call these functions.

    from graphpar.bench import metrics
    metrics.summary(rec)          # epoch_s, compute_s, bytes_per_epoch, compute_max_over_mean, phase.* ...
    metrics.rank_medians(rec)     # per rank: medians over the timed epochs
    metrics.latest(records)       # config_key -> newest completed run of each configuration
    metrics.repeats(records)      # config_key -> the completed runs of its newest code version (repeats)

Rules (README "Results format"):
- timed epochs: every epoch after the first ``warmup_epochs`` (all of them when there are no more);
- per rank, per timed epoch: compute = wall - exposed comm - idle (barrier wait); compute CPU = thread CPU
  seconds of the compute phases (aggregation, dense, layout, optimizer); a rank's value is the median
  over its timed epochs;
- bytes per epoch: the mean over the timed epochs of the bytes each rank sends, summed over ranks
  (amortised: ``--stale K`` epochs that skip the exchange count, as they do in the total);
- balance: max over ranks / mean over ranks (``*_max_over_mean``);
- epoch time: max over ranks (barrier to barrier), median over the timed epochs;
- time to accuracy: epoch times (every epoch, warm-up included) summed up to the first evaluated epoch whose
  test accuracy reaches the target (``time_to_accuracy_s``), evaluation excluded;
- bubble: time a rank waits inside an epoch for a peer's activations or gradients (a pipeline stage's
  ``stage_epochs[i]["idle_s"]``; 0 for strategies without stages). It is part of the communication phase
  (the caller is blocked in recv); figures draw it as idle: ``comm_exposed_s`` = communication phase
  minus bubble, ``idle_total_s`` = bubble + end-of-epoch barrier wait.
"""
from __future__ import annotations

import hashlib
import json
import statistics
from typing import Any, Iterable

from graphpar.strategies.base import options_now
from graphpar.strategies.comm import COUNTERS  # noqa: F401  (per-tag communicator counters; part of this API)
from graphpar.strategies.phases import COMPUTE_PHASES, PHASES

SCOPES = (("setup", "setup_comm"), ("train", "comm_by_tag"), ("eval", "eval_comm"))  # (scope, worker key)
_KEY_EXCLUDE = ("timeout_s",)
_GAT_ONLY = ("heads", "out_heads")  # settings only gat reads: other models' keys stay what they were before them


def _hash(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def config_key(cfg: dict[str, Any]) -> str:
    """Identity of a configuration (what a resumed sweep matches on, together with the git sha)."""
    if cfg.get("options"):  # a record written before an option's rename keys as the same configuration
        cfg = {**cfg, "options": options_now(cfg.get("strategy"), cfg["options"])}
    drop = _KEY_EXCLUDE + (_GAT_ONLY if cfg.get("model") != "gat" else ())
    return _hash({k: v for k, v in cfg.items() if k not in drop})


def timed_start(n_epochs: int, warmup: int) -> int:
    """Index of the first timed epoch: the warm-up rule, written once."""
    return warmup if n_epochs > warmup else 0


def _start(rec: dict[str, Any]) -> int:
    return timed_start(len(rec.get("epochs", [])), rec.get("config", {}).get("warmup_epochs", 1))


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


def _mean(xs: list[float]) -> float:
    return statistics.mean(xs) if xs else 0.0


def max_over_mean(values: Iterable[float | None]) -> float:
    """Balance of a per-rank quantity: max / mean (1.0 = perfectly balanced)."""
    vals = [v for v in values if v is not None]
    mean = _mean(vals)
    return max(vals) / mean if mean > 0 else 1.0


def compute_cpu_s(w: dict[str, Any]) -> list[float]:
    """Per epoch: this rank's thread CPU seconds in the compute phases (empty for records without phases)."""
    cpu = w.get("phase_cpu_s") or {}
    n = len(w.get("wall_s", []))
    if not cpu:
        return []
    return [sum((cpu.get(p) or [0.0] * n)[i] for p in COMPUTE_PHASES) for i in range(n)]


def bubble_s(w: dict[str, Any]) -> list[float]:
    """Per epoch: this rank's in-epoch wait for a peer (pipeline bubble); zeros without stages."""
    stages = w.get("stage_epochs") or []
    n = len(w.get("wall_s", []))
    return [float(stages[i].get("idle_s", 0.0)) if i < len(stages) else 0.0 for i in range(n)]


def compute_per_probe(w: dict[str, Any]) -> list[float]:
    """Per epoch: compute CPU seconds / CPU seconds of the CI probe run right after it in the same rank
    (``bench/probe.py``; NaN where no probe ran): the load-proof number the CI gate decides on."""
    probe = w.get("probe_cpu_s") or []
    return [c / p if p > 0 else float("nan") for c, p in zip(compute_cpu_s(w), probe)]


def rank_medians(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Per rank: median over the timed epochs of wall, compute (idle excluded), comm, idle, compute CPU and
    every phase's wall/CPU seconds; mean bytes sent/received per timed epoch; load facts."""
    start = _start(rec)
    out = []
    for w in rec.get("workers", []):
        idle = w.get("idle_s") or [0.0] * len(w["wall_s"])
        net = [max(c - i, 0.0) for c, i in zip(w["compute_s"], idle)]
        row = {"rank": w.get("rank", len(out)), "wall_s": _median(w["wall_s"][start:]),
               "compute_s": _median(net[start:]), "comm_s": _median(w["comm_s"][start:]),
               "idle_s": _median(idle[start:]), "cpu_compute_s": _median(compute_cpu_s(w)[start:]),
               "bubble_s": _median(bubble_s(w)[start:]),
               "compute_per_probe": _median([x for x in compute_per_probe(w)[start:] if x == x]),
               "sent_bytes": _mean(w["sent_bytes"][start:]), "recv_bytes": _mean(w["recv_bytes"][start:]),
               "local_vertices": w.get("local_vertices"), "local_edges": w.get("local_edges"),
               "peak_memory_bytes": w.get("peak_memory_bytes"),
               "memory_estimate_bytes": w.get("memory_estimate_bytes"),
               "baseline_memory_bytes": w.get("baseline_memory_bytes"),
               "peak_above_baseline_bytes": w.get("peak_above_baseline_bytes"),
               "memory_target_bytes": w.get("memory_target_bytes")}
        for kind in ("wall", "cpu"):
            series = w.get(f"phase_{kind}_s") or {}
            for p in PHASES:
                row[f"phase.{p}.{kind}_s"] = _median((series.get(p) or [])[start:])
        row["comm_exposed_s"] = max(row["phase.comm.wall_s"] - row["bubble_s"], 0.0)
        row["idle_total_s"] = row["idle_s"] + row["bubble_s"]
        out.append(row)
    return out


def summary(rec: dict[str, Any]) -> dict[str, Any]:
    """Every derived number of one completed run (the record's ``summary`` and ``results.run_row``)."""
    start = _start(rec)
    timed = rec["epochs"][start:]
    walls = [e["wall_s_max"] for e in timed]
    ranks = rank_medians(rec)
    compute = [r["compute_s"] for r in ranks]
    mean_c = _mean(compute)
    out = {
        "epoch_s": _median(walls), "epoch_s_min": min(walls) if walls else 0.0,
        "epoch_s_max": max(walls) if walls else 0.0, "epochs_timed": len(timed),
        "compute_s": mean_c, "comm_s": _mean([r["comm_s"] for r in ranks]),
        "idle_s": _mean([r["idle_s"] for r in ranks]),
        "cpu_compute_s": _mean([r["cpu_compute_s"] for r in ranks]),
        "cpu_compute_s_max": max((r["cpu_compute_s"] for r in ranks), default=0.0),
        "bytes_per_epoch": sum(r["sent_bytes"] for r in ranks),
        "compute_max_over_mean": max_over_mean(compute),
        "compute_cv": statistics.pstdev(compute) / mean_c if compute and mean_c > 0 else 0.0,
        "edges_max_over_mean": max_over_mean(r["local_edges"] for r in ranks),
        "memory_max_over_mean": max_over_mean(r["peak_memory_bytes"] for r in ranks),
        "peak_memory_bytes_max": max((r["peak_memory_bytes"] or 0 for r in ranks), default=0),
        "memory_estimate_bytes_max": max((r["memory_estimate_bytes"] or 0 for r in ranks), default=0),
        "peak_above_baseline_bytes_max": max((r["peak_above_baseline_bytes"] or 0 for r in ranks), default=0),
        "memory_over_target_max": max(((r["peak_above_baseline_bytes"] or 0) / r["memory_target_bytes"]
                                       for r in ranks if r["memory_target_bytes"]), default=0.0),
        "final_loss": rec["epochs"][-1]["loss"] if rec["epochs"] else float("nan"),
    }
    for p in PHASES:
        for kind in ("wall", "cpu"):
            out[f"phase.{p}.{kind}_s"] = _mean([r[f"phase.{p}.{kind}_s"] for r in ranks])
    out["bubble_s"] = _mean([r["bubble_s"] for r in ranks])
    out["comm_exposed_s"] = _mean([r["comm_exposed_s"] for r in ranks])
    out["idle_total_s"] = _mean([r["idle_total_s"] for r in ranks])
    return out


def elapsed_s(rec: dict[str, Any]) -> list[float]:
    """Training wall seconds from the start of epoch 0 to the end of each epoch (max over ranks, barrier to
    barrier; evaluation not included): the x axis of time-to-accuracy."""
    out, total = [], 0.0
    for e in rec.get("epochs", []):
        total += e["wall_s_max"]
        out.append(total)
    return out


def time_to_accuracy_s(rec: dict[str, Any], target: float) -> float | None:
    """Training wall seconds (``elapsed_s``) to the end of the first evaluated epoch whose test accuracy
    reaches ``target``; None when none does (runs evaluate every ``--eval-every`` epochs and after the last)."""
    elapsed = elapsed_s(rec)
    for point in sorted(rec.get("accuracy_curve") or [], key=lambda p: p["epoch"]):
        if point.get("test_acc", float("-inf")) >= target and point["epoch"] < len(elapsed):
            return elapsed[point["epoch"]]
    return None


def best_test_accuracy(rec: dict[str, Any]) -> float:
    """The highest test accuracy over the run's evaluated epochs (its final one when it evaluated only then)."""
    curve = rec.get("accuracy_curve") or [{"test_acc": (rec.get("accuracy") or {}).get("test_acc", 0.0)}]
    return max(p.get("test_acc", 0.0) for p in curve)


def fastest_epoch_s(rec: dict[str, Any]) -> float:
    """Fastest timed epoch (max over ranks)."""
    return min(e["wall_s_max"] for e in rec["epochs"][_start(rec):])


def _ok(records: Iterable[dict]) -> list[dict]:
    return [r for r in records if r.get("status") == "ok"]


def latest(records: Iterable[dict]) -> dict[str, dict[str, Any]]:
    """config_key -> the newest completed run of each configuration (by ``time_utc``, then file order)."""
    out: dict[str, dict] = {}
    for i, r in sorted(enumerate(_ok(records)), key=lambda ir: (ir[1].get("time_utc") or "", ir[0])):
        out[config_key(r["config"])] = r
    return out


def repeats(records: Iterable[dict]) -> dict[str, list[dict[str, Any]]]:
    """config_key -> the completed runs of the configuration at the git sha of its newest run (the repeats
    ``--repeat N`` made, or reruns of the same code), oldest first."""
    records = _ok(records)
    newest = latest(records)
    out: dict[str, list[dict]] = {}
    for r in records:
        key = config_key(r["config"])
        if r["env"].get("git_sha") == newest[key]["env"].get("git_sha"):
            out.setdefault(key, []).append(r)
    return out


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of a list of repeats' values."""
    return {"median": _median(values), "min": min(values) if values else 0.0, "max": max(values) if values else 0.0}
