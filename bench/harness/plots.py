"""Figures from recorded runs (PNG under ``results/figures/``), one set per (dataset, model).

    graphpar plot                                   # every dataset/model recorded in results/runs.jsonl
    graphpar plot --dataset cora --out-dir results/figures

Per (dataset, model): ``speedup_*`` (epoch-time speedup vs ``single`` at P=1, band = min/max over the
timed epochs, or min/max over the repeats of ``--repeat``), ``breakdown_*`` (per-phase wall time per
strategy and P: aggregation, dense NN, layout, optimizer, communication, idle; compute CPU as a dot),
``load_*`` (per-rank compute and local edges for the largest P of each strategy, max/mean in the
titles), ``comm_*`` (bytes
per epoch, log scale, analytic volume beside the measured one when the strategy reports it) and
``accuracy_*`` (test accuracy and loss vs epoch). Every figure carries git sha, environment fingerprint
and date. Only the newest successful run of each configuration is drawn.
"""
from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import pandas as pd  # noqa: E402

from .. import results  # noqa: E402

_COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _color(strategy: str, order: list[str]) -> str:
    return _COLORS[order.index(strategy) % len(_COLORS)] if strategy in order else "gray"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60]


def dataset_tag(dataset: str) -> str:
    """File-name part for a dataset: the name itself when it is already safe and short, else a cut slug
    plus a short hash of the full spec (two R-MAT specs differing only in seed never share a file)."""
    slug = _slug(dataset.replace("rmat:", "rmat_"))
    if slug == dataset and len(slug) <= 40:
        return slug
    return f"{slug[:40]}-{hashlib.sha1(dataset.encode()).hexdigest()[:8]}"


def caption(fig, df: pd.DataFrame) -> None:
    """Provenance line at the bottom of a figure: git sha(s), environment fingerprint(s), date."""
    shas = ",".join(sorted(set(df["git_sha"].dropna().astype(str))))[:60]
    envs = ",".join(sorted(set(df["env_fingerprint"].dropna().astype(str))))[:40]
    date = time.strftime("%Y-%m-%d")
    fig.text(0.01, 0.005, f"graphpar {shas} | env {envs} | {date}", fontsize=7, color="dimgray", va="bottom")


def _title(df: pd.DataFrame) -> str:
    r = df.iloc[0]
    nodes = r.get("graph.nodes")
    edges = r.get("graph.edges")
    size = f" ({int(nodes):,} vertices, {int(edges):,} edges)" if pd.notna(nodes) and pd.notna(edges) else ""
    name = r["dataset"] if len(r["dataset"]) <= 24 else r["dataset"].split(":")[0].upper()
    return f"{name}{size}, {r['layers']}-layer {r['model'].upper()}, hidden {r['hidden']}"


def save_figure(fig, path: Path) -> Path:
    """Lay out (room for the caption), write the PNG (creating its folder) and free the figure."""
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_speedup(df: pd.DataFrame, path: Path, order: list[str]) -> Path | None:
    """Speedup vs workers per strategy (ideal line dashed)."""
    if df["single_epoch_s"].isna().all():
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    base = df["single_epoch_s"].iloc[0]
    ps = sorted(df["workers"].unique())
    ax.plot(ps, ps, ls="--", color="lightgray", label="ideal (P x)")
    for s in order:
        d = df[df["strategy"] == s].sort_values("workers")
        if d.empty or s == "single":
            continue
        mid = base / d["epoch_s"]
        err = [mid - base / d["epoch_s_max"], base / d["epoch_s_min"] - mid]
        has_p1 = 1 in set(d["workers"])
        xs = ([] if has_p1 else [1]) + list(d["workers"])
        ys = ([] if has_p1 else [1.0]) + list(mid)
        ax.plot(xs, ys, marker="o", color=_color(s, order), label=s)
        ax.errorbar(d["workers"], mid, yerr=err, fmt="none", ecolor=_color(s, order), capsize=3, alpha=0.6)
        for p, v in zip(d["workers"], mid):
            ax.annotate(f"{v:.2f}x", (p, v), textcoords="offset points", xytext=(6, 4), fontsize=7,
                        color=_color(s, order))
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ps, [str(p) for p in ps])
    ax.set_xlabel("workers P")
    ax.set_ylabel(f"speedup over single at P=1 ({base * 1e3:.1f} ms/epoch)")
    n = int(df["repeats"].max()) if "repeats" in df else 1
    bars = f"bars: min-max over {n} repeats" if n > 1 else "bars: fastest to slowest timed epoch"
    ax.set_title(f"Epoch-time speedup, median ({bars})\n" + _title(df), fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    caption(fig, df)
    return save_figure(fig, path)


PHASE_STYLE = (("phase.aggregation.wall_s", "#4c72b0", "aggregation (SpMM)"),
               ("phase.dense.wall_s", "#55a868", "dense NN"),
               ("phase.layout.wall_s", "#8172b2", "layout / packing"),
               ("phase.optimizer.wall_s", "#937860", "optimizer"),
               ("phase.comm.wall_s", "#dd8452", "communication (exposed)"),
               ("idle_s", "#bbbbbb", "idle (barrier wait)"))


def plot_breakdown(df: pd.DataFrame, path: Path, order: list[str]) -> Path:
    """Stacked bars per (strategy, P): wall seconds per epoch in each phase (mean over ranks of per-rank
    medians); a dot marks the compute CPU seconds (what the work costs, whatever the machine's load)."""
    d = df.sort_values(["strategy", "workers"], key=lambda c: c.map(order.index) if c.name == "strategy" else c)
    labels = [f"{s}\nP={p}" for s, p in zip(d["strategy"], d["workers"])]
    fig, ax = plt.subplots(figsize=(max(6.4, 0.75 * len(d) + 2), 4.6))
    x = range(len(d))
    bottom = [0.0] * len(d)
    phased = "phase.dense.wall_s" in d and d["phase.dense.wall_s"].fillna(0).gt(0).any()
    style = PHASE_STYLE if phased else (("compute_s", "#4c72b0", "compute"), ("comm_s", "#dd8452", "communication"),
                                        ("idle_s", "#bbbbbb", "idle (barrier wait)"))
    for col, color, name in style:
        vals = list(d[col].fillna(0.0) * 1e3)
        ax.bar(x, vals, 0.6, bottom=bottom, color=color, label=name)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.scatter(list(x), list(d["epoch_s"] * 1e3), marker="_", s=300, color="black", label="epoch (max rank)",
               zorder=3)
    if phased:
        ax.scatter(list(x), list(d["cpu_compute_s"] * 1e3), marker="o", s=18, color="black", zorder=3,
                   label="compute CPU seconds")
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_xlim(-0.6, max(len(d), 3) - 0.4)
    ax.set_ylabel("time per epoch (ms)")
    ax.set_title("Where an epoch goes, per phase (wall, mean over ranks)\n" + _title(df), fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    caption(fig, df)
    return save_figure(fig, path)


def plot_load(df: pd.DataFrame, ranks: pd.DataFrame, path: Path, order: list[str]) -> Path | None:
    """Per-rank compute time and local edges for the largest-P run of each multi-worker strategy."""
    picks = [df[(df["strategy"] == s)].sort_values("workers").iloc[-1] for s in order
             if s in set(df["strategy"]) and df[df["strategy"] == s]["workers"].max() > 1]
    if not picks:
        return None
    fig, axes = plt.subplots(2, len(picks), figsize=(3.4 * len(picks) + 1, 5.6), squeeze=False)
    for j, row in enumerate(picks):
        rr = ranks[ranks["run_id"] == row["run_id"]].sort_values("rank")
        color = _color(row["strategy"], order)
        ax = axes[0][j]
        bottom = [0.0] * len(rr)
        for col, c, name in (("compute_s", "#4c72b0", "compute"), ("comm_s", "#dd8452", "communication"),
                             ("idle_s", "#bbbbbb", "idle")):
            vals = list(rr[col] * 1e3)
            ax.bar(rr["rank"], vals, bottom=bottom, color=c, label=name)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.set_title(f"{row['strategy']} P={row['workers']}\ncompute max/mean {row['compute_max_over_mean']:.2f}",
                     fontsize=9)
        ax.set_ylabel("ms per epoch (median)" if j == 0 else "")
        if j == 0:
            ax.legend(fontsize=7)
        ax.set_xticks(list(rr["rank"]))
        ax = axes[1][j]
        edges = rr["local_edges"].fillna(0)
        ax.bar(rr["rank"], edges, color=color, alpha=0.6)
        ax.set_title(f"local edges max/mean {row['edges_max_over_mean']:.2f}", fontsize=9)
        ax.set_xlabel("rank")
        ax.set_ylabel("local edges" if j == 0 else "")
        ax.set_xticks(list(rr["rank"]))
    fig.suptitle("Per-worker load\n" + _title(df), fontsize=10)
    caption(fig, df)
    return save_figure(fig, path)


def plot_comm(df: pd.DataFrame, path: Path, order: list[str]) -> Path | None:
    """Bytes per epoch (all ranks, sent) per strategy and P, log scale; analytic volume as a hollow bar."""
    d = df[df["workers"] > 1].sort_values("workers")
    if d.empty:
        return None
    ps = sorted(d["workers"].unique())
    strategies = [s for s in order if s in set(d["strategy"])]
    width = 0.8 / max(len(strategies), 1)
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    has_analytic = False
    lows: list[float] = []
    for i, s in enumerate(strategies):
        for k, p in enumerate(ps):
            row = d[(d["strategy"] == s) & (d["workers"] == p)]
            if row.empty:
                continue
            r = row.iloc[0]
            x = k + (i - (len(strategies) - 1) / 2) * width
            bars = ax.bar(x, max(r["bytes_per_epoch"], 1) / 1e6, width * 0.9, color=_color(s, order),
                          label=s if k == 0 else None)
            ax.bar_label(bars, fmt="%.3g", fontsize=7, label_type="center", color="white")
            lows.append(max(r["bytes_per_epoch"], 1) / 1e6)
            a = r.get("analytic_bytes_per_epoch")
            if a is not None and pd.notna(a):
                has_analytic = True
                ax.scatter([x], [max(a, 1) / 1e6], marker="D", facecolors="none", edgecolors="black", zorder=3)
    if has_analytic:
        ax.scatter([], [], marker="D", facecolors="none", edgecolors="black", label="analytic (formula)")
    ax.set_yscale("log")
    ax.set_ylim(bottom=min(lows) / 4)
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(range(len(ps)), [f"P={p}" for p in ps])
    ax.set_ylabel("MB sent per epoch, all ranks (log)")
    ax.set_title("Communication volume per training epoch\n" + _title(df), fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3, which="both")
    caption(fig, df)
    return save_figure(fig, path)


def plot_accuracy(df: pd.DataFrame, acc: pd.DataFrame, records: dict[str, dict], path: Path,
                  order: list[str]) -> Path | None:
    """Test accuracy (left) and training loss (right) vs epoch, largest P of each strategy."""
    picks = [df[df["strategy"] == s].sort_values("workers").iloc[-1] for s in order if s in set(df["strategy"])]
    if not picks:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2), sharex=True)
    for row in picks:
        s = row["strategy"]
        style = "--" if s == "single" else "-"
        pts = acc[acc["run_id"] == row["run_id"]].sort_values("epoch")
        label = f"{s} P={row['workers']}"
        if len(pts):
            a1.plot(pts["epoch"] + 1, pts["test_acc"], style, marker="." if len(pts) < 30 else None,
                    color=_color(s, order), label=label)
        losses = [e["loss"] for e in records[row["run_id"]]["epochs"]]
        a2.plot(range(1, len(losses) + 1), losses, style, color=_color(s, order), label=label)
    a1.set_xlabel("epoch")
    a1.set_ylabel("test accuracy")
    sparse = acc[acc["run_id"].isin([r["run_id"] for r in picks])].groupby("run_id").size().max() <= 1 \
        if len(acc) else True
    a1.set_title("Test accuracy" + (" (final only: run with --eval-every 1 for a curve)" if sparse else ""),
                 fontsize=10)
    for ax in (a1, a2):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    a2.set_xlabel("epoch")
    a2.set_ylabel("training loss (global mean)")
    a2.set_title("Training loss (single = DGL reference, dashed)", fontsize=10)
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Convergence\n" + _title(df), fontsize=10)
    caption(fig, df)
    return save_figure(fig, path)


def plot_all(source: Any = "results/runs.jsonl", out_dir: str | Path = "results/figures",
             dataset: str | None = None, model: str | None = None, prefix: str = "") -> list[Path]:
    """Every figure for every (dataset, model, layers, hidden) group recorded; returns the paths written."""
    records = results.read(source)
    df = results.load_runs(records, latest=True)
    if df.empty:
        return []
    keep = {r["run_id"] for r in records}
    by_id = {r["run_id"]: r for r in records if r["run_id"] in set(df["run_id"]) and r["run_id"] in keep}
    ranks = results.workers_table(by_id.values())
    acc = results.accuracy_table(by_id.values())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for (ds, md, layers, hidden), g in df.groupby(["dataset", "model", "layers", "hidden"]):
        if (dataset and ds != dataset) or (model and md != model):
            continue
        order = sorted(g["strategy"].unique(), key=lambda s: (s != "single", s))
        g = g.sort_values(["strategy", "workers"]).drop_duplicates(["strategy", "workers"], keep="last")
        # every part from the records is slugged: a crafted record cannot name a file outside out_dir
        tag = prefix + dataset_tag(ds) + "_" + _slug(f"{md}{layers}_h{hidden}")
        for path in (plot_speedup(g, out / f"speedup_{tag}.png", order),
                     plot_breakdown(g, out / f"breakdown_{tag}.png", order),
                     plot_load(g, ranks, out / f"load_{tag}.png", order),
                     plot_comm(g, out / f"comm_{tag}.png", order),
                     plot_accuracy(g, acc, by_id, out / f"accuracy_{tag}.png", order)):
            if path is not None:
                written.append(path)
    return written
