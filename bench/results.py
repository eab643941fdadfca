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
- measurements (``metrics.summary``, recomputed from the raw per-rank samples, never trusted from disk):
  epoch_s (max over ranks barrier to barrier, median over the timed epochs; epoch_s_min/max), compute_s /
  comm_s / idle_s (mean over ranks of per-rank medians; compute excludes the idle wait at the end-of-epoch
  barrier), cpu_compute_s (thread CPU seconds of the compute phases, mean over ranks; _max: slowest rank),
  ``phase.<aggregation|dense|layout|comm|optimizer>.<wall|cpu>_s``, bytes_per_epoch (sent, all ranks,
  mean over the timed epochs), load balance (compute_max_over_mean, compute_cv, edges_max_over_mean,
  memory_max_over_mean), test_acc/val_acc/train_acc, final_loss, analytic_bytes_per_epoch (when the
  strategy's ``info`` carries it), speedup_vs_single (same dataset/model/layers/hidden, ``single`` at P=1).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from graphpar.strategies.base import options_now

from . import metrics
from .files import replacing
from .metrics import config_key, rank_medians
from .record import read_records

_ENV_KEYS = ("host", "cores", "python", "torch", "dgl", "platform", "device", "gpu")


def _hash(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def env_fingerprint(env: dict[str, Any]) -> str:
    """Hash of the machine and software stack: absolute times compare only within one fingerprint."""
    return _hash({k: env.get(k) for k in _ENV_KEYS})


def read(source: str | Path | Iterable[dict]) -> list[dict[str, Any]]:
    """Records from a JSONL path (missing file: none) or an iterable of record dicts."""
    if isinstance(source, (str, Path)):
        return read_records(Path(source))
    return list(source)


def run_row(rec: dict[str, Any]) -> dict[str, Any]:
    """One flat row of a record (see the module docstring for the columns)."""
    cfg, env = rec.get("config", {}), rec.get("env", {})
    row: dict[str, Any] = {"run_id": rec.get("run_id"), "time_utc": rec.get("time_utc"), "status": rec.get("status"),
                           "error": (rec.get("error") or "").splitlines()[0] if rec.get("error") else None,
                           "config_key": config_key(cfg), "git_sha": env.get("git_sha"),
                           "env_fingerprint": env_fingerprint(env)}
    row.update({k: v for k, v in cfg.items() if k != "options"})
    row.update({f"opt.{k}": v for k, v in (options_now(cfg.get("strategy"), cfg.get("options")) or {}).items()})
    row.update({f"graph.{k}": v for k, v in (rec.get("dataset") or {}).items()})
    if rec.get("status") != "ok":
        return row
    row.update(metrics.summary(rec))
    row.update({
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
    """One row per run. ``latest=True``: one row per configuration, its newest completed run, with
    ``epoch_s`` and ``cpu_compute_s`` the median over the repeats at that run's git sha
    (``metrics.repeats``), ``epoch_s_min``/``epoch_s_max`` their min and max (a single run: its fastest
    and slowest timed epoch) and ``repeats`` their number."""
    records = read(source)
    if not latest:
        df = pd.DataFrame([run_row(r) for r in records])
        return df if df.empty else _add_speedup(df)
    rows = []
    groups = metrics.repeats(records)
    for key, rec in metrics.latest(records).items():
        row = run_row(rec)
        runs = [metrics.summary(r) for r in groups[key]]
        row["repeats"] = len(runs)
        if len(runs) > 1:
            epoch = metrics.spread([r["epoch_s"] for r in runs])
            row.update(epoch_s=epoch["median"], epoch_s_min=epoch["min"], epoch_s_max=epoch["max"],
                       cpu_compute_s=metrics.spread([r["cpu_compute_s"] for r in runs])["median"])
        rows.append(row)
    df = pd.DataFrame(rows)
    return df if df.empty else _add_speedup(df)


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
        with replacing(path, "w", newline="") as f:
            df.to_csv(f, index=False)
        paths.append(path)
    return paths
