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
            f"loss {s['final_loss']:.4f}, test acc {a['test_acc']:.3f}")


def bench_table(records: list[dict[str, Any]]) -> str:
    """One row per record; speedup against ``single`` on the same dataset and model when it ran."""
    base = {}
    for r in records:
        if r["config"]["strategy"] == "single":
            base[(r["config"]["dataset"], r["config"]["model"])] = r["summary"]["epoch_s"]
    head = (f"{'strategy':<10} {'P':>2} {'epoch ms':>9} {'speedup':>7} {'compute':>8} {'comm':>7} "
            f"{'MB/epoch':>9} {'cmp max/mean':>12} {'test acc':>8}")
    lines = [head, "-" * len(head)]
    for r in records:
        s, c = r["summary"], r["config"]
        ref = base.get((c["dataset"], c["model"]))
        speed = f"{ref / s['epoch_s']:.2f}x" if ref else "-"
        lines.append(f"{c['strategy']:<10} {c['workers']:>2} {s['epoch_s'] * 1e3:>9.1f} {speed:>7} "
                     f"{s['compute_s_mean'] * 1e3:>8.1f} {s['comm_s_mean'] * 1e3:>7.1f} {_mb(s['bytes_per_epoch']):>9} "
                     f"{s['compute_imbalance']:>12.2f} {r['accuracy']['test_acc']:>8.3f}")
    return "\n".join(lines)
