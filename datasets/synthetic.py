"""Seeded R-MAT power-law graphs (Graph500's generator) with labels that depend on structure and features.

    graphpar run --dataset rmat:nodes=100000,edges=1000000,feat=64,classes=10,seed=0 ...
    graphpar run --dataset rmat-arxiv ...     (presets of OGB's sizes: rmat-arxiv, rmat-products)

Structure: each edge picks a quadrant of the adjacency matrix log2(N) times with probabilities
(a, b, c, d) = (0.57, 0.19, 0.19, 0.05); ids >= N are rejected; self-loops and duplicates are dropped and
topped up until exactly E directed edges remain; vertex ids are then permuted (as Graph500 does) so
that degree does not follow id. Labels: each vertex has a latent community (the contiguous id block of
its pre-permutation id, which R-MAT's recursion makes structurally dense); its label is the community
most common among itself and its in-neighbours, and its features are a noisy centroid of its own
community. So neither features alone nor structure alone give the label: accuracy means something.
Same spec, same graph, bit for bit (numpy's PCG64 with the spec's seed).
"""
from __future__ import annotations

import math
import os
import re

import numpy as np
import torch

from .graph import GraphData, random_split

RMAT_PROBS = (0.57, 0.19, 0.19, 0.05)
PRESETS = {
    "rmat-arxiv": "rmat:nodes=169343,edges=1166243,feat=128,classes=40,seed=0",
    "rmat-products": "rmat:nodes=2449029,edges=61859140,feat=100,classes=47,seed=0",
}
_FIELDS = {"nodes": int, "edges": int, "feat": int, "classes": int, "seed": int, "noise": float}
_DEFAULTS = {"feat": 64, "classes": 8, "seed": 0, "noise": 1.0}
# Beyond these a spec is a typo, not a benchmark: 2^32 vertices, 2^36 edges, 2^36 feature values (256 GiB).
MAX_NODES, MAX_EDGES, MAX_FEATURE_VALUES = 1 << 32, 1 << 36, 1 << 36


def parse_rmat_spec(spec: str) -> dict:
    """``rmat:nodes=N,edges=E[,feat=F,classes=C,seed=S,noise=X]`` -> dict, with a one-line error when malformed."""
    body = spec.split(":", 1)[1] if ":" in spec else ""
    params = dict(_DEFAULTS)
    for item in filter(None, body.split(",")):
        m = re.fullmatch(r"\s*(\w+)\s*=\s*([-+0-9.eE]+)\s*", item)
        if not m or m.group(1) not in _FIELDS:
            raise ValueError(f"bad synthetic spec {spec!r}: '{item}' is not one of "
                             f"{', '.join(k + '=' for k in _FIELDS)}; example: {PRESETS['rmat-arxiv']}")
        key = m.group(1)
        try:
            params[key] = _FIELDS[key](m.group(2))
        except ValueError:
            raise ValueError(f"bad synthetic spec {spec!r}: {key} must be {_FIELDS[key].__name__}") from None
    if "nodes" not in params or "edges" not in params:
        raise ValueError(f"bad synthetic spec {spec!r}: nodes= and edges= are required; example: {PRESETS['rmat-arxiv']}")
    n, e = params["nodes"], params["edges"]
    if n < 2 or e < 1 or e > n * (n - 1) // 2 or params["classes"] < 2 or params["feat"] < 1:
        raise ValueError(f"bad synthetic spec {spec!r}: need nodes>=2, 1<=edges<=nodes*(nodes-1)/2, "
                         "classes>=2, feat>=1")
    if params["classes"] > n:
        raise ValueError(f"bad synthetic spec {spec!r}: classes={params['classes']} exceeds nodes={n}; "
                         "pass classes<=nodes")
    if not (math.isfinite(params["noise"]) and 0 <= params["noise"] <= 1e6):
        raise ValueError(f"bad synthetic spec {spec!r}: noise must be a finite number in [0, 1e6], "
                         f"got {params['noise']}")
    if params["seed"] < 0 or n > MAX_NODES or e > MAX_EDGES or n * params["feat"] > MAX_FEATURE_VALUES:
        raise ValueError(f"bad synthetic spec {spec!r}: need seed>=0, nodes<={MAX_NODES:.0e}, "
                         f"edges<={MAX_EDGES:.0e}, nodes*feat<={MAX_FEATURE_VALUES:.0e}")
    need, have = rmat_peak_bytes(params), host_memory_bytes()
    if have and need > have:
        raise ValueError(f"bad synthetic spec {spec!r}: building it needs about {need / 2**30:.0f} GiB, this host has "
                         f"{have / 2**30:.0f} GiB; pass fewer nodes, edges, feat or classes")
    return params


def rmat_peak_bytes(params: dict) -> int:
    """Peak bytes ``generate_rmat`` holds: three n x feat float32 arrays (features, noise, the permuted copy),
    the n x classes vote table, and the edge keys' union/sort copies (about 8 int64s per edge)."""
    n, e = params["nodes"], params["edges"]
    return 12 * n * params["feat"] + 4 * n * params["classes"] + 64 * e


def host_memory_bytes() -> int | None:
    """This host's physical memory (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _rmat_edges(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` raw R-MAT edge keys (src*n+dst), ids < n, self-loops removed (duplicates kept)."""
    scale = max(1, math.ceil(math.log2(n)))
    a, b, c, _ = RMAT_PROBS
    out = []
    chunk = 1 << 21
    for start in range(0, count, chunk):
        m = min(chunk, count - start)
        src = np.zeros(m, dtype=np.int64)
        dst = np.zeros(m, dtype=np.int64)
        for _level in range(scale):
            r = rng.random(m, dtype=np.float32)
            src = (src << 1) | (r >= a + b)
            dst = (dst << 1) | (((r >= a) & (r < a + b)) | (r >= a + b + c))
        ok = (src < n) & (dst < n) & (src != dst)
        out.append(src[ok] * n + dst[ok])
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def generate_rmat(spec: str, name: str | None = None) -> GraphData:
    """Build the graph a spec names (see the module docstring); deterministic in the spec."""
    p = parse_rmat_spec(spec)
    n, e, f, k = p["nodes"], p["edges"], p["feat"], p["classes"]
    rng = np.random.default_rng(p["seed"])
    keys = np.zeros(0, dtype=np.int64)
    while keys.size < e:
        want = int((e - keys.size) * 1.3) + 1024
        keys = np.union1d(keys, _rmat_edges(n, want, rng))
    if keys.size > e:
        keys = np.sort(rng.choice(keys, size=e, replace=False))
    src0, dst0 = keys // n, keys % n
    perm = rng.permutation(n)  # new id of old vertex i is perm[i]
    community = (np.arange(n, dtype=np.int64) * k) // n  # by old id
    votes = np.bincount(dst0 * k + community[src0], minlength=n * k).reshape(n, k).astype(np.float32)
    votes[np.arange(n), community] += 1.5  # a vertex's own community breaks ties and rules low degree
    label_old = votes.argmax(1).astype(np.int64)
    centroids = rng.standard_normal((k, f), dtype=np.float32)
    feat_old = centroids[community] + p["noise"] * rng.standard_normal((n, f), dtype=np.float32)

    src, dst = perm[src0], perm[dst0]
    order = np.lexsort((src, dst))
    feat = np.empty_like(feat_old)
    feat[perm] = feat_old
    label = np.empty_like(label_old)
    label[perm] = label_old
    train, val, test = random_split(n, (0.6, 0.2), p["seed"])
    return GraphData(
        name=name or spec, num_nodes=n, src=torch.from_numpy(src[order]), dst=torch.from_numpy(dst[order]),
        feat=torch.from_numpy(feat), label=torch.from_numpy(label), train_mask=train, val_mask=val,
        test_mask=test, num_classes=k, meta={"source": spec, "directed": True})
