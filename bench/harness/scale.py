"""``make bench-scale``: tensor, partition (one part per rank, from ``graphpar partition``) and pipeline on a
large graph at P=2,4, each run only where the analytic per-rank memory fits this host, refused up front
with the estimate otherwise.

    python -m graphpar.bench.harness.scale [--dataset rmat-products] [--workers 2,4] [--budget-gb 20] [--dry-run]
    make bench-scale

The memory model is ``bench/memory.py`` (every record carries it per rank beside the measured peak RSS).
``partition`` runs with ``--partition-dir``: its ranks never load the whole graph; the folder is written
first by ``graphpar partition DATASET --parts P --method random`` (METIS on 62M edges costs more time and
memory than this 2-core host has to spare; ``--method metis`` to change) unless it is there already, and
its estimate is exact per part (the manifest's owned, halo and in-edge counts). tensor and pipeline load
the whole graph on every rank; pipeline's vertex chunks use the same ``--method`` (``--chunk-order``).
A configuration runs when P x its per-rank estimate is within the budget:
``--budget-gb`` (default 20 of this 24 GB host) capped at what the host has available now minus 1 GB.
Each run appends its record to ``--out`` and prints epoch time and the measured peak RSS per rank beside
the estimate, one configuration at a time.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
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


def measured_peaks(out: Path) -> tuple[list[int], float]:
    """Per-rank peak RSS and median epoch seconds of the newest record in a runs file."""
    rec = json.loads(out.read_text().strip().splitlines()[-1])
    return [int(w.get("peak_memory_bytes", 0)) for w in rec.get("workers", [])], rec["summary"]["epoch_s"]


def available_bytes() -> int:
    """MemAvailable of this host (0 where /proc/meminfo is missing: then only the budget counts)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def part_folder(dataset: str, parts: int, method: str) -> Path:
    from graphpar.datasets import data_root  # noqa: PLC0415

    return data_root() / "parts" / f"{dataset.replace('/', '_').replace(':', '_')}-p{parts}-{method}"


def planned_parts(folder: Path, counts: dict[str, int], parts: int) -> list[dict[str, int]]:
    """Per-part counts: the manifest's where the folder exists, else a bound (N/P owned, halo <= E/P)."""
    manifest = folder / "manifest.json"
    if manifest.is_file():
        return json.loads(manifest.read_text())["files"]
    own = math.ceil(counts["nodes"] / parts)
    return [{"owned": own, "halo": min(counts["nodes"] - own, math.ceil(counts["edges"] / parts)) if parts > 1 else 0,
             "in_edges": math.ceil(counts["edges"] / parts)}] * parts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m graphpar.bench.harness.scale", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="rmat-products")
    p.add_argument("--workers", default="2,4")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--model", default="gcn")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--method", default="random", help="partitioner of the partition folders (random | metis)")
    p.add_argument("--budget-gb", type=float, default=float(os.environ.get("GRAPHPAR_MEM_BUDGET_GB", 20)))
    p.add_argument("--out", default="out/scale.jsonl", help="records of the runs (JSONL, appended)")
    p.add_argument("--dry-run", action="store_true", help="print the estimates, run nothing")
    a = p.parse_args(argv)
    strategies = [s for s in a.strategies.split(",") if s]
    try:
        workers = [int(w) for w in a.workers.split(",")]
    except ValueError:
        workers = []
    if not workers or min(workers) < 1 or any(s not in STRATEGIES for s in strategies) or a.budget_gb <= 0 \
            or a.method not in ("random", "metis", "contiguous"):
        print(f"scale: pass --workers as positive integers, --strategies from {','.join(STRATEGIES)}, "
              f"--method random|metis|contiguous and --budget-gb > 0", file=sys.stderr)
        return 2
    counts = graph_counts(a.dataset)
    print(f"{a.dataset}: {counts['nodes']:,} vertices, {counts['edges']:,} edges, {counts['features']} features "
          f"(whole graph {estimate('partition', counts, 1)['graph'] / GB:.2f} GB); budget {a.budget_gb:g} GB")
    failed = 0
    out = Path(a.out)
    for P in workers:
        for s in strategies:
            folder = part_folder(a.dataset, P, a.method) if s == "partition" else None
            if folder is not None:
                per_rank = [part_estimate(f, counts, a.model, a.hidden) for f in planned_parts(folder, counts, P)]
                est = max(per_rank, key=lambda e: e["total"])
                host = sum(e["total"] for e in per_rank)
            else:
                est = estimate(s, counts, P, a.model, a.hidden)
                host = est["total"] * P
            detail = ", ".join(f"{k} {v / GB:.2f}" for k, v in est.items() if k != "total")
            name = f"{s} --partition-dir" if folder is not None else s
            line = f"{name} P={P}: estimate {est['total'] / GB:.2f} GB per rank, {host / GB:.2f} GB on the host ({detail})"
            avail = available_bytes()
            limit = min(a.budget_gb * GB, avail - GB) if avail else a.budget_gb * GB
            if host > limit:
                print(f"{line}: REFUSED, above {limit / GB:.1f} GB (budget {a.budget_gb:g} GB, available now "
                      f"{avail / GB:.1f} GB); raise --budget-gb, free memory or add hosts", flush=True)
                continue
            if a.dry_run:
                print(f"{line}: fits", flush=True)
                continue
            run = [sys.executable, "-m", "graphpar", "run", "--strategy", s, "--dataset", a.dataset, "--workers",
                   str(P), "--model", a.model, "--hidden", str(a.hidden), "--epochs", str(a.epochs), "--out", str(out),
                   "--timeout", "1800"]  # one rank's setup (a partition, a CSR of 62M edges) can exceed 300 s here
            if s == "pipeline":  # its chunks by the same partitioner as the partition folders (METIS took > 300 s)
                run += ["--chunk-order", a.method]
            if folder is not None:
                if not (folder / "manifest.json").is_file():
                    print(f"writing {folder} (graphpar partition, {a.method})", flush=True)
                    rc = subprocess.call([sys.executable, "-m", "graphpar", "partition", a.dataset, "--parts", str(P),
                                          "--method", a.method, "--out", str(folder)], stdout=subprocess.DEVNULL)
                    if rc != 0:
                        failed += 1
                        print(f"{line}: graphpar partition failed (exit {rc})", flush=True)
                        continue
                    per_rank = [part_estimate(f, counts, a.model, a.hidden) for f in planned_parts(folder, counts, P)]
                    est = max(per_rank, key=lambda e: e["total"])  # exact per part now that the manifest is there
                    line = f"{name} P={P}: estimate {est['total'] / GB:.2f} GB per rank (from the manifest)"
                run += ["--partition-dir", str(folder)]
            rc = subprocess.call(run, stdout=subprocess.DEVNULL)
            if rc != 0:
                failed += 1
                print(f"{line}: run failed (exit {rc})", flush=True)
                continue
            peaks, epoch_s = measured_peaks(out)
            print(f"{line}: epoch {epoch_s:.1f} s, measured peak RSS per rank {', '.join(f'{x / GB:.2f}' for x in peaks)}"
                  f" GB (max / estimate {max(peaks) / est['total']:.2f})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
