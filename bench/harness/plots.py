"""Figures from recorded runs, one set per (dataset, model, layers, hidden), in PNG (300 dpi), PDF or SVG.

    graphpar plot                                   # every group recorded in results/runs.jsonl, into out/figures
    graphpar plot --dataset cora --format png,pdf

Per group: ``speedup_*`` (epoch-time speedup vs ``single`` at P=1, median, bars = min-max over the repeats
of ``--repeat``, or fastest/slowest timed epoch), ``breakdown_*`` (per-phase wall time per strategy and P:
aggregation, dense NN, layout, optimizer, communication, idle = pipeline bubble + barrier wait; compute
CPU as a dot), ``load_*`` (per-rank time and local edges for the largest P of each strategy, max/mean in
the titles), ``comm_*`` (bytes per epoch, log scale, analytic volume beside the measured one when the
strategy reports it), ``accuracy_*`` (test accuracy and loss vs epoch) and ``tta_*`` (test accuracy vs
training wall time, for runs that evaluate every epoch). Each figure draws one configuration family
(``figdata``), one colour and marker per strategy (``figstyle``), lays out without collisions
(``figlayout``), and carries model, widths, epochs, evaluation cadence, git sha, environment and date.
"""
from __future__ import annotations

import hashlib
import re
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
import matplotlib.transforms
import pandas as pd

from .. import metrics, results
from . import figdata, figlayout, figstyle
from .figstyle import PHASE_STYLE


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60]


def dataset_tag(dataset: str) -> str:
    """File-name part for a dataset: the name itself when it is already safe and short, else a cut slug
    plus a short hash of the full spec (two R-MAT specs differing only in seed never share a file)."""
    slug = _slug(dataset.replace("rmat:", "rmat_"))
    if slug == dataset and len(slug) <= 40:
        return slug
    return f"{slug[:40]}-{hashlib.sha1(dataset.encode()).hexdigest()[:8]}"


def provenance(df: pd.DataFrame) -> str:
    """Provenance line: git sha(s) of the runs, environment fingerprint(s), date."""
    shas = ",".join(sorted(set(df["git_sha"].dropna().astype(str))))[:80]
    envs = ",".join(sorted(set(df["env_fingerprint"].dropna().astype(str))))[:40]
    return f"graphpar {shas} | env {envs} | {time.strftime('%Y-%m-%d')}"


def _title(df: pd.DataFrame) -> str:
    r = df.iloc[0]
    nodes = r.get("graph.nodes")
    edges = r.get("graph.edges")
    size = f" ({int(nodes):,} vertices, {int(edges):,} edges)" if pd.notna(nodes) and pd.notna(edges) else ""
    name = r["dataset"] if len(r["dataset"]) <= 24 else r["dataset"].split(":")[0].upper()
    return f"{name}{size}"


def save_figure(fig, path: Path, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Write the figure in every format (300 dpi PNG, vector PDF/SVG), creating its folder; frees it."""
    return figstyle.save(fig, path, formats)


def _done(fig, df: pd.DataFrame, title: str, lines: list[str]) -> None:
    figlayout.finish(fig, title, [*lines, provenance(df)])


def _legend(fig, axes) -> None:
    seen: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    figlayout.legend_below(fig, list(seen.values()), list(seen.keys()))


def _ordered(df: pd.DataFrame) -> pd.DataFrame:
    keys = [figstyle.order_key(s, v) for s, v in zip(df["strategy"], df["variant"])]
    return df.assign(_o=keys).sort_values(["_o", "workers"]).drop(columns="_o")


def _series(df: pd.DataFrame):
    """(series name, strategy, variant, rows) in the fixed strategy order."""
    d = _ordered(df)
    for name in dict.fromkeys(d["series"]):
        g = d[d["series"] == name]
        yield name, g["strategy"].iloc[0], g["variant"].iloc[0], g


def _log_plain(axis) -> None:
    """Log axis ticks as plain numbers (1, 2, 5, 10, ...), never 6x10^2."""
    axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def plot_speedup(df: pd.DataFrame, path: Path, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Speedup over single at P=1 vs workers per series (median, min-max bars), ideal line dashed; value
    labels where they collide with nothing."""
    pts = figdata.speedup_points(df)
    if pts.empty:
        return []
    base = figdata.single_base(df)
    ps = sorted(df["workers"].unique())
    with figstyle.paper():
        fig, ax = figlayout.new(figstyle.size("single", 2.9))
        ax.plot(ps, ps, ls=(0, (4, 3)), color="0.7", lw=0.8, label="ideal (P x)")
        ax.axhline(1.0, color="0.3", lw=0.6)
        labels, marks = [], []
        for name, strategy, variant, _ in _series(df[df["strategy"] != "single"]):
            d = pts[pts["series"] == name]
            st = figstyle.series_style(strategy, variant)
            ax.plot(d["workers"], d["speedup"], label=name, **st)
            ax.errorbar(d["workers"], d["speedup"], yerr=[d["speedup"] - d["lo"], d["hi"] - d["speedup"]],
                        fmt="none", ecolor=st["color"], capsize=2, lw=0.7)
            last = d.sort_values("workers").iloc[-1]  # one label per line, at its end
            labels.append((last["workers"], last["speedup"], f"{last['speedup']:.2f}x", st["color"]))
            marks += list(zip(d["workers"], d["speedup"], d["lo"], d["hi"]))
        ax.set_xscale("log", base=2)
        ax.set_xticks(ps, [str(p) for p in ps])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlim(min(ps) / 1.3, max(ps) * 2.0)
        ax.set_ylim(0, max(max(ps), float(pts["hi"].max())) * 1.15)
        ax.set_xlabel("workers P")
        ax.set_ylabel("speedup over single, P=1")
        ax.grid(alpha=0.3)
        n = int(df["repeats"].max()) if "repeats" in df else 1
        bars = f"min-max over {n} repeats" if n > 1 else "fastest to slowest timed epoch"
        _legend(fig, [ax])
        _done(fig, df, f"Epoch-time speedup (median): {_title(df)}",
              [figdata.describe(df), f"single at P=1: {base * 1e3:.1f} ms/epoch; bars: {bars}"])
        obstacles = [figlayout.obstacle(ax, p, v) for p, v, _, _ in marks] + \
                    [figlayout.segment(ax, p, lo, hi) for p, _, lo, hi in marks]
        figlayout.place_labels(ax, labels, obstacles, offsets=RIGHT, ha="left")
        return save_figure(fig, path, formats)


RIGHT = tuple((7, dy) for dy in (0, 5, -5, 10, -10, 15, -15, 20, -20))  # label offsets at a line's end


def _group_positions(d: pd.DataFrame) -> tuple[list[float], list[tuple[float, str, str]]]:
    """x of each row (a gap between series) and (centre, series, colour) of each series."""
    xs, groups, x = [], [], 0.0
    for name, strategy, variant, g in _series(d):
        start = x
        for _ in range(len(g)):
            xs.append(x)
            x += 1.0
        groups.append(((start + x - 1) / 2, name, figstyle.strategy_color(strategy, variant)))
        x += 0.6
    return xs, groups


def _series_axis(ax, xs: list[float], ticks: list[str], groups: list[tuple[float, str, str]], label: str) -> None:
    """P under each bar, the series name (in its colour) under each group."""
    ax.set_xticks(xs, ticks)
    ax.tick_params(axis="x", length=0)
    sec = ax.secondary_xaxis("bottom")
    sec.set_xticks([c for c, _, _ in groups], [n.replace(" (", "\n(") for _, n, _ in groups])
    sec.tick_params(axis="x", length=0, pad=plt.rcParams["xtick.labelsize"] * 1.4 + 4)
    for tick, (_, _, color) in zip(sec.get_xticklabels(), groups):
        tick.set_color(color)
    sec.spines["bottom"].set_visible(False)
    sec.set_xlabel(label)


def plot_breakdown(df: pd.DataFrame, path: Path, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Stacked bars per (series, P): wall seconds per epoch in each phase (mean over ranks of per-rank
    medians); idle (pipeline bubble + barrier wait) apart from communication; a dot marks the compute
    CPU seconds (what the work costs, whatever the machine's load), a bar the epoch (slowest rank)."""
    d = _ordered(df)
    phased = "phase.dense.wall_s" in d and d["phase.dense.wall_s"].fillna(0).gt(0).any()
    style = PHASE_STYLE if phased else (("compute_s", "#808080", None, "compute"),
                                        ("comm_s", "#F0E442", None, "communication"),
                                        ("idle_s", "#FFFFFF", "////", "idle (barrier wait)"))
    xs, groups = _group_positions(d)
    width = min(max(3.3, 0.28 * len(xs) + 0.5 * len(groups) + 0.8), 6.9)
    with figstyle.paper():
        fig, ax = figlayout.new((width, 2.9))
        bottom = [0.0] * len(d)
        for col, color, hatch, name in style:
            vals = list(d[col].fillna(0.0) * 1e3) if col in d else [0.0] * len(d)
            if not any(vals) and col != "idle_total_s":
                continue
            ax.bar(xs, vals, 0.72, bottom=bottom, color=color, hatch=hatch, edgecolor="0.35", linewidth=0.4,
                   label=name)
            bottom = [b + v for b, v in zip(bottom, vals)]
        ax.scatter(xs, list(d["epoch_s"] * 1e3), marker="_", s=120, color="black", linewidths=1.2,
                   label="epoch (slowest rank)", zorder=3)
        if phased:
            ax.scatter(xs, list(d["cpu_compute_s"] * 1e3), marker="o", s=9, color="black", zorder=3,
                       label="compute CPU seconds")
        _series_axis(ax, xs, [str(p) for p in d["workers"]], groups, "workers P, per strategy")
        ax.set_xlim(min(xs) - 0.7, max(xs) + 0.7)
        ax.set_ylabel("time per epoch (ms)")
        ax.grid(axis="y", alpha=0.3)
        _legend(fig, [ax])
        _done(fig, df, f"Where an epoch goes (wall, mean over ranks): {_title(df)}",
              [figdata.describe(df), "idle = pipeline bubble (waiting for a peer's activations or gradients) "
               "+ end-of-epoch barrier wait; communication = time blocked in the communicator, bubble excluded"])
        return save_figure(fig, path, formats)


def _edges_fmt(v: float, _pos) -> str:
    return f"{v / 1e6:g}M" if v >= 1e6 else (f"{v / 1e3:g}k" if v >= 1e3 else f"{v:g}")


def plot_load(df: pd.DataFrame, ranks: pd.DataFrame, path: Path, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Per-rank time (compute, communication, idle) and local edges for the largest-P run of each series."""
    picks = [g.sort_values("workers").iloc[-1] for _, _, _, g in _series(df) if g["workers"].max() > 1]
    if not picks:
        return []
    n = len(picks)
    with figstyle.paper():
        fig, axes = figlayout.new((min(max(3.3, 1.45 * n + 0.7), 6.9), 3.6), nrows=2, ncols=n, squeeze=False,
                                  sharey="row")
        for j, row in enumerate(picks):
            rr = ranks[ranks["run_id"] == row["run_id"]].sort_values("rank")
            color = figstyle.strategy_color(row["strategy"], row["variant"])
            ax = axes[0][j]
            bottom = [0.0] * len(rr)
            for col, c, hatch, name in (("compute_s", "#808080", None, "compute"),
                                        ("comm_exposed_s", "#F0E442", None, "communication"),
                                        ("idle_total_s", "#FFFFFF", "////", "idle (bubble, barrier)")):
                vals = list(rr[col].fillna(0.0) * 1e3)
                ax.bar(rr["rank"], vals, 0.7, bottom=bottom, color=c, hatch=hatch, edgecolor="0.35", linewidth=0.4,
                       label=name)
                bottom = [b + v for b, v in zip(bottom, vals)]
            ax.set_title(f"{row['series']}, P={row['workers']}\ncompute max/mean {row['compute_max_over_mean']:.2f}",
                         color=color, fontsize=plt.rcParams["font.size"] - 0.5)
            ax.set_xticks(list(rr["rank"]))
            if j == 0:
                ax.set_ylabel("ms per epoch")
            ax = axes[1][j]
            ax.bar(rr["rank"], rr["local_edges"].fillna(0), 0.7, color=color)
            ax.set_title(f"edges max/mean {row['edges_max_over_mean']:.2f}", fontsize=plt.rcParams["font.size"] - 0.5)
            ax.set_xlabel("rank")
            ax.set_xticks(list(rr["rank"]))
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_edges_fmt))
            if j == 0:
                ax.set_ylabel("local edges")
        for ax in axes.flat:
            ax.grid(axis="y", alpha=0.3)
        _legend(fig, [axes[0][0]])
        _done(fig, df, f"Per-worker load, largest P of each strategy: {_title(df)}",
              [figdata.describe(df), "local edges: the graph's in-edges of the vertices a rank aggregates for "
               "(tensor, pipeline: all of them), self-loops not counted, the same for every strategy"])
        return save_figure(fig, path, formats)


def plot_comm(df: pd.DataFrame, path: Path, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Bytes per epoch (all ranks, sent) per series and P, log scale; analytic volume as a hollow diamond."""
    d = df[df["workers"] > 1]
    if d.empty:
        return []
    ps = sorted(d["workers"].unique())
    series = list(_series(d))
    width = 0.8 / max(len(series), 1)
    with figstyle.paper():
        fig, ax = figlayout.new(figstyle.size("single", 2.9))
        has_analytic, labels, bars_at, named = False, [], [], set()
        for i, (name, strategy, variant, g) in enumerate(series):
            color = figstyle.strategy_color(strategy, variant)
            for k, p in enumerate(ps):
                row = g[g["workers"] == p]
                if row.empty:
                    continue
                r = row.iloc[0]
                x = k + (i - (len(series) - 1) / 2) * width
                mb = max(r["bytes_per_epoch"], 1) / 1e6
                ax.bar(x, mb, width * 0.9, color=color, label=None if name in named else name)
                named.add(name)
                labels.append((x, mb, f"{mb:.3g}", "0.2"))
                bars_at.append((x, mb, width * 0.9))
                a = r.get("analytic_bytes_per_epoch")
                if a is not None and pd.notna(a):
                    has_analytic = True
                    ax.scatter([x], [max(a, 1) / 1e6], marker="D", s=14, facecolors="none", edgecolors="black",
                               linewidths=0.7, zorder=3)
        if has_analytic:
            ax.scatter([], [], marker="D", s=14, facecolors="none", edgecolors="black", label="analytic (formula)")
        lows = [mb for _, mb, _ in bars_at]
        ax.set_yscale("log")
        ax.set_ylim(min(lows) / 4, max(lows) * 6)
        _log_plain(ax.yaxis)
        ax.set_xticks(range(len(ps)), [f"P={p}" for p in ps])
        ax.set_ylabel("MB sent per epoch, all ranks (log)" if len(series) <= 4 else "MB sent per epoch (log)")
        ax.grid(axis="y", alpha=0.3, which="both")
        _legend(fig, [ax])
        _done(fig, df, f"Communication volume per training epoch: {_title(df)}",
              [figdata.describe(df), "exact byte counts (mean over timed epochs, sent, summed over ranks)"])
        obstacles = []
        for x, mb, w in bars_at:  # the bars themselves: a label may sit on top of its bar, not across another
            (x0, y0), (x1, y1) = ax.transData.transform([(x - w / 2, ax.get_ylim()[0]), (x + w / 2, mb)])
            obstacles.append(matplotlib.transforms.Bbox.from_extents(x0, y0, x1, y1 - 1))
        figlayout.place_labels(ax, [(x, mb, t, c) for x, mb, t, c in labels], obstacles,
                               fontsize=plt.rcParams["font.size"] - 1.5, offsets=((0, 5), (0, 12), (0, 19)))
        return save_figure(fig, path, formats)


def _picks(df: pd.DataFrame) -> list:
    """The largest-P run of each series (single included)."""
    return [g.sort_values("workers").iloc[-1] for _, _, _, g in _series(df)]


def plot_accuracy(df: pd.DataFrame, acc: pd.DataFrame, records: dict[str, dict], path: Path,
                  formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Test accuracy (left) and training loss (right) vs epoch, largest P of each series."""
    picks = _picks(df)
    if not picks:
        return []
    with figstyle.paper():
        fig, (a1, a2) = figlayout.new(figstyle.size("double", 2.6), ncols=2)
        for row in picks:
            st = figstyle.series_style(row["strategy"], row["variant"])
            pts = acc[acc["run_id"] == row["run_id"]].sort_values("epoch")
            label = f"{row['series']} P={row['workers']}"
            every = max(len(pts) // 8, 1)
            if len(pts):
                a1.plot(pts["epoch"] + 1, pts["test_acc"], label=label, markevery=every, **st)
            losses = [e["loss"] for e in records[row["run_id"]]["epochs"]]
            a2.plot(range(1, len(losses) + 1), losses, label=label, markevery=max(len(losses) // 8, 1), **st)
        a1.set_xlabel("epoch")
        a1.set_ylabel("test accuracy")
        a2.set_xlabel("epoch")
        a2.set_ylabel("training loss (global mean)")
        for ax in (a1, a2):
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        ids = [r["run_id"] for r in picks]
        sparse = acc[acc["run_id"].isin(ids)].groupby("run_id").size().max() <= 1 if len(acc) else True
        _legend(fig, [a1, a2])
        _done(fig, df, f"Convergence, largest P of each strategy: {_title(df)}",
              [figdata.describe(df) + (" (final accuracy only: --eval-every 1 draws a curve)" if sparse else ""),
               "single = DGL reference"])
        return save_figure(fig, path, formats)


def plot_time_to_accuracy(df: pd.DataFrame, acc: pd.DataFrame, records: dict[str, dict], path: Path,
                          formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Test accuracy vs training wall time (evaluation excluded), largest P of each series; only for runs
    that evaluate every epoch."""
    picks = [r for r in _picks(df) if int(r.get("eval_every") or 0) == 1]
    if not picks:
        return []
    with figstyle.paper():
        fig, ax = figlayout.new(figstyle.size("single", 2.9))
        for row in picks:
            pts = acc[acc["run_id"] == row["run_id"]].sort_values("epoch")
            if pts.empty:
                continue
            elapsed = metrics.elapsed_s(records[row["run_id"]])
            st = figstyle.series_style(row["strategy"], row["variant"])
            ax.plot([elapsed[e] for e in pts["epoch"]], pts["test_acc"], label=f"{row['series']} P={row['workers']}",
                    markevery=max(len(pts) // 8, 1), **st)
        xs = [x for line in ax.get_lines() for x in line.get_xdata()]
        log = bool(xs) and min(xs) > 0 and max(xs) / min(xs) > 30
        if log:  # runs an order of magnitude apart: each one's early epochs stay readable
            ax.set_xscale("log")
            _log_plain(ax.xaxis)
        ax.set_xlabel("training wall time (s, evaluation excluded" + (", log)" if log else ")"))
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        _legend(fig, [ax])
        _done(fig, df, f"Time to accuracy: {_title(df)}",
              [figdata.describe(df), "x: cumulative epoch time (slowest rank, barrier to barrier) of one run"])
        return save_figure(fig, path, formats)


def plot_all(source: Any = "results/runs.jsonl", out_dir: str | Path = "results/figures",
             dataset: str | None = None, model: str | None = None, prefix: str = "",
             formats: tuple[str, ...] = ("png",), mix_versions: bool = False) -> list[Path]:
    """Every figure for every (dataset, model, layers, hidden) group recorded, each drawn from that group's
    newest configuration family (``figdata``); returns the paths written (one per format)."""
    records = results.read(source)
    df = results.load_runs(records, latest=True)
    if df.empty:
        return []
    by_id = {r["run_id"]: r for r in records if r["run_id"] in set(df["run_id"])}
    ranks = results.workers_table(by_id.values())
    acc = results.accuracy_table(by_id.values())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for (ds, md, layers, hidden), g in df.groupby(["dataset", "model", "layers", "hidden"]):
        if (dataset and ds != dataset) or (model and md != model):
            continue
        g, left_out = figdata.one_family(g, records, mix_versions)
        if left_out:
            print(f"graphpar plot: {ds} {md} L={layers} H={hidden}: {left_out} run(s) of other configurations or "
                  "code versions left out (figures draw the newest family; --mix-versions mixes code versions)",
                  file=sys.stderr)
        # every part from the records is slugged: a crafted record cannot name a file outside out_dir
        tag = prefix + dataset_tag(ds) + "_" + _slug(f"{md}{layers}_h{hidden}")
        for paths in (plot_speedup(g, out / f"speedup_{tag}", formats),
                      plot_breakdown(g, out / f"breakdown_{tag}", formats),
                      plot_load(g, ranks, out / f"load_{tag}", formats),
                      plot_comm(g, out / f"comm_{tag}", formats),
                      plot_accuracy(g, acc, by_id, out / f"accuracy_{tag}", formats),
                      plot_time_to_accuracy(g, acc, by_id, out / f"tta_{tag}", formats)):
            written += paths
    return written
