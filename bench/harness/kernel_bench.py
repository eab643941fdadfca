"""Every aggregation backend on this machine: CPU seconds of one forward + backward SpMM, per graph and width.

    python -m graphpar.bench.kernel_bench [--datasets rmat-arxiv,cora] [--widths 16,64,128,256] [--repeat 5]
    make bench-kernels

A step is what training does per aggregation: ``y = Â x`` and the backward ``Âᵀ g`` (GCN normalisation,
self-loops). Backends, each interleaved with the others in every round so a slow spell of the shared machine
hits all alike: ``dgl`` (DGL's gspmm ``u_mul_e_sum``), ``torch`` (torch.sparse CSR, int64 indices, MKL),
``torch-rcm`` and ``torch-degree`` (the same CSR on vertices renumbered once by reverse Cuthill-McKee or by
descending in-degree, for cache locality), ``dgl-rcm`` (gspmm on the RCM order) and ``index-add`` (gather the
source rows, scale, ``index_add_`` into destinations: the segment path). Renumbering is paid once at load
and not in the step. The figure per cell is the median over rounds of the process CPU seconds per step
(all threads: DGL's OpenMP pool included), with the min-max spread; wall seconds beside. Prints a markdown
table (the README's kernel table) and the fastest backend per width.
"""
from __future__ import annotations

import os

if __name__ == "__main__":  # run as a program: before torch and DGL load, their OpenMP pools at one thread
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import statistics
import sys
import time

import torch
from torch import Tensor

from graphpar.strategies.kernels import add_self_loops, gcn_weights, make_aggregator

BACKENDS = ("dgl", "torch", "torch-rcm", "torch-degree", "dgl-rcm", "index-add")


def rcm_order(src: Tensor, dst: Tensor, n: int) -> Tensor:
    """new -> old vertex ids by reverse Cuthill-McKee on the symmetrised graph (scipy)."""
    import numpy as np  # noqa: PLC0415
    import scipy.sparse as sp  # noqa: PLC0415
    from scipy.sparse.csgraph import reverse_cuthill_mckee  # noqa: PLC0415

    a = sp.coo_matrix((np.ones(src.numel(), dtype=np.int8), (dst.numpy(), src.numpy())), shape=(n, n)).tocsr()
    return torch.from_numpy(reverse_cuthill_mckee(a + a.T, symmetric_mode=True).astype(np.int64))


def degree_order(dst: Tensor, n: int) -> Tensor:
    """new -> old vertex ids by descending in-degree (hubs first, stable)."""
    return torch.argsort(torch.bincount(dst, minlength=n), descending=True, stable=True)


def renumber(src: Tensor, dst: Tensor, order: Tensor) -> tuple[Tensor, Tensor]:
    new_id = torch.empty_like(order)
    new_id[order] = torch.arange(order.numel())
    return new_id[src], new_id[dst]


def index_add_aggregator(src: Tensor, dst: Tensor, w: Tensor, n: int):
    """The segment path: ``out.index_add_(dst, w * x[src])``; autograd's backward is the gather's scatter."""
    wcol = w.unsqueeze(1)

    def agg(x: Tensor) -> Tensor:
        return x.new_zeros(n, x.shape[1]).index_add_(0, dst, x.index_select(0, src) * wcol)
    return agg


def build(backend: str, src: Tensor, dst: Tensor, w: Tensor, n: int):
    """(aggregator, permutation applied to x or None) for one backend."""
    base, _, reorder = backend.partition("-")
    if backend == "index-add":
        return index_add_aggregator(src, dst, w, n), None
    order = None
    if reorder:
        order = rcm_order(src, dst, n) if reorder == "rcm" else degree_order(dst, n)
        src, dst = renumber(src, dst, order)
    return make_aggregator(src, dst, w, n, n, base), order


def step_seconds(agg, x: Tensor, g: Tensor) -> tuple[float, float]:
    """(process CPU s, wall s) of one forward + backward aggregation."""
    xr = x.detach().requires_grad_(True)
    c, t = time.process_time(), time.perf_counter()
    agg(xr).backward(g)
    return time.process_time() - c, time.perf_counter() - t


def measure(dataset: str, widths: list[int], backends: list[str], repeat: int, seed: int = 0) -> list[dict]:
    from graphpar.datasets import load_dataset  # noqa: PLC0415

    graph = load_dataset(dataset)
    n = graph.num_nodes
    s, d = add_self_loops(graph.src, graph.dst, n)
    w = gcn_weights(s, d, n)
    aggs = {b: build(b, s, d, w, n) for b in backends}
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for width in widths:
        x, g = torch.randn(n, width, generator=gen), torch.randn(n, width, generator=gen)
        inputs = {b: (x, g) if order is None else (x[order].contiguous(), g[order].contiguous())
                  for b, (_, order) in aggs.items()}
        for b, (agg, _) in aggs.items():  # one untimed step each: allocator and thread pools warm
            step_seconds(agg, *inputs[b])
        cpu = {b: [] for b in backends}
        wall = {b: [] for b in backends}
        for _ in range(repeat):
            for b in backends:
                c, t = step_seconds(aggs[b][0], *inputs[b])
                cpu[b].append(c)
                wall[b].append(t)
        for b in backends:
            rows.append({"dataset": dataset, "nodes": n, "edges": int(s.numel()), "width": width, "backend": b,
                         "cpu_s": statistics.median(cpu[b]), "cpu_min": min(cpu[b]), "cpu_max": max(cpu[b]),
                         "wall_s": statistics.median(wall[b])})
    return rows


def table(rows: list[dict]) -> str:
    """Markdown: one row per (graph, width), one column per backend: median CPU ms (min-max) [median wall ms];
    the fastest by CPU in bold."""
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    out = ["| graph | width | " + " | ".join(backends) + " | fastest |", "|---|---|" + "---|" * (len(backends) + 1)]
    cells: dict[tuple, dict] = {}
    for r in rows:
        cells.setdefault((r["dataset"], r["width"]), {})[r["backend"]] = r
    for (ds, width), by in cells.items():
        best = min(by.values(), key=lambda r: r["cpu_s"])
        fmt = [f"{1e3 * r['cpu_s']:.1f} ({1e3 * r['cpu_min']:.1f}-{1e3 * r['cpu_max']:.1f}) [{1e3 * r['wall_s']:.0f}]"
               for r in
               (by[b] for b in backends)]
        fmt = [f"**{f}**" if b == best["backend"] else f for f, b in zip(fmt, backends)]
        out.append(f"| {ds} | {width} | " + " | ".join(fmt) + f" | {best['backend']} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m graphpar.bench.kernel_bench", description=__doc__.split("\n")[0])
    p.add_argument("--datasets", default="rmat-arxiv,cora")
    p.add_argument("--widths", default="16,64,128,256")
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: CPU seconds of the work)")
    a = p.parse_args(argv)
    backends = [b for b in a.backends.split(",") if b]
    bad = [b for b in backends if b not in BACKENDS]
    try:
        widths = [int(x) for x in a.widths.split(",")]
    except ValueError:
        widths = []
    if bad or not widths or min(widths) < 1 or a.repeat < 1 or a.threads < 1:
        print(f"kernel_bench: pass --backends from {','.join(BACKENDS)}, --widths as positive integers, "
              f"--repeat and --threads >= 1 (got backends {bad or 'ok'}, widths {a.widths!r})", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    rows = []
    for ds in a.datasets.split(","):
        rows += measure(ds, widths, backends, a.repeat)
        print(f"# {ds} done", file=sys.stderr, flush=True)
    print(f"CPU ms per forward+backward aggregation, median (min-max) [median wall ms] over {a.repeat} interleaved "
          f"rounds, {a.threads} torch thread(s), OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
