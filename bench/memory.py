"""Analytic peak memory per rank, the figure each record carries beside the rank's measured peak RSS.

    est = estimate("partition", {"nodes": N, "edges": E, "features": F, "classes": C}, workers=4)
    per_rank = rank_estimates(cfg_dict, graph_summary)   # bytes per rank, or None (no model for the strategy)

Float32 4 bytes, int64 8; E' = E + N aggregation edges for gcn/decoupled's self-loops (E for sage).
- ``base``: the interpreter with torch and DGL imported (0.45 GB measured here);
- ``graph``: the whole graph every rank loads (N*F*4 + 2*E*8 + N*11), except ``partition --partition-dir``;
- ``tensor``: the aggregation edge list with weights (E'*20), the CSR sort's transients (E'*24), both CSR
  copies (2*(E'*12 + 8N)), and the dense activations of rank 0 (``tensor.dense_bytes_for``) beyond the E'*44
  bytes of setup transients they reuse (measured on a quarter-size rmat-products at P=2: the peak is setup's);
- ``partition`` (in memory): the global aggregation edges (E'*20) every rank derives its view from, the view
  (E'/P*20), its CSR pair (2*E'/P*12), the owned rows' features, activations over owned + halo rows at the
  exchanged widths (``exchange_widths``; halo bounded by min(N - N/P, E/P));
- ``partition --partition-dir``: no graph, no global edges; per rank from the manifest (``part_estimate``):
  gcn/sage the larger of setup (the part's mapped in-edge indices E_r*8, the CSR pair being built,
  E_r'*16 with int32 indices, up to 128 MiB of transpose transients; from 4M entries only the forward CSR,
  E_r'*8, whose transpose SciPy reads) and training (that CSR, the owned rows' features n_o*F*4, the
  exchanged rows over owned + halo rows once per exchanged width, the hidden outputs twice over owned rows,
  the output layer's logits for one block of 65,536 rows); gat the part,
  the view with self-loops (E_r'*20), the CSR build's transients (E_r'*24) and pair, activations, summed;
- ``pipeline`` (``_pipeline_parts``, checked against measured peaks in the README): the relabelled copy of the
  graph (2*E*8 + N*11; stage 0 keeps its N*F*4 features), the aggregation edges (E'*20), the K per-chunk CSR
  pairs and evaluation's one-chunk pair (2 x 2*(E'*12 + 8N)) with that build's transients (E'*60), per stage
  layer the row buffers X, G_fresh, G_late, G_hist (4*N*d*4), the activations of the chunks in flight and of
  evaluation.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

GB = 1 << 30
BASE_BYTES = int(0.45 * GB)
STRATEGIES = ("tensor", "partition", "pipeline")


def graph_bytes(counts: dict[str, int]) -> int:
    """The whole graph as a rank would hold it: features, the (src, dst) int64 edge list, labels and masks
    (N*F*4 + 2*E*8 + N*11; rmat-products: 1.86 GiB)."""
    return counts["features"] * counts["nodes"] * 4 + 2 * counts["edges"] * 8 + counts["nodes"] * 11


def rank_target(counts: dict[str, int], workers: int, halo_rows: int) -> int:
    """What a ``partition`` rank's memory above its interpreter baseline should stay within: a P-th of the
    whole graph plus its halo's feature rows (``graph_bytes / P + halo_rows * F * 4``)."""
    return graph_bytes(counts) // max(workers, 1) + halo_rows * counts["features"] * 4


def rank_targets(cfg: dict[str, Any], summary: dict[str, Any], halo_rows: list[int | None]) -> list[int] | None:
    """``rank_target`` of every rank of a ``partition --partition-dir`` run (None elsewhere: other strategies and
    the in-memory path load the whole graph on every rank)."""
    if cfg.get("strategy") != "partition" or not (cfg.get("options") or {}).get("partition_dir") \
            or not all(k in summary for k in ("nodes", "edges", "features")):
        return None
    counts = {k: int(summary[k]) for k in ("nodes", "edges", "features")}
    p = int(cfg.get("workers", 1))
    return [rank_target(counts, p, int(h or 0)) for h in halo_rows]


def _dims(counts: dict[str, int], model: str, hidden: int, layers: int) -> list[int]:
    return [counts["features"]] + [hidden] * (layers - 1) + [counts["classes"]]


def part_estimate(part: dict[str, int], counts: dict[str, int], model: str = "gcn", hidden: int = 64,
                  layers: int = 2) -> dict[str, int]:
    """Bytes of one ``partition --partition-dir`` rank by part, from its manifest entry (owned, halo, in_edges).

    gcn/sage (the CSR built straight from the stored one): ``total`` = base + the larger of ``setup`` (the
    part's small arrays, its mapped in-edge indices, the CSR pair being built: forward col + values,
    transposed col + values, int32/float32, and the blocked transpose's ~64 bytes per entry of a block of
    2M entries: 128 MiB; none of the transposed side where ``SplitCSR.keeps_pair`` says SciPy reads the
    forward CSR instead) and ``train`` (the small arrays, the CSR(s), the features, the activations:
    exchanged rows over owned + halo rows once per width exchanged (aggregated in place, no [owned; halo]
    copy), the hidden layers' outputs twice over owned rows, one block of the output layer's logits and
    their gradient): the two never coexist. gat
    (an edge list for attention) keeps the view, its CSR build and pair, summed as before."""
    o, h, e, f = part["owned"], part["halo"], part["in_edges"], counts["features"]
    ea = e + (o if model != "sage" else 0)
    dims = _dims(counts, model, hidden, layers)
    small = (o + h) * 8 * 2 + h * 8 + (o + 1) * 8 + o * 11  # ids, degrees, send list, indptr, labels, masks
    if model in ("gcn", "sage"):
        from graphpar.strategies.kernels import SplitCSR  # noqa: PLC0415
        from graphpar.strategies.models import ModelSpec  # noqa: PLC0415
        from graphpar.strategies.partitioning.halo import exchange_widths  # noqa: PLC0415

        spec = ModelSpec.build(model, f, hidden, counts["classes"], layers)
        sent = sum(w for w, _ in exchange_widths(spec))
        pair = SplitCSR.keeps_pair(ea)  # else the transposed products read the forward CSR (no pair, no transpose)
        per_entry = 16 if pair else 8
        csr = ea * per_entry + (o + 1) * 4 + (o + h + 1) * 4
        block_logits = 2 * min(o, 1 << 16) * counts["classes"] * 4  # the output layer's loss by row blocks
        parts = {"base": BASE_BYTES,
                 "setup": small + e * 8 + ea * per_entry + (min(ea, 1 << 21) * 64 if pair else 0),
                 "train": small + csr + o * f * 4 + block_logits
                 + 4 * ((o + h) * sent + 2 * o * sum(dims[1:-1]))}
        parts["total"] = parts["base"] + max(parts["setup"], parts["train"])
        return parts
    parts = {"base": BASE_BYTES, "part": o * f * 4 + small + e * 8,
             "view": ea * 20, "csr_build": ea * 24, "csr": 2 * (ea * 12 + 8 * (o + h)),
             "dense": 2 * 4 * (o + h) * sum(dims) + 4 * o * f}
    parts["total"] = sum(parts.values())
    return parts


def estimate(strategy: str, counts: dict[str, int], workers: int, model: str = "gcn", hidden: int = 64,
             layers: int = 2, chunks: int = 4) -> dict[str, int]:
    """Bytes per rank by part (``total`` included) for one configuration that loads the whole graph per rank."""
    n, e, f, c, p = counts["nodes"], counts["edges"], counts["features"], counts["classes"], workers
    ea = e + n if model != "sage" else e
    dims = _dims(counts, model, hidden, layers)
    parts = {"base": BASE_BYTES, "graph": graph_bytes(counts)}
    if strategy == "tensor":  # the strategy's own analytic dense footprint (rank 0's blocks: the largest)
        from graphpar.strategies.models import ModelSpec  # noqa: PLC0415
        from graphpar.strategies.tensor.layout import Layout  # noqa: PLC0415
        from graphpar.strategies.tensor.strategy import dense_bytes_for  # noqa: PLC0415

        spec = ModelSpec.build(model, f, hidden, c, layers)
        dense = dense_bytes_for(spec, "decoupled" if model == "decoupled" else "naive", Layout(n, p, 0))
        # setup's edge list and sort transients are freed before the first epoch; the activations reuse them
        parts.update(edges=ea * 20, csr_build=ea * 24, csr=2 * (ea * 12 + 8 * n), dense=max(0, dense - ea * 44))
    elif strategy == "partition":
        own = math.ceil(n / p)
        halo = min(n - own, math.ceil(e / p)) if p > 1 else 0
        from graphpar.strategies.models import ModelSpec  # noqa: PLC0415
        from graphpar.strategies.partitioning.halo import exchange_widths  # noqa: PLC0415

        sent = sum(w for w, _ in exchange_widths(ModelSpec.build(model, f, hidden, c, layers)))
        parts.update(edges=ea * 20, view=math.ceil(ea / p) * 20, csr=2 * math.ceil(ea / p) * 12,
                     dense=4 * (2 * (own + halo) * sent + 2 * own * sum(dims[1:])) + 4 * own * f)
    elif strategy == "pipeline":
        parts.update(_pipeline_parts(n, e, ea, dims, p, chunks))
    else:
        raise ValueError(f"no memory model for strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    parts["total"] = sum(parts.values())
    return parts


def _pipeline_parts(n: int, e: int, ea: int, dims: list[int], stages: int, chunks: int) -> dict[str, int]:
    """A pipeline rank's bytes beyond the interpreter and the loaded graph, for its heaviest stage (every stage
    holds the whole graph): the relabelled copy of the graph ``--chunk-order`` makes (edges transient, the
    features kept by stage 0), the aggregation edges, the per-chunk CSR pairs plus the one-chunk pair evaluation
    builds (and that build's transients: unique, gathers, sort keys), the row buffers, and the activations of
    the chunks in flight (1F1B: up to min(S, K) contexts on the first stage, each holding the rows its
    aggregation reads, up to all N, at the layer's input width)."""
    layers = len(dims) - 1
    per_stage = math.ceil(layers / stages)
    k = max(chunks, 1)
    fly = min(stages, k)
    csr_pair = 2 * (ea * 12 + 8 * n)
    heaviest = 0
    for b in range(0, layers, per_stage):
        stage_layers = range(b, min(b + per_stage, layers))
        buffers = sum(4 * n * dims[i] * 4 for i in stage_layers if i > 0)
        flight = fly if b == 0 else 1
        dense = sum(flight * (n * dims[i] + 3 * -(-n // k) * dims[i + 1]) * 4 for i in stage_layers)
        dense += n * ((dims[b] if b > 0 else 0) + 2 * dims[stage_layers[-1] + 1]) * 4  # evaluation: received rows, output
        heaviest = max(heaviest, (n * dims[0] * 4 if b == 0 else 0) + buffers + dense)
    return {"relabel": 2 * e * 8 + n * 11, "edges": ea * 20,
            "csr": csr_pair * (2 if k > 1 else 1) + 3 * 8 * n, "csr_build": ea * 60, "stage": heaviest}


def rank_estimates(cfg: dict[str, Any], summary: dict[str, Any]) -> list[int] | None:
    """The analytic peak bytes of every rank of a run (config dict, graph summary), or None where this
    module has no model of the strategy (single, sampling, plug-ins)."""
    strategy, p = cfg.get("strategy"), int(cfg.get("workers", 1))
    if strategy not in STRATEGIES or not all(k in summary for k in ("nodes", "edges", "features", "classes")):
        return None
    counts = {k: int(summary[k]) for k in ("nodes", "edges", "features", "classes")}
    shape = (cfg.get("model", "gcn"), int(cfg.get("hidden", 16)), int(cfg.get("layers", 2)))
    opts = cfg.get("options") or {}
    folder = opts.get("partition_dir")
    if strategy == "partition" and folder:
        from graphpar.strategies.partitioning.parts_io import read_manifest  # noqa: PLC0415

        try:
            files = read_manifest(Path(folder))["files"]
        except (ValueError, KeyError):
            return None
        return [part_estimate(f, counts, *shape)["total"] for f in files]
    try:
        chunks = 1 if int(opts.get("staleness", 1)) == 0 else int(opts.get("pipe_chunks", 4))
        return [estimate(strategy, counts, p, *shape, chunks=chunks)["total"]] * p
    except (ValueError, ImportError):
        return None
