"""Run records: one JSON object per run, appended atomically to a JSONL file.

    append_record(build_record(cfg, graph_summary, rank_results), Path("results/runs.jsonl"))

Raw per-epoch, per-rank samples are kept; derived numbers (``summary``) are computed here once and
again when loading, so a reader can always recompute them. Schema in the README ("Results format").
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import socket
import statistics
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

SCHEMA = "graphpar.run/1"
COUNTERS = ("calls", "sent_bytes", "recv_bytes", "seconds", "blocked_seconds")  # per-tag communicator counters
_REPO = Path(__file__).resolve().parent.parent


def git_sha() -> str:
    """Commit of the code that ran; with uncommitted changes to tracked files, '+dirty.' and a hash of
    the diff, so runs of the same edited tree match (sweep resume) and runs of different edits do not."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=_REPO, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=_REPO, capture_output=True,
                              timeout=10).stdout
        return (sha or "unknown") + (f"+dirty.{hashlib.sha1(diff).hexdigest()[:8]}" if diff else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: str = "cpu") -> dict[str, Any]:
    """The fingerprint a result is only comparable within."""
    import torch  # noqa: PLC0415

    try:
        import dgl  # noqa: PLC0415
        dgl_version = dgl.__version__
    except Exception:  # noqa: BLE001
        dgl_version = None
    env = {"git_sha": git_sha(), "host": socket.gethostname(), "cores": os.cpu_count(),
           "python": platform.python_version(), "torch": torch.__version__, "dgl": dgl_version,
           "platform": platform.platform(), "device": device}
    if device == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def summarize(epochs: list[dict], workers: list[dict], warmup: int) -> dict[str, Any]:
    """Derived numbers: epoch time is the max over ranks, median over epochs after ``warmup`` epochs."""
    start = warmup if len(epochs) > warmup else 0
    timed = epochs[start:]
    epoch_s = statistics.median(e["wall_s_max"] for e in timed) if timed else float("nan")

    def per_worker(key: str) -> list[float]:
        return [statistics.median(w[key][start:]) for w in workers if w[key][start:]]

    comm = per_worker("comm_s")
    compute = [statistics.median([max(c - i, 0.0) for c, i in zip(w["compute_s"], w.get("idle_s") or [0.0] * len(w["compute_s"]))][start:])
               for w in workers if w["compute_s"][start:]]  # compute excludes the end-of-epoch barrier wait
    sent = [statistics.mean(w["sent_bytes"][start:]) for w in workers if w["sent_bytes"][start:]]

    def imbalance(values: list[float]) -> float:
        mean = statistics.mean(values) if values else 0.0
        return max(values) / mean if mean > 0 else 1.0

    return {
        "epoch_s": epoch_s, "epochs_timed": len(timed),
        "bytes_per_epoch": sum(sent),
        "compute_s_mean": statistics.mean(compute) if compute else 0.0,
        "comm_s_mean": statistics.mean(comm) if comm else 0.0,
        "compute_imbalance": imbalance(compute),
        "compute_cv": (statistics.pstdev(compute) / statistics.mean(compute)) if compute and statistics.mean(compute) > 0 else 0.0,
        "edges_imbalance": imbalance([w.get("local_edges", 0) for w in workers]),
        "memory_imbalance": imbalance([w.get("peak_memory_bytes", 0) for w in workers]),
        "final_loss": epochs[-1]["loss"] if epochs else float("nan"),
    }


def _tag_totals(epochs: list[dict]) -> dict[str, dict[str, Any]]:
    total: dict[str, dict[str, Any]] = {}
    for e in epochs:
        for tag, st in e["comm"].items():
            t = total.setdefault(tag, {"op": st["op"], **{k: 0 for k in COUNTERS}})
            for k in COUNTERS:
                t[k] += st.get(k, 0)
    return total


def build_record(cfg: dict[str, Any], dataset: dict[str, Any], rank_results: list[dict[str, Any]],
                 env: dict[str, Any] | None = None) -> dict[str, Any]:
    """One record from every rank's ``train_rank`` result (rank order)."""
    n_epochs = len(rank_results[0]["epochs"])
    epochs = []
    for i in range(n_epochs):
        per = [r["epochs"][i] for r in rank_results]
        epochs.append({"epoch": i, "loss": per[0]["loss"], "wall_s_max": max(p["wall_s"] for p in per)})
    workers = []
    for r in rank_results:
        extra = {k: v for k, v in r.items() if k not in (
            "epochs", "accuracy", "accuracy_curve", "info", "params", "setup_comm", "eval_comm")}
        workers.append({
            **extra,
            "wall_s": [e["wall_s"] for e in r["epochs"]], "compute_s": [e["compute_s"] for e in r["epochs"]],
            "comm_s": [e["comm_s"] for e in r["epochs"]], "idle_s": [e.get("idle_s", 0.0) for e in r["epochs"]],
            "sent_bytes": [e["sent_bytes"] for e in r["epochs"]],
            "recv_bytes": [e["recv_bytes"] for e in r["epochs"]],
            "comm_by_tag": _tag_totals(r["epochs"]), "setup_comm": r["setup_comm"], "eval_comm": r["eval_comm"],
        })
    return {
        "schema": SCHEMA, "run_id": uuid.uuid4().hex[:12], "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "status": "ok", "error": None, "config": cfg, "env": env or environment(cfg.get("device", "cpu")),
        "dataset": dataset, "epochs": epochs, "workers": workers,
        "accuracy": rank_results[0]["accuracy"], "accuracy_curve": rank_results[0]["accuracy_curve"],
        "info": rank_results[0].get("info", {}),
        "summary": summarize(epochs, workers, cfg.get("warmup_epochs", 1)),
    }


def failed_record(cfg: dict[str, Any], error: str) -> dict[str, Any]:
    """A record of a configuration that failed (sweeps keep going and say why)."""
    return {"schema": SCHEMA, "run_id": uuid.uuid4().hex[:12],
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "status": "failed",
            "error": error[-4000:], "config": cfg, "env": environment(cfg.get("device", "cpu"))}


def append_record(record: dict[str, Any], path: Path) -> None:
    """Append one line atomically: one write() on an O_APPEND descriptor under an exclusive lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, default=float, allow_nan=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete record of a JSONL file (a torn last line is skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
