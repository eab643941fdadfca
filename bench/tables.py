"""Terminal tables of run records (the first thing a user sees after ``make bench``)."""
from __future__ import annotations

from typing import Any


def _mb(b: float) -> str:
    return f"{b / 1e6:.2f}"


def run_line(rec: dict[str, Any]) -> str:
    s, c, a = rec["summary"], rec["config"], rec["accuracy"]
    return (f"{c['strategy']} P={c['workers']} {c['model']} on {c['dataset']}: epoch {s['epoch_s'] * 1e3:.1f} ms "
            f"(compute {s['compute_s_mean'] * 1e3:.1f}, comm {s['comm_s_mean'] * 1e3:.1f}), "
            f"{_mb(s['bytes_per_epoch'])} MB/epoch, compute max/mean {s['compute_imbalance']:.2f}, "
            f"loss {s['final_loss']:.4f}, test acc {a['test_acc']:.3f}" + _staleness_note(rec))


def _staleness_note(rec: dict[str, Any]) -> str:
    """Stale modes, over all ranks: share of rows read from history, largest drift, DIVERGED with the reason."""
    from graphpar.strategies.staleness import combine  # noqa: PLC0415

    st = combine([w.get("staleness") for w in rec.get("workers", [])]) or rec.get("info", {}).get("staleness")
    if not st:
        return ""
    note = f", stale reads {st['stale_read_share']:.1%}, max drift {st['max_drift']:.2f}"
    return note + (f", DIVERGED: {st['diverged_reason']}" if st["diverged"] else "")


def _shape(c: dict[str, Any]) -> tuple:
    return c["dataset"], c["model"], c["layers"], c["hidden"]


def bench_table(records: list[dict[str, Any]]) -> str:
    """One row per record; speedup against ``single`` on the same graph and model shape when it ran."""
    base = {_shape(r["config"]): r["summary"]["epoch_s"] for r in records if r["config"]["strategy"] == "single"}
    head = (f"{'strategy':<10} {'model':<9} {'L':>2} {'P':>2} {'epoch ms':>9} {'speedup':>7} {'compute':>8} "
            f"{'comm':>7} {'MB/epoch':>9} {'cmp max/mean':>12} {'test acc':>8}")
    lines = [head, "-" * len(head)]
    for r in records:
        s, c = r["summary"], r["config"]
        ref = base.get(_shape(c))
        speed = f"{ref / s['epoch_s']:.2f}x" if ref else "-"
        lines.append(f"{c['strategy']:<10} {c['model']:<9} {c['layers']:>2} {c['workers']:>2} "
                     f"{s['epoch_s'] * 1e3:>9.1f} {speed:>7} {s['compute_s_mean'] * 1e3:>8.1f} "
                     f"{s['comm_s_mean'] * 1e3:>7.1f} {_mb(s['bytes_per_epoch']):>9} "
                     f"{s['compute_imbalance']:>12.2f} {r['accuracy']['test_acc']:>8.3f}")
    return "\n".join(lines)
