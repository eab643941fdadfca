"""Synthetic run records for the harness tests (built through record.build_record, so the schema is real)."""
from __future__ import annotations

from typing import Any

from graphpar.bench.record import build_record

DATASET = {"name": "toy", "nodes": 1000, "edges": 8000, "features": 16, "classes": 4, "train": 100, "val": 100,
           "test": 100, "hash": "x"}
ENV = {"git_sha": "abc123", "host": "h", "cores": 2, "python": "3.11", "torch": "2", "dgl": "2", "platform": "p",
       "device": "cpu"}


def fake_record(strategy: str, workers: int, compute_s: float = 0.1, tags: dict[str, tuple[str, int, int]] | None = None,
                comm_s: float = 0.0, epochs: int = 4, imbalance: float = 1.0, info: dict | None = None,
                dataset: str = "toy", time_scale: float = 1.0, probe_s: float | None = None,
                **cfg_overrides: Any) -> dict[str, Any]:
    """A record of ``workers`` ranks: rank 0 computes ``compute_s * imbalance``, others ``compute_s``;
    ``tags`` maps tag -> (op, calls per epoch, sent bytes per call); every epoch is identical; ``probe_s``:
    the CI probe's CPU seconds after each epoch (none when None)."""
    tags = tags or {}
    ranks = []
    for r in range(workers):
        c = compute_s * (imbalance if r == 0 else 1.0) * time_scale
        ep = []
        for e in range(epochs):
            comm = {t: {"op": op, "calls": calls, "sent_bytes": calls * nbytes, "recv_bytes": calls * nbytes,
                        "seconds": comm_s / max(len(tags), 1)} for t, (op, calls, nbytes) in tags.items()}
            wall = compute_s * imbalance * time_scale + comm_s
            phases = {"wall_s": {"aggregation": 0.4 * c, "dense": 0.5 * c, "layout": 0.0, "optimizer": 0.1 * c,
                                 "comm": comm_s},
                      "cpu_s": {"aggregation": 0.4 * c, "dense": 0.5 * c, "layout": 0.0, "optimizer": 0.1 * c,
                                "comm": 0.0}}
            ep.append({"epoch": e, "loss": 1.0 / (e + 1), "wall_s": wall, "comm_s": comm_s, "phases": phases,
                       "compute_s": wall - comm_s, "idle_s": wall - comm_s - c,
                       "sent_bytes": sum(v["sent_bytes"] for v in comm.values()),
                       "recv_bytes": sum(v["recv_bytes"] for v in comm.values()), "comm": comm,
                       **({"probe_cpu_s": probe_s} if probe_s is not None else {})})
        ranks.append({"rank": r, "setup_s": 0.0, "setup_comm": {}, "eval_comm": {}, "epochs": ep,
                      "accuracy": {"train_acc": 0.9, "val_acc": 0.8, "test_acc": 0.7},
                      "accuracy_curve": [{"epoch": e, "train_acc": 0.5 + 0.1 * e, "val_acc": 0.5, "test_acc": 0.4 + 0.1 * e}
                                         for e in range(epochs)],
                      "peak_memory_bytes": 1000 + r, "local_vertices": 1000 // workers,
                      "local_edges": 8000 // workers, "info": info or {}})
    cfg = {"strategy": strategy, "dataset": dataset, "workers": workers, "model": "gcn", "layers": 2, "hidden": 16,
           "epochs": epochs, "warmup_epochs": 1, "seed": 0, "device": "cpu", "options": {}, **cfg_overrides}
    return build_record(cfg, {**DATASET, "name": dataset}, ranks, env=ENV)
