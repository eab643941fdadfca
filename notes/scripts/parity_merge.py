"""One ``graphpar parity`` result from runs of the same cell split over seed ranges (``--seed S --seeds N``).

    .venv/bin/python notes/scripts/parity_merge.py OUT.json part_seeds0-3.json part_seeds4-7.json

A slow cell (8 seeds at 4 layers) can run as two processes side by side on disjoint seeds; this joins their
per-seed runs and judges the union with parity's own ``Verdict`` (same tolerance and seed margin), so the
result is what one ``--seeds 8`` call would have printed. Refuses parts whose configs differ in anything but
the first seed, or whose seeds overlap.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def merge(parts: list[dict]) -> dict:
    from graphpar.bench.harness.parity import Verdict  # noqa: PLC0415  (the verdict parity prints)

    def cfg(d: dict) -> dict:
        return {k: v for k, v in d["config"].items() if k != "seed"}

    if any(cfg(p) != cfg(parts[0]) for p in parts):
        raise SystemExit("parity_merge: the parts ran different configurations; merge only seed ranges of one cell")
    seeds = [s for p in parts for s in p["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"parity_merge: seeds overlap ({sorted(seeds)})")
    order = sorted(range(len(seeds)), key=seeds.__getitem__)
    runs = {k: [r for p in parts for r in p["runs"][k]] for k in ("reference", "strategy")}
    runs = {k: [v[i] for i in order] for k, v in runs.items()}
    v = Verdict([r["test_acc"] for r in runs["reference"]], [r["test_acc"] for r in runs["strategy"]])
    config = dict(parts[0]["config"], seed=min(seeds))
    return {"config": config, "seeds": sorted(seeds), "runs": runs, "mean_diff_points": v.mean_diff,
            "worst_gap_points": v.worst_gap, "passed": v.passed, "merged_from": len(parts), "lines": v.lines()}


if __name__ == "__main__":
    out, *paths = sys.argv[1:]
    merged = merge([json.loads(Path(p).read_text()) for p in paths])
    Path(out).write_text(json.dumps(merged, indent=1))
    print("\n".join(merged["lines"]))
