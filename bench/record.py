"""Run records: one JSON object per run, appended whole (or not at all) to a JSONL file.

    append_record(build_record(cfg, graph_summary, rank_results), Path("results/runs.jsonl"))

Raw per-epoch, per-rank samples are kept; derived numbers (``summary``) are computed here once and
again when loading, so a reader can always recompute them. Schema in the README ("Results format").
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import platform
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import torch

from graphpar.strategies.staleness import with_combined

from . import memory, metrics, notices
from .errors import RecordError
from .metrics import COUNTERS

SCHEMA = "graphpar.run/1"
REPO_ROOT = Path(__file__).resolve().parent.parent


def git_sha() -> str:
    """Commit of the code that ran; with uncommitted changes to tracked files, '+dirty.' and a hash of
    the diff, so runs of the same edited tree match (sweep resume) and runs of different edits do not."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=REPO_ROOT, capture_output=True,
                              timeout=10).stdout
        return (sha or "unknown") + (f"+dirty.{hashlib.sha1(diff).hexdigest()[:8]}" if diff else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment(device: str = "cpu") -> dict[str, Any]:
    """The fingerprint a result is only comparable within."""
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


def summarize(rec: dict[str, Any]) -> dict[str, Any]:
    """The record's derived numbers (``metrics.summary``: the same function the results tables use)."""
    return metrics.summary(rec)


def _tag_totals(epochs: list[dict]) -> dict[str, dict[str, Any]]:
    total: dict[str, dict[str, Any]] = {}
    for e in epochs:
        for tag, st in e["comm"].items():
            t = total.setdefault(tag, {"op": st["op"], **{k: 0 for k in COUNTERS}})
            for k in COUNTERS:
                t[k] += st.get(k, 0)
    return total


def _per_phase(epochs: list[dict], kind: str) -> dict[str, list[float]]:
    """{phase: [seconds per epoch]} from the epochs' ``phases`` (empty when the rank did not time phases)."""
    if not epochs or "phases" not in epochs[0]:
        return {}
    return {p: [e["phases"][kind].get(p, 0.0) for e in epochs] for p in epochs[0]["phases"][kind]}


def build_record(cfg: dict[str, Any], dataset: dict[str, Any], rank_results: list[dict[str, Any]],
                 env: dict[str, Any] | None = None) -> dict[str, Any]:
    """One record from every rank's ``train_rank`` result (rank order)."""
    n_epochs = len(rank_results[0]["epochs"])
    epochs = []
    for i in range(n_epochs):
        per = [r["epochs"][i] for r in rank_results]
        epochs.append({"epoch": i, "loss": per[0]["loss"], "wall_s_max": max(p["wall_s"] for p in per)})
    workers = []
    estimates = memory.rank_estimates(cfg, dataset) or []  # analytic peak bytes per rank, beside the measured
    for r in rank_results:
        extra = {k: v for k, v in r.items() if k not in (
            "epochs", "accuracy", "accuracy_curve", "info", "params", "setup_comm", "eval_comm")}
        workers.append({
            **extra,
            "wall_s": [e["wall_s"] for e in r["epochs"]], "compute_s": [e["compute_s"] for e in r["epochs"]],
            "comm_s": [e["comm_s"] for e in r["epochs"]], "idle_s": [e.get("idle_s", 0.0) for e in r["epochs"]],
            "process_cpu_s": [e.get("process_cpu_s", 0.0) for e in r["epochs"]],
            **({"epoch_peak_memory_bytes": [e["peak_memory_bytes"] for e in r["epochs"]]}
               if "peak_memory_bytes" in r["epochs"][0] else {}),
            "sent_bytes": [e["sent_bytes"] for e in r["epochs"]],
            "recv_bytes": [e["recv_bytes"] for e in r["epochs"]],
            "phase_wall_s": _per_phase(r["epochs"], "wall_s"), "phase_cpu_s": _per_phase(r["epochs"], "cpu_s"),
            "phases_entered": [e.get("phases", {}).get("entered", 0) for e in r["epochs"]],
            **({"probe_cpu_s": [e["probe_cpu_s"] for e in r["epochs"]]} if "probe_cpu_s" in r["epochs"][0] else {}),
            "comm_by_tag": _tag_totals(r["epochs"]), "setup_comm": r["setup_comm"], "eval_comm": r["eval_comm"],
        })
        if len(estimates) > len(workers) - 1:
            workers[-1]["memory_estimate_bytes"] = estimates[len(workers) - 1]
    targets = memory.rank_targets(cfg, dataset, [w.get("halo_vertices") for w in workers]) or []
    for w, target in zip(workers, targets):  # peak above the interpreter baseline vs a P-th of the graph + halo
        w["memory_target_bytes"] = target
        if w.get("baseline_memory_bytes") and w.get("peak_memory_bytes"):
            w["peak_above_baseline_bytes"] = w["peak_memory_bytes"] - w["baseline_memory_bytes"]
    rec = {
        "schema": SCHEMA, "run_id": uuid.uuid4().hex[:12], "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "status": "ok", "error": None, "config": cfg, "env": env or environment(cfg.get("device", "cpu")),
        "dataset": dataset, "epochs": epochs, "workers": workers,
        "accuracy": rank_results[0]["accuracy"], "accuracy_curve": rank_results[0]["accuracy_curve"],
        "info": with_combined(rank_results[0].get("info", {}), [r.get("staleness") for r in rank_results]),
    }
    rec["summary"] = summarize(rec)
    return rec


def failed_record(cfg: dict[str, Any], error: str) -> dict[str, Any]:
    """A record of a configuration that failed (sweeps keep going and say why)."""
    return {"schema": SCHEMA, "run_id": uuid.uuid4().hex[:12],
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "status": "failed",
            "error": error[-4000:], "config": cfg, "env": environment(cfg.get("device", "cpu"))}


def _ends_with_newline(fd: int, size: int) -> bool:
    """Whether the file's last byte is a newline (an empty file, or one we may not read, counts as clean)."""
    try:
        return size == 0 or os.pread(fd, 1, size - 1) == b"\n"
    except OSError:
        return True


def _open_for_append(path: Path) -> int:
    flags = os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        return os.open(path, os.O_RDWR | flags, 0o644)  # read too: the last byte says whether the tail is torn
    except PermissionError:
        return os.open(path, os.O_WRONLY | flags, 0o644)


def append_record(record: dict[str, Any], path: Path) -> None:
    """Append one line under an exclusive lock, whole or not at all: short writes are continued, and on a
    failure (disk full, file size limit) the file is cut back to its size before the append and RecordError
    says why in one line. A torn tail left by an earlier crash gets a newline first, so the record stands
    on a line of its own."""
    line = (json.dumps(record, default=float, allow_nan=True) + "\n").encode()
    for attempt in range(3):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = _open_for_append(path)
            break
        except FileNotFoundError:  # a new folder removed meanwhile (another run's output check): make it again
            if attempt == 2:
                raise RecordError(f"{path}: record not written (its folder keeps disappearing); pass a stable "
                                  "--out and rerun") from None
        except OSError as e:
            raise RecordError(f"{path}: record not written ({e.strerror or e}); pass a writable --out and rerun") \
                from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
        except OSError as e:  # no lock (a filesystem without flock): nothing written
            raise RecordError(f"{path}: record not written ({e.strerror or e}); pass an --out on a local disk "
                              "and rerun") from None
        data = memoryview(line if _ends_with_newline(fd, size) else b"\n" + line)
        try:
            done = 0
            while done < len(data):
                n = os.write(fd, data[done:])
                if n <= 0:
                    raise OSError(errno.ENOSPC, "write made no progress")
                done += n
            os.fsync(fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            kept = "the file is as it was" if _size(fd) == size else "a partial last line is left: delete it"
            raise RecordError(f"{path}: record not written ({e.strerror or e}); {kept}; free space on that disk "
                              "(or raise the file size limit) or pass another --out, and rerun") from None
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _size(fd: int) -> int | None:
    try:
        return os.fstat(fd).st_size
    except OSError:
        return None


_WARNED: set[tuple[str, tuple[int, ...]]] = set()


def scan_records(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """Every record of a JSONL file and the numbers (from 1) of its damaged lines: not UTF-8 or not JSON,
    such as the torn last line of a run cut short. Blank lines are neither. A missing file: none."""
    if not path.exists():
        return [], []
    out: list[dict[str, Any]] = []
    damaged: list[int] = []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            out.append(json.loads(raw.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError):
            damaged.append(number)
    return out, damaged


def damaged_lines(path: Path, numbers: list[int]) -> str:
    """``path: line(s) 3, 7 damaged (not UTF-8 JSON)``: how a reader names the lines it could not read."""
    shown = ", ".join(map(str, numbers[:8])) + (f" and {len(numbers) - 8} more" if len(numbers) > 8 else "")
    return f"{path}: line{'s' if len(numbers) > 1 else ''} {shown} damaged (not UTF-8 JSON)"


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every complete record of a JSONL file; damaged lines are skipped and named in one stderr line (once
    per file and set of lines, as the command ends: a command refused for bad input says only why)."""
    records, damaged = scan_records(path)
    if damaged and (str(path), tuple(damaged)) not in _WARNED:
        _WARNED.add((str(path), tuple(damaged)))
        notices.defer(f"graphpar: warning: {damaged_lines(path, damaged)}, skipped; repair or drop them (a torn "
                      "last line is a run cut short)")
    return records
