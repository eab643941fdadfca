"""Markdown rows of the README's parity table from ``graphpar parity`` numbers (its ``.json`` files).

    .venv/bin/python notes/scripts/parity_rows.py results/scratch/parity/*/parity_*.json

One row per file: graph, mode, P, layers, reference and strategy test accuracy per seed with their means, the
difference of the means, strategy's worst seed vs the reference's worst (points), stale-read share and largest
drift over the seeds, whether any seed counts as diverged (today's ``staleness`` criteria re-applied to the stored
loss curves), and the verdict.
"""

from __future__ import annotations

import json
import statistics
import sys

from graphpar.strategies.staleness import above_reference, divergence  # the current criteria, re-applied


def row(path: str) -> str:
    d = json.loads(open(path).read())
    cfg, runs = d["config"], d["runs"]
    ref = [r["test_acc"] for r in runs["reference"]]
    got = [r["test_acc"] for r in runs["strategy"]]
    opts = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in cfg["options"].items())
    st = [r["staleness"] for r in runs["strategy"] if r.get("staleness")]
    share = max((s["stale_read_share"] for s in st), default=0.0)
    drift = max((s["max_drift"] for s in st), default=0.0)
    div = any(
        divergence(g["losses"]) or above_reference(g["losses"], r["losses"]) for g, r in zip(runs["strategy"], runs["reference"])
    )

    def accs(xs: list[float]) -> str:
        return ", ".join(f"{x:.3f}" for x in xs)

    return (
        f"| {cfg['dataset']} | {cfg['strategy']} `{opts}` | {cfg['workers']} | {cfg['layers']} | {accs(ref)} | "
        f"{statistics.fmean(ref):.3f} | {accs(got)} | {statistics.fmean(got):.3f} | {d['mean_diff_points']:+.1f} | "
        f"{d['worst_gap_points']:+.1f} | {share:.1%}, {drift:.2f} | {'yes' if div else 'no'} | "
        f"{'pass' if d['passed'] else '**FAIL**'} |"
    )


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(row(p))
