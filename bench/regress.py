"""CI regression gate: exact communication bytes and same-run throughput ratios against a baseline.

    graphpar regress                      # make bench-ci: run results/ci_configs.yaml, compare with results/baseline.json
    graphpar regress --update             # make bench-baseline: write the current numbers as the baseline

Two tiers (../shared/ANCHORS.md section 2.3):
- exact: per entry (strategy @ dataset @ P), per scope (setup/train/eval), per tag, per rank: op, calls, sent
  and received bytes. Machine-independent, so any change in either direction fails (a deliberate change
  is accepted by refreshing the baseline).
- ratio: strategy epoch time / ``single`` epoch time on the same graph, measured in the same CI run with
  the runs interleaved over ``rounds`` (single, s1, s2, ..., single, s1, ...), each side's fastest timed
  epoch over the rounds (noise on a shared machine only adds time). ``single`` itself is gated
  as its epoch time over a fixed dense-matmul calibration timed in the same rounds. Fails when
  ratio / baseline ratio > margin (default 1.6: above a shared machine's noise, below the 2x we must
  catch); a ratio below baseline / margin is reported as WIN (not a failure).
Always writes ``results/baseline.proposed.json`` so a refresh is a reviewed copy.
"""
from __future__ import annotations

import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from .record import environment, git_sha
from .results import env_fingerprint

DEFAULT_MARGIN = 1.6
SCOPES = (("setup", "setup_comm"), ("train", "comm_by_tag"), ("eval", "eval_comm"))


def load_spec(path: str | Path) -> dict[str, Any]:
    """The CI configuration set: datasets, models, workers, fixed training settings, rounds, margins."""
    from .specs import load_ci_spec  # noqa: PLC0415

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
    from graphpar.strategies import ConfigError, TrainConfig, registered  # noqa: PLC0415

    from .cli import prepare  # noqa: PLC0415

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
    """Seconds of a fixed dense workload in this process (the yardstick ``single`` is gated against)."""
    import torch  # noqa: PLC0415

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 512, generator=g), torch.randn(512, 128, generator=g)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(20):
            a @ b
        times.append(time.perf_counter() - t0)
    return min(times)


def fastest_epoch_s(rec: dict[str, Any]) -> float:
    """Fastest timed epoch (max over ranks): on a shared machine noise only adds time, so the minimum is
    the steadiest estimate of what the code costs, and a 2x slower code path moves it 2x."""
    warm = rec["config"].get("warmup_epochs", 1)
    timed = rec["epochs"][warm:] if len(rec["epochs"]) > warm else rec["epochs"]
    return min(e["wall_s_max"] for e in timed)


def _launch_runner(cfg: dict[str, Any]) -> dict[str, Any]:
    from graphpar.strategies import TrainConfig  # noqa: PLC0415

    from .cli import prepare, run_one  # noqa: PLC0415

    c = TrainConfig.from_dict(cfg)
    return run_one(c, prepare(c), None)


def run_ci(spec: dict[str, Any], runner: Callable[[dict], dict] = _launch_runner,
           progress: bool = False) -> tuple[list[dict[str, Any]], list[float], list[str]]:
    """Run every configuration ``rounds`` times interleaved; returns (records, calibration times, skipped)."""
    from tqdm import tqdm  # noqa: PLC0415

    from .launcher import RunFailed  # noqa: PLC0415
    from .record import failed_record  # noqa: PLC0415

    import os  # noqa: PLC0415

    import torch  # noqa: PLC0415

    if spec.get("threads"):  # same threads per rank for every run and the calibration
        os.environ["GRAPHPAR_THREADS"] = str(spec["threads"])
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
    """Entries of a CI run: exact bytes per tag and rank, epoch-time ratio (and its spread over rounds)."""
    runs: dict[str, list[dict]] = {}
    for rec in records:
        runs.setdefault(entry_key(rec["config"]), []).append(rec)
    single = {}
    for key, recs in runs.items():
        cfg = recs[0]["config"]
        ok_times = [fastest_epoch_s(r) for r in recs if r.get("status") == "ok"]
        if cfg["strategy"] == "single" and ok_times:
            single[(cfg["dataset"], cfg["model"])] = min(ok_times)
    calib = min(calibration_s) if calibration_s else float("nan")
    entries: dict[str, Any] = {}
    for key, recs in runs.items():
        ok = [r for r in recs if r.get("status") == "ok"]
        if not ok:
            entries[key] = {"failed": (recs[0].get("error") or "failed").splitlines()[0]}
            continue
        cfg = ok[0]["config"]
        times = [fastest_epoch_s(r) for r in ok]
        denom = calib if cfg["strategy"] == "single" else single.get((cfg["dataset"], cfg["model"]))
        ratio = min(times) / denom if denom else None
        entries[key] = {"bytes": _bytes(ok[0]), "ratio": ratio,
                        "against": "calibration" if cfg["strategy"] == "single" else "single",
                        "spread": (max(times) - min(times)) / min(times) if min(times) > 0 else 0.0,
                        "epoch_s": min(times)}
    return entries


def compare(baseline: dict[str, Any], current: dict[str, Any], margin: float = DEFAULT_MARGIN,
            margins: dict[str, float] | None = None) -> tuple[list[tuple[str, ...]], bool]:
    """Rows (entry, metric, baseline, current, change, verdict) and whether anything FAILed."""
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
        m = (margins or {}).get(key, b.get("margin", margin))
        if b.get("ratio") and c.get("ratio"):
            r = c["ratio"] / b["ratio"]
            verdict = "FAIL" if r > m else ("WIN" if r < 1 / m else "ok")
            failed |= verdict == "FAIL"
            rows.append((key, f"time/{c['against']}", f"{b['ratio']:.3f}", f"{c['ratio']:.3f}",
                         f"{r:.2f}x (margin {m}, spread {c['spread']:.0%})", verdict))
    return rows, failed


def table(rows: list[tuple[str, ...]], only_moved: bool = False) -> str:
    """Fixed-width table; ``only_moved`` drops the ok rows."""
    head = ("entry", "metric", "baseline", "current", "change", "verdict")
    rows = [r for r in rows if not only_moved or r[-1] != "ok"]
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
