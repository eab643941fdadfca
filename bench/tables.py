"""Terminal tables of run records (the first thing a user sees after ``make bench``).

Every number comes from ``metrics.summary`` (the same derivation as the results tables and figures);
repeats of a configuration (``--repeat N``) become one row: median, and min-max over the repeats.
"""
from __future__ import annotations

from typing import Any

from graphpar.strategies.phases import PHASES
from graphpar.strategies.staleness import combine

from . import metrics

_SHORT = (("aggregation", "agg"), ("dense", "nn"), ("layout", "lay"), ("optimizer", "opt"))


def _mb(b: float) -> str:
    return f"{b / 1e6:.2f}"


def phase_split(s: dict[str, Any]) -> str:
    """Compact per-phase CPU split of compute, e.g. ``agg 41 nn 52 lay 3 opt 4`` (% of compute CPU)."""
    total = sum(s.get(f"phase.{p}.cpu_s", 0.0) for p, _ in _SHORT)
    if total <= 0:
        return "-"
    return " ".join(f"{short} {100 * s[f'phase.{p}.cpu_s'] / total:.0f}" for p, short in _SHORT)


def run_line(rec: dict[str, Any]) -> str:
    s, c, a = metrics.summary(rec), rec["config"], rec["accuracy"]
    return (f"{c['strategy']} P={c['workers']} {c['model']} on {c['dataset']}: epoch {s['epoch_s'] * 1e3:.1f} ms "
            f"(compute {s['compute_s'] * 1e3:.1f}, comm {s['comm_s'] * 1e3:.1f}, idle {s['idle_s'] * 1e3:.1f}; "
            f"compute CPU {s['cpu_compute_s'] * 1e3:.1f} ms: {phase_split(s)} %), "
            f"{_mb(s['bytes_per_epoch'])} MB/epoch, compute max/mean {s['compute_max_over_mean']:.2f}, "
            f"loss {s['final_loss']:.4f}, test acc {a['test_acc']:.3f}" + memory_note(s) + staleness_note(rec))


def memory_note(s: dict[str, Any]) -> str:
    """Largest per-rank peak RSS, beside the analytic estimate of that footprint where there is one."""
    if not s.get("peak_memory_bytes_max"):
        return ""
    est = s.get("memory_estimate_bytes_max")
    note = f", peak RSS {s['peak_memory_bytes_max'] / 2**30:.2f} GiB/rank" + \
        (f" (estimate {est / 2**30:.2f})" if est else "")
    if s.get("peak_above_baseline_bytes_max") and s.get("memory_over_target_max"):  # partition: vs a P-th + halo
        note += (f", {s['peak_above_baseline_bytes_max'] / 2**30:.2f} GiB above the interpreter, "
                 f"{s['memory_over_target_max']:.2f}x the target (graph/P + halo rows)")
    return note


def staleness_note(rec: dict[str, Any]) -> str:
    """Stale modes, over all ranks: share of rows read from history, largest drift, DIVERGED with the reason."""
    st = combine([w.get("staleness") for w in rec.get("workers", [])]) or rec.get("info", {}).get("staleness")
    if not st:
        return ""
    note = f", stale reads {st['stale_read_share']:.1%}, max drift {st['max_drift']:.2f}" + bound_note(st)
    return note + (f", DIVERGED: {st['diverged_reason']}" if st["diverged"] else "")


def bound_note(st: dict[str, Any]) -> str:
    """Partition's stale halo: layer-epochs refreshed (and how many the drift bound forced), halo bytes saved
    against the exact mode (negative: it sent more), and the drift flag's one line."""
    if "bound" not in st:
        return ""
    done = st["refreshed_layer_epochs"]
    note = (f", refreshed {done} of {done + st['stale_layer_epochs']} {st.get('refresh_unit', 'layer-epochs')}"
            + (f" ({st['forced_refreshes']} forced by the drift bound {st['bound']:g})" if st["bound"] else
               " (fixed K)")
            + (f", halo {_mb(st['saved_vs_exact_bytes'])} MB saved vs exact" if st["exact_halo_bytes"] else ""))
    return note + (f", NOTE: {st['drift_flag_reason']}" if st.get("drift_flagged") else "")


def _shape(c: dict[str, Any]) -> tuple:
    return c["dataset"], c["model"], c["layers"], c["hidden"]


def bench_table(records: list[dict[str, Any]]) -> str:
    """One row per configuration (its repeats pooled: median epoch time, min-max over the repeats);
    speedup against ``single`` on the same graph and model shape when it ran."""
    groups = metrics.repeats(records)
    rows = []
    for runs in groups.values():
        sums = [metrics.summary(r) for r in runs]
        epoch = metrics.spread([s["epoch_s"] for s in sums])
        mid = min(range(len(sums)), key=lambda i: abs(sums[i]["epoch_s"] - epoch["median"]))
        rows.append((runs[-1], sums[mid], epoch, len(runs)))
    base = {_shape(r["config"]): e["median"] for r, _, e, _ in rows if r["config"]["strategy"] == "single"}
    head = (f"{'strategy':<10} {'model':<9} {'L':>2} {'P':>2} {'n':>2} {'epoch ms':>9} {'min-max ms':>13} "
            f"{'speedup':>7} {'compute':>8} {'comm':>7} {'CPU ms':>7} {'CPU % agg/nn/lay/opt':>22} "
            f"{'MB/epoch':>9} {'cmp max/mean':>12} {'test acc':>8}")
    lines = [head, "-" * len(head)]
    for r, s, e, n in rows:
        c = r["config"]
        ref = base.get(_shape(c))
        speed = f"{ref / e['median']:.2f}x" if ref else "-"
        rng = f"{e['min'] * 1e3:.0f}-{e['max'] * 1e3:.0f}" if n > 1 else "-"
        split = "/".join(x for i, x in enumerate(phase_split(s).split()) if i % 2) or "-"
        lines.append(f"{c['strategy']:<10} {c['model']:<9} {c['layers']:>2} {c['workers']:>2} {n:>2} "
                     f"{e['median'] * 1e3:>9.1f} {rng:>13} {speed:>7} {s['compute_s'] * 1e3:>8.1f} "
                     f"{s['comm_s'] * 1e3:>7.1f} {s['cpu_compute_s'] * 1e3:>7.1f} {split:>22} "
                     f"{_mb(s['bytes_per_epoch']):>9} {s['compute_max_over_mean']:>12.2f} "
                     f"{r['accuracy']['test_acc']:>8.3f}")
    return "\n".join(lines)


def compare_runs(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Per-phase difference of two runs of the same configuration (``graphpar compare A.jsonl B.jsonl``):
    wall and CPU seconds per epoch (mean over ranks of per-rank medians), B relative to A."""
    sa, sb = metrics.summary(a), metrics.summary(b)

    def change(x: float, y: float) -> str:
        return f"{(y / x - 1) * 100:+.0f}%" if x > 0 else ("=" if y == x else "new")

    head = f"{'ms per epoch':<20} {'A wall':>9} {'B wall':>9} {'change':>7}   {'A CPU':>9} {'B CPU':>9} {'change':>7}"
    lines = [head, "-" * len(head)]
    for p in PHASES:
        wa, wb = sa[f"phase.{p}.wall_s"], sb[f"phase.{p}.wall_s"]
        ca, cb = sa[f"phase.{p}.cpu_s"], sb[f"phase.{p}.cpu_s"]
        lines.append(f"{p:<20} {wa * 1e3:>9.2f} {wb * 1e3:>9.2f} {change(wa, wb):>7}   "
                     f"{ca * 1e3:>9.2f} {cb * 1e3:>9.2f} {change(ca, cb):>7}")
    for key, label in (("idle_s", "idle (barrier)"), ("epoch_s", "epoch (max rank)")):
        lines.append(f"{label:<20} {sa[key] * 1e3:>9.2f} {sb[key] * 1e3:>9.2f} {change(sa[key], sb[key]):>7}")
    lines.append(f"{'compute CPU':<20} {'':>9} {'':>9} {'':>7}   {sa['cpu_compute_s'] * 1e3:>9.2f} "
                 f"{sb['cpu_compute_s'] * 1e3:>9.2f} {change(sa['cpu_compute_s'], sb['cpu_compute_s']):>7}")
    lines.append(f"bytes per epoch: A {sa['bytes_per_epoch']:,.0f}, B {sb['bytes_per_epoch']:,.0f} "
                 f"({change(sa['bytes_per_epoch'], sb['bytes_per_epoch'])})")
    return "\n".join(lines)
