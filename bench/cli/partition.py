"""``graphpar partition``: the offline partition step, one file set per part (strategies/partitioning/parts_io.py).

    graphpar partition cora --parts 3 --out parts/cora-p3
    graphpar partition rmat-products --parts 4 --method random      # -> $GRAPHPAR_DATA/parts/rmat-products-p4-random
    graphpar run --strategy partition --dataset cora --workers 3 --partition-dir parts/cora-p3

Bad input (unknown method, METIS without DGL, --parts out of range, a dataset that does not load, an --out
that is a file or a folder of something else) is one line, exit 2, nothing written. A disk that fills while
the parts are written is one line, exit 1, and the folder has no manifest (never mistaken for a partition).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from graphpar.datasets import data_root
from graphpar.strategies.partitioning.partitioner import METHODS, check_method
from graphpar.strategies.partitioning.parts_io import MANIFEST, write_parts

from ..api import check_out_dir, load_graph
from ..errors import EXIT_FAIL, EXIT_OK, UsageError


def default_out(dataset: str, parts: int, method: str) -> Path:
    """``$GRAPHPAR_DATA/parts/<dataset>-p<P>-<method>`` (a spec's odd characters become ``_``)."""
    return data_root() / "parts" / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', dataset)}-p{parts}-{method}"


def cmd_partition(args: argparse.Namespace) -> int:
    if args.parts < 1:
        raise UsageError(f"--parts {args.parts} must be >= 1")
    check_method("--method", args.method, args.parts > 1)
    out = Path(args.out) if args.out else default_out(args.dataset, args.parts, args.method)
    check_out_dir(out, "--out")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise UsageError(f"--out {out} is a folder of other files (no {MANIFEST}); pass a new or empty folder")
    graph = load_graph(args.dataset)
    if args.parts > graph.num_nodes:
        raise UsageError(f"--parts {args.parts} exceeds the graph's {graph.num_nodes} vertices")
    try:
        m = write_parts(graph, args.dataset, args.parts, args.method, out, args.seed, bool(args.balance_edges),
                        log=lambda line: print(line, file=sys.stderr))
    except OSError as e:  # a full disk or a folder that became unwritable: no manifest, so never used half-written
        print(f"graphpar: error: cannot write {out} ({e.strerror or e}); free space or pass another --out, and run "
              "again", file=sys.stderr)
        return EXIT_FAIL
    q = m["quality"]
    print(f"{args.dataset}: {args.parts} parts by {args.method} in {out} (edge cut {q['edge_cut_fraction']:.1%}, "
          f"replication {q['replication_factor']:.2f}, {sum(f['bytes'] for f in m['files']) / 2**20:.1f} MiB)")
    print(f"use: graphpar run --strategy partition --dataset {args.dataset} --workers {args.parts} "
          f"--partition-dir {out}")
    return EXIT_OK


def add_command(sub, commands: dict) -> None:
    """Register ``graphpar partition`` on the CLI's subparsers."""
    p = sub.add_parser("partition", help="partition a graph offline: one file set per part, loaded per rank")
    p.add_argument("dataset", help="catalog name or spec (graphpar datasets)")
    p.add_argument("--parts", type=int, required=True, help="number of parts P (= --workers of the runs)")
    p.add_argument("--method", default="metis", help=f"vertex partitioner: {', '.join(METHODS)} (default metis)")
    p.add_argument("--out", default="", help="folder to write (default $GRAPHPAR_DATA/parts/DATASET-pP-METHOD)")
    p.add_argument("--seed", type=int, default=0, help="seed of --method random")
    p.add_argument("--balance-edges", type=int, choices=(0, 1), default=0, help="1 = METIS also balances in-edges")
    commands["partition"] = cmd_partition
