"""Memory before a scale run: an analytic peak-RSS estimate per rank and strategy, and ``make bench-scale``.

    python -m graphpar.bench.scale [--dataset rmat-products] [--workers 2,4] [--budget-gb 10] [--dry-run]
    make bench-scale

Every strategy's rank loads the whole graph today (features, both edge lists, labels, masks), then builds
what its method needs. The estimate adds, per rank (float32 4 bytes, int64 8; E' = E + N aggregation edges
for gcn/decoupled's self-loops):
- ``base``: the interpreter with torch and DGL imported (0.45 GB measured here);
- ``graph``: N*F*4 + 2*E*8 + N*11;
- ``tensor``: the aggregation edge list with weights (E'*20), the CSR sort's transients (E'*24), both CSR
  copies (2*(E'*12 + 8N)), the dense activations of rank 0 (``tensor.dense_bytes_for``, the figure its
  records report as ``model_peak_bytes``);
- ``partition``: the global aggregation edges (E'*20) every rank derives its view from, the view (E'/P*20),
  its CSR pair (2*E'/P*12), activations over owned + halo rows (halo bounded by min(N - N/P, E/P));
- ``pipeline``: the relabelled aggregation edges (E'*20), the stage's CSR pair (2*E'*12), per stage layer
  the row buffers X, G_fresh, G_late, G_hist (4*N*d*4) and the activations.
A run is refused up front, with the estimate, when P ranks on this host would need more than the budget
(default 10 GB: the share of the 24 GB machine a helper may take). What fits runs ``graphpar run`` for 2
epochs and prints the measured peak RSS per rank beside the estimate.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ..memory import BASE_BYTES, GB, STRATEGIES, estimate, part_estimate  # noqa: F401  (the memory model)


def graph_counts(dataset: str) -> dict[str, int]:
    """nodes, edges, features, classes: from an R-MAT spec without building it, else from the loaded graph."""
    from graphpar.datasets.synthetic import PRESETS  # noqa: PLC0415

    spec = PRESETS.get(dataset, dataset)
    if spec.startswith("rmat:"):
        kv = dict(p.split("=", 1) for p in spec[5:].split(","))
        return {"nodes": int(kv["nodes"]), "edges": int(kv["edges"]), "features": int(kv.get("feat", 128)),
                "classes": int(kv.get("classes", 16))}
    from graphpar.datasets import load_dataset  # noqa: PLC0415

    s = load_dataset(dataset).summary()
    return {k: int(s[k]) for k in ("nodes", "edges", "features", "classes")}


def measured_peaks(out: Path) -> list[int]:
    """Per-rank peak RSS of the newest record in a runs file."""
    rec = json.loads(out.read_text().strip().splitlines()[-1])
    return [int(w.get("peak_memory_bytes", 0)) for w in rec.get("workers", [])]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m graphpar.bench.scale", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="rmat-products")
    p.add_argument("--workers", default="2,4")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--model", default="gcn")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--budget-gb", type=float, default=float(os.environ.get("GRAPHPAR_MEM_BUDGET_GB", 10)))
    p.add_argument("--dry-run", action="store_true", help="print the estimates, run nothing")
    a = p.parse_args(argv)
    strategies = [s for s in a.strategies.split(",") if s]
    try:
        workers = [int(w) for w in a.workers.split(",")]
    except ValueError:
        workers = []
    if not workers or min(workers) < 1 or any(s not in STRATEGIES for s in strategies) or a.budget_gb <= 0:
        print(f"scale: pass --workers as positive integers, --strategies from {','.join(STRATEGIES)} and "
              f"--budget-gb > 0", file=sys.stderr)
        return 2
    counts = graph_counts(a.dataset)
    print(f"{a.dataset}: {counts['nodes']:,} vertices, {counts['edges']:,} edges, {counts['features']} features; "
          f"budget {a.budget_gb:g} GB on this host")
    failed = 0
    for P in workers:
        for s in strategies:
            est = estimate(s, counts, P, a.model, a.hidden)
            host = est["total"] * P
            detail = ", ".join(f"{k} {v / GB:.2f}" for k, v in est.items() if k != "total")
            line = f"{s} P={P}: estimate {est['total'] / GB:.2f} GB per rank x {P} = {host / GB:.2f} GB ({detail})"
            if host > a.budget_gb * GB:
                print(f"{line}: REFUSED, above the {a.budget_gb:g} GB budget (raise --budget-gb or add hosts)")
                continue
            if a.dry_run:
                print(f"{line}: fits")
                continue
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "runs.jsonl"
                cmd = [sys.executable, "-m", "graphpar", "run", "--strategy", s, "--dataset", a.dataset,
                       "--workers", str(P), "--model", a.model, "--hidden", str(a.hidden), "--epochs",
                       str(a.epochs), "--out", str(out)]
                rc = subprocess.call(cmd, stdout=subprocess.DEVNULL)
                if rc != 0:
                    failed += 1
                    print(f"{line}: run failed (exit {rc})")
                    continue
                peaks = measured_peaks(out)
            print(f"{line}: measured peak RSS per rank {', '.join(f'{x / GB:.2f}' for x in peaks)} GB "
                  f"(max / estimate {max(peaks) / est['total']:.2f})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
