"""CI regression gate: exact communication bytes and same-run throughput ratios against a baseline.

    graphpar regress                      # make bench-ci: run results/ci_configs.yaml, compare with results/baseline.json
    graphpar regress --update             # make bench-baseline: write the current numbers as the baseline

Two tiers, chosen to move as little as possible with load on the machine:
- exact: per entry (strategy @ dataset @ model @ P), per scope (setup/train/eval), per tag, per rank: op,
  calls, sent and received bytes. Machine-independent, so any change in either direction fails (a
  deliberate change is accepted by refreshing the baseline).
- compute CPU: per entry, the thread CPU seconds per epoch of the compute phases (aggregation, dense,
  layout, optimizer; ``strategies/phases.py``) of its slowest rank (per rank the median over the timed
  epochs; the cheapest of the interleaved ``rounds``: other jobs only add CPU time), divided by the same
  number for ``single`` on the same graph and model in the same run. ``single`` itself is divided by
  the CPU seconds of a fixed dense-matmul calibration. CPU seconds do not grow with the time
  a rank waits for a core, and a ratio against the same run's reference does not depend on the
  machine's speed. Fails when ratio / baseline ratio > margin (default 1.3, measured: README "CI
  regression"); a ratio below baseline / margin is reported as WIN.
The wall-time ratio (fastest timed epoch vs ``single``'s) is printed as advisory ("slower?" above 1.6x),
never a failure: load moves it.
Always writes ``results/baseline.proposed.json`` so a refresh is a reviewed copy.
"""
from __future__ import annotations

import itertools
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from graphpar.datasets import load_dataset
from graphpar.strategies import ConfigError, TrainConfig, registered

from .. import metrics
from ..api import prepare, run_one
from ..metrics import SCOPES
from ..record import build_record, environment, failed_record, git_sha
from ..results import env_fingerprint
from ..runtime.launcher import RunFailed
from ..runtime.loop import train_local
from ..specs import load_ci_spec

DEFAULT_MARGIN = 1.3
WALL_ADVISORY = 1.6  # wall ratio moved by more than this: printed as "slower?", never a failure


def load_spec(path: str | Path) -> dict[str, Any]:
    """The CI configuration set: datasets, models, workers, fixed training settings, rounds, margins."""
    spec = load_ci_spec(path)
    spec.setdefault("strategies", "all")
    spec.setdefault("workers", 2)
    spec.setdefault("rounds", 2)
    spec.setdefault("fixed", {})
    spec.setdefault("margin", DEFAULT_MARGIN)
    spec.setdefault("margins", {})
    return spec


def entry_key(cfg: dict[str, Any]) -> str:
    return f"{cfg['strategy']}@{cfg['dataset']}@{cfg['model']}@P{cfg['workers']}"


def ci_configs(spec: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Configurations of one round (single at P=1 first on each graph) and the strategies skipped (why)."""
    names = list(registered()) if spec["strategies"] == "all" else list(spec["strategies"])
    configs, skipped = [], []
    for ds, model in itertools.product(spec["datasets"], spec.get("models") or [spec["fixed"].get("model", "gcn")]):
        for name in ["single"] + [n for n in names if n != "single"]:
            cfg = TrainConfig.from_dict({**spec["fixed"], "strategy": name, "dataset": ds, "model": model,
                                         "workers": 1 if name == "single" else spec["workers"]})
            try:
                prepare(cfg)
            except ConfigError as e:
                skipped.append(f"{entry_key(cfg.as_dict())}: {e}")
                continue
            configs.append(cfg.as_dict())
    return configs, skipped


def calibrate(repeats: int = 7) -> float:
    """CPU seconds (this thread) of a fixed dense workload: the yardstick ``single`` is gated against."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 512, generator=g), torch.randn(512, 128, generator=g)
    times = []
    for _ in range(repeats):
        t0 = time.thread_time()
        for _ in range(20):
            a @ b
        times.append(time.thread_time() - t0)
    return statistics.median(times)


def cpu_compute_s(recs: list[dict[str, Any]]) -> float:
    """Compute CPU seconds per epoch of the slowest rank: per rank, the median over every timed epoch of
    every round (thread CPU of the compute phases), then the max over ranks."""
    per_rank: dict[int, list[float]] = {}
    for rec in recs:
        start = metrics.timed_start(len(rec["epochs"]), rec["config"].get("warmup_epochs", 1))
        for w in rec["workers"]:
            per_rank.setdefault(w.get("rank", 0), []).extend(metrics.compute_cpu_s(w)[start:])
    return max(statistics.median(v) for v in per_rank.values() if v) if per_rank else float("nan")


def _launch_runner(cfg: dict[str, Any]) -> dict[str, Any]:
    """P > 1 through the launcher, as ``graphpar run`` does; the P=1 reference in this process (same
    training loop and timer, one thread; saves a third of the launches)."""
    c = TrainConfig.from_dict(cfg)
    summary = prepare(c)
    if c.workers == 1:
        return build_record(c.as_dict(), summary, train_local(c, load_dataset(c.dataset), keep_params=False))
    return run_one(c, summary, None)


def run_ci(spec: dict[str, Any], runner: Callable[[dict], dict] = _launch_runner,
           progress: bool = False) -> tuple[list[dict[str, Any]], list[float], list[str]]:
    """Run every configuration ``rounds`` times interleaved; returns (records, calibration times, skipped)."""
    if spec.get("threads"):  # same threads per rank for every run and the calibration: the rank's main
        os.environ["GRAPHPAR_THREADS"] = str(spec["threads"])  # thread then does all its compute (thread CPU)
        os.environ["OMP_NUM_THREADS"] = str(spec["threads"])
        torch.set_num_threads(int(spec["threads"]))
    configs, skipped = ci_configs(spec)
    records, calib = [], []
    bar = tqdm(total=len(configs) * spec["rounds"], desc="bench-ci", unit="run", disable=not progress)
    for _ in range(spec["rounds"]):
        for cfg in configs:
            calib.append(calibrate())
            try:
                records.append(runner(cfg))
            except (RunFailed, RuntimeError) as e:
                records.append(failed_record(cfg, str(e)))
            bar.update()
    bar.close()
    return records, calib, skipped


def _bytes(rec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scope, key in SCOPES:
        for w in rec["workers"]:
            for tag, st in sorted((w.get(key) or {}).items()):
                if tag.startswith("probe/"):
                    continue
                out.setdefault(f"{scope}:{tag}", {})[str(w.get("rank", 0))] = [
                    st["op"], st["calls"], st["sent_bytes"], st["recv_bytes"]]
    return out


def measure(records: list[dict[str, Any]], calibration_s: list[float]) -> dict[str, Any]:
    """Entries of a CI run: exact bytes per tag and rank; compute CPU ratio vs ``single`` in the same run
    (the gate); fastest-epoch wall ratio (advisory)."""
    runs: dict[str, list[dict]] = {}
    for rec in records:
        runs.setdefault(entry_key(rec["config"]), []).append(rec)
    single_cpu, single_wall = {}, {}
    for recs in runs.values():
        ok = [r for r in recs if r.get("status") == "ok"]
        if ok and ok[0]["config"]["strategy"] == "single":
            key = (ok[0]["config"]["dataset"], ok[0]["config"]["model"])
            single_cpu[key] = [cpu_compute_s([r]) for r in ok]
            single_wall[key] = min(metrics.fastest_epoch_s(r) for r in ok)
    calib = statistics.median(calibration_s) if calibration_s else float("nan")
    entries: dict[str, Any] = {}
    for key, recs in runs.items():
        ok = [r for r in recs if r.get("status") == "ok"]
        if not ok:
            entries[key] = {"failed": (recs[0].get("error") or "failed").splitlines()[0]}
            continue
        cfg = ok[0]["config"]
        is_ref = cfg["strategy"] == "single"
        cpu = cpu_compute_s(ok)
        per_round = [cpu_compute_s([r]) for r in ok]
        wall = min(metrics.fastest_epoch_s(r) for r in ok)
        ref = (cfg["dataset"], cfg["model"])
        wall_den = calib if is_ref else single_wall.get(ref)
        ref_rounds = [calib] if is_ref else single_cpu.get(ref, [])
        # the cheapest round on each side: other jobs only add CPU time (cache refills after preemption)
        ratio = min(per_round) / min(ref_rounds) if ref_rounds and min(ref_rounds) > 0 else None
        entries[key] = {"bytes": _bytes(ok[0]), "against": "calibration" if is_ref else "single",
                        "cpu_ratio": ratio, "cpu_rounds_s": per_round,
                        "wall_ratio": wall / wall_den if wall_den else None,
                        "cpu_compute_s": cpu, "epoch_s": wall,
                        "cpu_spread": (max(per_round) - min(per_round)) / cpu if cpu > 0 else 0.0}
    return entries


def compare(baseline: dict[str, Any], current: dict[str, Any], margin: float = DEFAULT_MARGIN,
            margins: dict[str, float] | None = None) -> tuple[list[tuple[str, ...]], bool]:
    """Rows (entry, metric, baseline, current, change, verdict) and whether anything FAILed. The compute
    CPU ratio gates (FAIL above ``margin``, WIN below 1/margin); the wall ratio is advisory only
    (``slower?`` above ``WALL_ADVISORY``, never a failure), because load moves it."""
    rows: list[tuple[str, ...]] = []
    failed = False
    base_entries = baseline.get("entries", {})
    for key in sorted(set(base_entries) | set(current)):
        b, c = base_entries.get(key), current.get(key)
        if b is None:
            rows.append((key, "entry", "-", "present", "", "NEW"))
            continue
        if c is None:
            rows.append((key, "entry", "present", "-", "", "MISSING"))
            continue
        if "failed" in c:
            rows.append((key, "run", "ok", c["failed"][:40], "", "FAIL"))
            failed = True
            continue
        for tag in sorted(set(b["bytes"]) | set(c["bytes"])):
            bt, ct = b["bytes"].get(tag), c["bytes"].get(tag)
            if bt != ct:
                failed = True
                bsum = sum(v[2] for v in bt.values()) if bt else 0
                csum = sum(v[2] for v in ct.values()) if ct else 0
                change = f"{csum / bsum:.3f}x" if bsum else "new"
                rows.append((key, f"bytes {tag}", f"{bsum:,}", f"{csum:,}", change, "FAIL"))
        m = (margins or {}).get(key, margin)
        if b.get("cpu_ratio") and c.get("cpu_ratio"):
            r = c["cpu_ratio"] / b["cpu_ratio"]
            verdict = "FAIL" if r > m else ("WIN" if r < 1 / m else "ok")
            failed |= verdict == "FAIL"
            rows.append((key, f"cpu/{c['against']}", f"{b['cpu_ratio']:.3f}", f"{c['cpu_ratio']:.3f}",
                         f"{r:.2f}x (margin {m}, spread {c['cpu_spread']:.0%})", verdict))
        elif not b.get("cpu_ratio"):
            rows.append((key, "baseline", "old format", "-", "refresh it: make bench-baseline", "FAIL"))
            failed = True
        if b.get("wall_ratio") and c.get("wall_ratio"):
            r = c["wall_ratio"] / b["wall_ratio"]
            rows.append((key, f"wall/{c['against']}", f"{b['wall_ratio']:.3f}", f"{c['wall_ratio']:.3f}",
                         f"{r:.2f}x (advisory)", "slower?" if r > WALL_ADVISORY else "info"))
    return rows, failed


def table(rows: list[tuple[str, ...]], only_moved: bool = False) -> str:
    """Fixed-width table; ``only_moved`` drops the ok rows."""
    head = ("entry", "metric", "baseline", "current", "change", "verdict")
    rows = [r for r in rows if not only_moved or r[-1] not in ("ok", "info")]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows])


def baseline_doc(entries: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    env = environment()
    return {"schema": "graphpar.baseline/1", "git_sha": git_sha(), "env_fingerprint": env_fingerprint(env),
            "date": time.strftime("%Y-%m-%d"), "margin": spec.get("margin", DEFAULT_MARGIN),
            "datasets": spec["datasets"], "fixed": spec["fixed"], "entries": entries}


def write_json(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
