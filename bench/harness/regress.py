"""CI regression gate: exact communication bytes and load-proof compute cost against a baseline.

    graphpar regress                      # make bench-ci: run results/ci_configs.yaml, compare with results/baseline.json
    graphpar regress --update             # make bench-baseline: write the current numbers as the baseline

Two tiers, chosen to move as little as possible with load on the machine or with the machine itself:
- exact: per entry (strategy @ dataset @ model @ P), per scope (setup/train/eval), per tag, per rank: op,
  calls, sent and received bytes. Machine-independent, so any change in either direction fails (a
  deliberate change is accepted by refreshing the baseline).
- compute per probe: per rank and timed epoch, the thread CPU seconds of the compute phases
  (aggregation, dense, layout, optimizer; ``strategies/phases.py``) divided by the thread CPU seconds of
  a fixed probe workload (``bench/probe.py``: one GCN layer over the whole graph with the reference's
  kernel) run right after that epoch in the same rank; per rank the median over the timed epochs, the
  slowest rank, the median over the interleaved ``rounds``. Numerator and denominator are measured
  seconds apart in one process under the same load on the same graph, so what slows one slows the
  other: a number of "probe-equivalents of work per epoch" that neither the machine's speed nor other
  jobs on the cores move much (README "CI regression" has the measurements). Judged against the
  baseline commit's own code measured now, interleaved, on this machine (``control.py``: the A/B run;
  stored numbers only where that commit cannot be rebuilt). Fails when it grew by more than ``margin``;
  a drop below 1/margin is reported as WIN.
The wall-time ratio (fastest timed epoch vs ``single``'s) is printed as advisory ("slower?" above 1.6x),
never a failure: load moves it.
Always writes ``results/baseline.proposed.json`` so a refresh is a reviewed copy.
"""
from __future__ import annotations

import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm import tqdm

from graphpar.datasets import load_dataset
from graphpar.strategies import TrainConfig, registered

from .. import metrics
from ..api import prepare, run_one
from ..errors import BAD_INPUT, UsageError
from ..files import replace_file
from ..metrics import SCOPES
from ..record import REPO_ROOT, build_record, environment, failed_record, git_sha
from ..results import env_fingerprint
from ..runtime.launcher import RunFailed
from ..runtime.loop import train_local
from ..runtime.probe import ENV as PROBE_ENV
from ..specs import load_ci_spec
from . import control

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
            except BAD_INPUT as e:
                skipped.append(f"{entry_key(cfg.as_dict())}: {e}")
                continue
            configs.append(cfg.as_dict())
    return configs, skipped


def cpu_per_probe(rec: dict[str, Any]) -> float:
    """Compute CPU per probe CPU of one run's slowest rank (per rank: the median over its timed epochs)."""
    values = [r["compute_per_probe"] for r in metrics.rank_medians(rec)]
    return max(values) if values else float("nan")


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
    """Run every configuration ``rounds`` times interleaved, each rank timing the probe after every epoch;
    returns (records, skipped)."""
    probe_before = os.environ.get(PROBE_ENV)
    os.environ[PROBE_ENV] = "1"  # inherited by the launched ranks; read by the in-process reference too
    if spec.get("threads"):  # same threads per rank for every run and the probe: the rank's main
        os.environ["GRAPHPAR_THREADS"] = str(spec["threads"])  # thread then does all its compute (thread CPU)
        os.environ["OMP_NUM_THREADS"] = str(spec["threads"])
        torch.set_num_threads(int(spec["threads"]))
    configs, skipped = ci_configs(spec)
    records = []
    bar = tqdm(total=len(configs) * spec["rounds"], desc="bench-ci", unit="run", disable=not progress)
    try:
        for _ in range(spec["rounds"]):
            for cfg in configs:
                try:
                    records.append(runner(cfg))
                except (RunFailed, RuntimeError) as e:
                    records.append(failed_record(cfg, str(e)))
                bar.update()
    finally:
        bar.close()
        if probe_before is None:
            os.environ.pop(PROBE_ENV, None)
        else:
            os.environ[PROBE_ENV] = probe_before
    return records, skipped


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


def measure(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Entries of a CI run: exact bytes per tag and rank; compute CPU per probe CPU, median over the
    rounds (the gate); fastest-epoch wall ratio against ``single`` on the same graph and model (advisory)."""
    runs: dict[str, list[dict]] = {}
    for rec in records:
        runs.setdefault(entry_key(rec["config"]), []).append(rec)
    single_wall = {}
    for recs in runs.values():
        ok = [r for r in recs if r.get("status") == "ok"]
        if ok and ok[0]["config"]["strategy"] == "single":
            single_wall[(ok[0]["config"]["dataset"], ok[0]["config"]["model"])] = min(
                metrics.fastest_epoch_s(r) for r in ok)
    entries: dict[str, Any] = {}
    for key, recs in runs.items():
        ok = [r for r in recs if r.get("status") == "ok"]
        if not ok:
            entries[key] = {"failed": (recs[0].get("error") or "failed").splitlines()[0]}
            continue
        cfg = ok[0]["config"]
        rounds = [cpu_per_probe(r) for r in ok]
        value = statistics.median(rounds)
        wall = min(metrics.fastest_epoch_s(r) for r in ok)
        wall_den = single_wall.get((cfg["dataset"], cfg["model"]))
        entries[key] = {"bytes": _bytes(ok[0]), "cpu_per_probe": value, "cpu_per_probe_rounds": rounds,
                        "cpu_spread": (max(rounds) - min(rounds)) / value if value > 0 else 0.0,
                        "wall_ratio": wall / wall_den if wall_den else None, "epoch_s": wall,
                        "cpu_compute_s": statistics.median(metrics.summary(r)["cpu_compute_s_max"] for r in ok)}
    return entries


def merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Entries measured one round per process (``rounds`` of them) as one set: per entry the CPU-per-probe
    median over the rounds that finished, bytes of the first, fastest epoch, median compute CPU; failed
    where no round finished."""
    merged: dict[str, Any] = {}
    for key in dict.fromkeys(k for r in rounds for k in r):
        ok = [r[key] for r in rounds if key in r and "failed" not in r[key]]
        if not ok:
            merged[key] = next(r[key] for r in rounds if key in r)
            continue
        values = [v for e in ok for v in e.get("cpu_per_probe_rounds") or [e["cpu_per_probe"]]]
        value = statistics.median(values)
        walls = [e["wall_ratio"] for e in ok if e.get("wall_ratio")]
        merged[key] = {"bytes": ok[0]["bytes"], "cpu_per_probe": value, "cpu_per_probe_rounds": values,
                       "cpu_spread": (max(values) - min(values)) / value if value > 0 else 0.0,
                       "wall_ratio": statistics.median(walls) if walls else None,
                       "epoch_s": min(e["epoch_s"] for e in ok),
                       "cpu_compute_s": statistics.median(e["cpu_compute_s"] for e in ok)}
    return merged


def compare(baseline: dict[str, Any], current: dict[str, Any], margin: float = DEFAULT_MARGIN,
            margins: dict[str, float] | None = None, control: dict[str, Any] | None = None,
            control_name: str = "control", gated: bool = True) -> tuple[list[tuple[str, ...]], bool]:
    """Rows (entry, metric, baseline, current, change, verdict) and whether anything FAILed.

    Bytes always compare with the stored baseline (exact, machine-independent). Compute CPU per probe
    compares with ``control`` when given (the baseline's code measured now on this machine, interleaved:
    the A/B gate) and else with the stored numbers; FAIL above ``margin``, WIN below 1/margin. With
    ``gated`` False (the code is the baseline's own) the compute rows are information only. The wall
    ratio is advisory (``slower?`` above ``WALL_ADVISORY``, never a failure): load moves it."""
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
        ref = b if control is None else control.get(key) or {}
        against = "" if control is None else f", vs {control_name}"
        m = (margins or {}).get(key, margin)
        if control is not None and (not ref or "failed" in ref):
            rows.append((key, "cpu/probe", "-", f"{c['cpu_per_probe']:.3f}",
                         f"{control_name}: {(ref.get('failed') or 'no such entry')[:40]}", "info"))
        elif ref.get("cpu_per_probe") and c.get("cpu_per_probe"):
            r = c["cpu_per_probe"] / ref["cpu_per_probe"]
            verdict = ("FAIL" if r > m else ("WIN" if r < 1 / m else "ok")) if gated else "info"
            failed |= verdict == "FAIL"
            note = f"margin {m}" if gated else "same code: not gated"
            rows.append((key, "cpu/probe", f"{ref['cpu_per_probe']:.3f}", f"{c['cpu_per_probe']:.3f}",
                         f"{r:.2f}x ({note}, spread {c['cpu_spread']:.0%}{against})", verdict))
        elif not b.get("cpu_per_probe"):
            rows.append((key, "baseline", "old format", "-", "refresh it: make bench-baseline", "FAIL"))
            failed = True
        if ref.get("wall_ratio") and c.get("wall_ratio"):
            r = c["wall_ratio"] / ref["wall_ratio"]
            rows.append((key, "wall/single", f"{ref['wall_ratio']:.3f}", f"{c['wall_ratio']:.3f}",
                         f"{r:.2f}x (advisory{against})", "slower?" if r > WALL_ADVISORY else "info"))
    return rows, failed


def table(rows: list[tuple[str, ...]], only_moved: bool = False) -> str:
    """Fixed-width table; ``only_moved`` drops the ok rows."""
    head = ("entry", "metric", "baseline", "current", "change", "verdict")
    rows = [r for r in rows if not only_moved or r[-1] not in ("ok", "info")]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)] if rows else [len(h) for h in head]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows])


def baseline_doc(entries: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """The baseline file: entries plus what they were measured with; ``code_sha`` (full, only when the
    code was committed) is the commit CI rebuilds as the control (``harness/control.py``)."""
    env = environment()
    sha = control.head_sha(REPO_ROOT)
    committed = sha is not None and not control.code_dirty(REPO_ROOT)
    return {"schema": "graphpar.baseline/3", "git_sha": git_sha(), "code_sha": sha if committed else None,
            "env_fingerprint": env_fingerprint(env),
            "date": time.strftime("%Y-%m-%d"), "margin": spec.get("margin", DEFAULT_MARGIN),
            "datasets": spec["datasets"], "fixed": spec["fixed"], "entries": entries}


def run_ab(spec_path: Path, control_root: Path, rounds: int, out: str | None = None,
           announce: Callable[[str], None] = print) -> tuple[dict[str, Any], dict[str, Any]]:
    """The A/B gate's measurements: ``rounds`` interleaved rounds (control, current, then current,
    control, ...), each side one round in a fresh process; returns (current entries, control entries).
    Raises ``control.SideFailed`` naming the side that did not finish."""
    with tempfile.TemporaryDirectory(prefix="graphpar-ab-") as tmp:
        round_spec = control.write_round_spec(spec_path, Path(tmp) / "round.yaml")
        measured: dict[str, list[dict[str, Any]]] = {"control": [], "current": []}
        for i in range(rounds):
            for side in ("control", "current") if i % 2 == 0 else ("current", "control"):
                announce(f"bench-ci: round {i + 1}/{rounds}, {side} code")
                out_json = Path(tmp) / f"{side}{i}.json"
                try:
                    if side == "control":
                        entries = control.run_side(round_spec, out_json, control_root, cwd=control_root)
                    else:
                        entries = control.run_side(round_spec, out_json, None, cwd=REPO_ROOT,
                                                   extra=["--out", str(Path(out).resolve())] if out else None)
                except control.SideFailed as e:
                    raise control.SideFailed(f"{side} code: {e}", side) from None
                measured[side].append(entries)
    return merge_rounds(measured["current"]), merge_rounds(measured["control"])


def check_baseline(doc: Any, path: str) -> None:
    """A baseline to gate against: a JSON object whose ``entries`` maps each CI configuration to its numbers
    (an empty or foreign object would pass every check: UsageError)."""
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or not entries or not all(isinstance(e, dict) for e in entries.values()):
        raise UsageError(f"{path}: not a baseline (no entries to compare with); restore it from git or write a new "
                         "one with graphpar regress --update (make bench-baseline)")


def write_json(doc: dict[str, Any], path: Path) -> None:
    """``doc`` as indented JSON, written whole through an exclusive temporary (``files.replace_file``)."""
    replace_file(path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
