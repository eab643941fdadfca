"""Run records as pandas tables: the documented way to read ``results/runs.jsonl``.

    from graphpar.bench import results
    runs = results.load_runs("results/runs.jsonl")          # one row per run (flattened config + summary)
    ranks = results.workers_table(results.read("results/runs.jsonl"))   # one row per (run, rank)
    results.export_csv("results/runs.jsonl", "results/csv")  # runs.csv, workers.csv, epochs.csv, comm.csv, accuracy.csv

Columns of ``load_runs`` (units in the names):
- identity: run_id, time_utc, status, error, config_key (hash of the configuration, timeout excluded),
  git_sha, env_fingerprint (hash of host/cores/python/torch/dgl/platform/device);
- configuration: strategy, dataset, workers, model, layers, hidden, epochs, seed, ... and ``opt.<key>``
  for every strategy option; graph counts ``graph.nodes``, ``graph.edges``...;
- measurements (recomputed from the raw per-rank samples, never trusted from disk): epoch_s (max over
  ranks barrier to barrier, median over the timed epochs), compute_s / comm_s / idle_s (mean over ranks of
  per-rank medians; compute excludes the idle wait at the end-of-epoch barrier), bytes_per_epoch
  (sent, all ranks), load balance (compute_max_over_mean, compute_cv, edges_max_over_mean,
  memory_max_over_mean), test_acc/val_acc/train_acc, final_loss, analytic_bytes_per_epoch (when the
  strategy's ``info`` carries it), speedup_vs_single (same dataset/model/layers/hidden, ``single`` at P=1).
"""
from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from .record import read_records

_KEY_EXCLUDE = ("timeout_s",)
_ENV_KEYS = ("host", "cores", "python", "torch", "dgl", "platform", "device", "gpu")


def _hash(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def config_key(cfg: dict[str, Any]) -> str:
    """Identity of a configuration (what a resumed sweep matches on, together with the git sha)."""
    return _hash({k: v for k, v in cfg.items() if k not in _KEY_EXCLUDE})


def env_fingerprint(env: dict[str, Any]) -> str:
    """Hash of the machine and software stack: absolute times compare only within one fingerprint."""
    return _hash({k: env.get(k) for k in _ENV_KEYS})


def read(source: str | Path | Iterable[dict]) -> list[dict[str, Any]]:
    """Records from a JSONL path (missing file: none) or an iterable of record dicts."""
    if isinstance(source, (str, Path)):
        return read_records(Path(source))
    return list(source)


def _timed(rec: dict[str, Any]) -> int:
    """Index of the first timed epoch (after warm-up, as the record's summary does)."""
    warm = rec["config"].get("warmup_epochs", 1)
    return warm if len(rec.get("epochs", [])) > warm else 0


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


def rank_medians(rec: dict[str, Any]) -> list[dict[str, float]]:
    """Per rank: median over the timed epochs of wall, compute (idle excluded), comm, idle; bytes per epoch."""
    start = _timed(rec)
    out = []
    for w in rec.get("workers", []):
        idle = w.get("idle_s") or [0.0] * len(w["wall_s"])
        net = [max(c - i, 0.0) for c, i in zip(w["compute_s"], idle)]
        out.append({"rank": w.get("rank", len(out)), "wall_s": _median(w["wall_s"][start:]),
                    "compute_s": _median(net[start:]), "comm_s": _median(w["comm_s"][start:]),
                    "idle_s": _median(idle[start:]), "sent_bytes": _median(w["sent_bytes"][start:]),
                    "recv_bytes": _median(w["recv_bytes"][start:]),
                    "local_vertices": w.get("local_vertices"), "local_edges": w.get("local_edges"),
                    "peak_memory_bytes": w.get("peak_memory_bytes")})
    return out


def _max_over_mean(values: list[float | None]) -> float:
    vals = [v for v in values if v is not None]
    mean = statistics.mean(vals) if vals else 0.0
    return max(vals) / mean if mean > 0 else 1.0


def run_row(rec: dict[str, Any]) -> dict[str, Any]:
    """One flat row of a record (see the module docstring for the columns)."""
    cfg, env = rec.get("config", {}), rec.get("env", {})
    row: dict[str, Any] = {"run_id": rec.get("run_id"), "time_utc": rec.get("time_utc"), "status": rec.get("status"),
                           "error": (rec.get("error") or "").splitlines()[0] if rec.get("error") else None,
                           "config_key": config_key(cfg), "git_sha": env.get("git_sha"),
                           "env_fingerprint": env_fingerprint(env)}
    row.update({k: v for k, v in cfg.items() if k != "options"})
    row.update({f"opt.{k}": v for k, v in (cfg.get("options") or {}).items()})
    row.update({f"graph.{k}": v for k, v in (rec.get("dataset") or {}).items()})
    if rec.get("status") != "ok":
        return row
    ranks = rank_medians(rec)
    start = _timed(rec)
    compute = [r["compute_s"] for r in ranks]
    row.update({
        "epoch_s": _median([e["wall_s_max"] for e in rec["epochs"][start:]]),
        "epoch_s_min": min(e["wall_s_max"] for e in rec["epochs"][start:]),
        "epoch_s_max": max(e["wall_s_max"] for e in rec["epochs"][start:]),
        "compute_s": statistics.mean(compute), "comm_s": statistics.mean(r["comm_s"] for r in ranks),
        "idle_s": statistics.mean(r["idle_s"] for r in ranks),
        "bytes_per_epoch": sum(r["sent_bytes"] for r in ranks),
        "compute_max_over_mean": _max_over_mean(compute),
        "compute_cv": (statistics.pstdev(compute) / statistics.mean(compute)) if statistics.mean(compute) > 0 else 0.0,
        "edges_max_over_mean": _max_over_mean([r["local_edges"] for r in ranks]),
        "memory_max_over_mean": _max_over_mean([r["peak_memory_bytes"] for r in ranks]),
        "final_loss": rec["epochs"][-1]["loss"],
        "analytic_bytes_per_epoch": (rec.get("info") or {}).get("analytic_bytes_per_epoch"),
    })
    row.update(rec.get("accuracy") or {})
    return row


def _add_speedup(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty or "epoch_s" not in df:
        return df
    same = ["dataset", "model", "layers", "hidden"]
    base = df[(df["strategy"] == "single") & (df["workers"] == 1) & (df["status"] == "ok")]
    base = base.groupby(same, dropna=False)["epoch_s"].median().rename("single_epoch_s").reset_index()
    df = df.merge(base, on=same, how="left")
    df["speedup_vs_single"] = df["single_epoch_s"] / df["epoch_s"]
    return df


def load_runs(source: str | Path | Iterable[dict] = "results/runs.jsonl", latest: bool = False) -> pd.DataFrame:
    """One row per run. ``latest=True`` keeps only the newest successful run of each configuration."""
    df = pd.DataFrame([run_row(r) for r in read(source)])
    if df.empty:
        return df
    if latest:
        ok = df[df["status"] == "ok"].sort_values("time_utc")
        df = ok.drop_duplicates("config_key", keep="last")
    return _add_speedup(df.reset_index(drop=True))


def _ok_runs(records: Iterable[dict]) -> Iterable[dict]:
    """The records of runs that completed (failed runs carry no samples)."""
    return (rec for rec in records if rec.get("status") == "ok")


def workers_table(records: Iterable[dict]) -> pd.DataFrame:
    """One row per (run, rank): per-rank medians (compute/comm/idle seconds, bytes) and load facts."""
    rows = []
    for rec in _ok_runs(records):
        for r in rank_medians(rec):
            rows.append({"run_id": rec["run_id"], "strategy": rec["config"]["strategy"],
                         "dataset": rec["config"]["dataset"], "workers": rec["config"]["workers"], **r})
    return pd.DataFrame(rows)


def epochs_table(records: Iterable[dict]) -> pd.DataFrame:
    """One row per (run, epoch, rank): the raw samples (wall, compute incl. idle, comm, idle, bytes, loss)."""
    rows = []
    for rec in _ok_runs(records):
        for w in rec["workers"]:
            for i, e in enumerate(rec["epochs"]):
                rows.append({"run_id": rec["run_id"], "strategy": rec["config"]["strategy"],
                             "workers": rec["config"]["workers"], "epoch": i, "rank": w.get("rank"),
                             "loss": e["loss"], "wall_s": w["wall_s"][i], "compute_s": w["compute_s"][i],
                             "comm_s": w["comm_s"][i], "idle_s": (w.get("idle_s") or [0.0] * (i + 1))[i],
                             "sent_bytes": w["sent_bytes"][i], "recv_bytes": w["recv_bytes"][i]})
    return pd.DataFrame(rows)


def comm_table(records: Iterable[dict]) -> pd.DataFrame:
    """One row per (run, rank, scope, tag): op, calls, bytes (scope: setup | train | eval; train = all epochs)."""
    rows = []
    for rec in _ok_runs(records):
        n = len(rec["epochs"])
        for w in rec["workers"]:
            for scope, key in (("setup", "setup_comm"), ("train", "comm_by_tag"), ("eval", "eval_comm")):
                for tag, st in (w.get(key) or {}).items():
                    rows.append({"run_id": rec["run_id"], "strategy": rec["config"]["strategy"],
                                 "workers": rec["config"]["workers"], "rank": w.get("rank"), "scope": scope,
                                 "tag": tag, "op": st["op"], "calls": st["calls"], "sent_bytes": st["sent_bytes"],
                                 "recv_bytes": st["recv_bytes"], "seconds": st["seconds"],
                                 "blocked_seconds": st.get("blocked_seconds", st["seconds"]),
                                 "epochs": n if scope == "train" else 1})
    return pd.DataFrame(rows)


def accuracy_table(records: Iterable[dict]) -> pd.DataFrame:
    """One row per (run, evaluated epoch): train/val/test accuracy and that epoch's loss."""
    rows = []
    for rec in _ok_runs(records):
        for point in rec.get("accuracy_curve") or []:
            rows.append({"run_id": rec["run_id"], "strategy": rec["config"]["strategy"],
                         "dataset": rec["config"]["dataset"], "workers": rec["config"]["workers"], **point,
                         "loss": rec["epochs"][point["epoch"]]["loss"]})
    return pd.DataFrame(rows)


def export_csv(source: str | Path | Iterable[dict], out_dir: str | Path) -> list[Path]:
    """Write runs.csv, workers.csv, epochs.csv, comm.csv, accuracy.csv; returns the paths written."""
    records = read(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {"runs": load_runs(records), "workers": workers_table(records), "epochs": epochs_table(records),
              "comm": comm_table(records), "accuracy": accuracy_table(records)}
    paths = []
    for name, df in tables.items():
        path = out / f"{name}.csv"
        df.to_csv(path, index=False)
        paths.append(path)
    return paths
