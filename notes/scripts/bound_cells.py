"""One line per ``graphpar parity`` JSON of a stale partition/pipeline cell: accuracy against the reference,
halo bytes against the exact mode, the bound's forced share, reads and drift (notes/staleness.md section 14).

    .venv/bin/python notes/scripts/bound_cells.py DIR/*/parity_*.json
"""
from __future__ import annotations

import json
import statistics
import sys


def row(path: str) -> str:
    """The cell's numbers, means over its seeds (bytes: per run, all ranks)."""
    d = json.load(open(path))
    sts = [r["staleness"] for r in d["runs"]["strategy"]]
    mean = lambda k: statistics.fmean(s.get(k, 0) for s in sts)
    ref = statistics.fmean(r["test_acc"] for r in d["runs"]["reference"])
    got = statistics.fmean(r["test_acc"] for r in d["runs"]["strategy"])
    opts = d["config"]["options"]
    line = (f"{d['config']['dataset']} {d['config']['strategy']} {opts} P={d['config']['workers']}: reference {ref:.3f}, "
            f"strategy {got:.3f}, mean diff {d['mean_diff_points']:+.1f}, worst vs worst {d['worst_gap_points']:+.1f}; ")
    if mean("exact_halo_bytes"):
        saved, exact = mean("saved_vs_exact_bytes"), mean("exact_halo_bytes")
        line += (f"halo sent {mean('halo_sent_bytes') / 1e6:.1f} MB vs exact {exact / 1e6:.1f} MB "
                 f"(saved {saved / exact:+.0%}); ")
    return line + (f"forced {mean('forced_share'):.1%} of stale decisions; stale reads {mean('stale_read_share'):.1%}, "
                   f"max drift {max(s['max_drift'] for s in sts):.2f}, flagged {sum(bool(s.get('drift_flagged')) for s in sts)}"
                   f"/{len(sts)}")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(row(p))
