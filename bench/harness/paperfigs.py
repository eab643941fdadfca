"""The figures of the paper reports (``graphpar paper``), in the style of every other figure (``figstyle``,
``figlayout``): measured and projected in separate panels, the projection with its validated error band,
a caption line naming the graph, models, widths and modes.

    paths = paperfigs.neutrontp_figure(series, df, link, target, band, out / "neutrontp_epoch_vs_workers", ("png",))
    paths = paperfigs.gnnpipe_figure(df, recs, out / "gnnpipe_volume_vs_layers", ("png", "pdf"))
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker
import pandas as pd

from . import figlayout, figstyle
from .plots import _log_plain, provenance
from .projection import Link, validate


def mode_of(rec: dict[str, Any]) -> str | None:
    """The tensor strategy's mode (naive per-layer or decoupled) from its record, else None."""
    if rec["config"]["strategy"] != "tensor":
        return None
    return (rec.get("info") or {}).get("mode") or rec["config"].get("options", {}).get("tp_mode")


def series_name(rec: dict[str, Any]) -> str:
    """``strategy (model)``, with the tensor strategy's mode: ``tensor (gcn, naive)``."""
    mode = mode_of(rec)
    model = rec["config"]["model"]
    return f"{rec['config']['strategy']} ({model}{', ' + mode if mode and mode != model else ''})"


def models_line(recs: list[dict[str, Any]]) -> str:
    """Which model each strategy trained, and tensor's mode: for the caption line."""
    by_model: dict[str, list[str]] = {}
    for r in recs:
        mode = mode_of(r)
        name = r["config"]["strategy"] + (f" in {mode} mode" if mode else "")
        by_model.setdefault(r["config"]["model"], [])
        if name not in by_model[r["config"]["model"]]:
            by_model[r["config"]["model"]].append(name)
    return "; ".join(f"{m.upper() if m != 'decoupled' else 'decoupled model'}: {', '.join(v)}"
                     for m, v in sorted(by_model.items()))


def projection_band(recs: list[dict[str, Any]], link: Link) -> float | None:
    """The projection's validated error on these runs: mean |error| of the predicted slowest rank's compute
    at a larger measured P from a smaller one (``graphpar project --validate``); None when no strategy was
    measured at two worker counts."""
    rows = [r for r in validate(recs, link) if r["from_P"] < r["P"] and not r["note"]]
    errs = [abs(r["compute_error"]) for r in rows]
    return sum(errs) / len(errs) if errs else None


def _plain_log(ax) -> None:
    ax.set_yscale("log")
    _log_plain(ax.yaxis)


def neutrontp_figure(series: list[dict[str, Any]], df: pd.DataFrame, link: Link, target: int, band: float | None,
                     path: Path, formats: tuple[str, ...]) -> list[Path]:
    """Left: measured epoch time vs P (median, min-max over repeats). Right: projected from the largest
    measured P to ``target`` on ``link``, shaded by ``band`` (the validated relative error)."""
    r0 = df.iloc[0]
    with figstyle.paper():
        fig, (am, ap) = figlayout.new(figstyle.size("double", 2.9), ncols=2)
        measured_ps, projected_ps = set(), set()
        for s in series:
            g, st = s["rows"], figstyle.series_style(s["strategy"], None, s["model"])
            if s["strategy"] == "single":  # measured wall time: a reference for the measured panel only
                am.axhline(g["epoch_s"].iloc[0] * 1e3, color=st["color"], ls=st["linestyle"], lw=0.9,
                           label=f"{s['name']}, P=1")
                continue
            mid = g["epoch_s"] * 1e3
            am.errorbar(g["workers"], mid, yerr=[mid - g["epoch_s_min"] * 1e3, g["epoch_s_max"] * 1e3 - mid],
                        capsize=2, elinewidth=0.7, label=s["name"], **st)
            measured_ps |= set(g["workers"])
            if s["projected"]:
                ps = [p for p, _ in s["projected"]]
                ys = [pr.epoch_s * 1e3 for _, pr in s["projected"]]
                ap.plot(ps, ys, label=s["name"], **st)
                if band is not None:
                    ap.fill_between(ps, [y * (1 - band) for y in ys], [y * (1 + band) for y in ys],
                                    color=st["color"], alpha=0.15, lw=0)
                projected_ps |= set(ps)
        for ax, ps, title in ((am, measured_ps | {1}, "measured here (gloo loopback, shared CPU cores)"),
                              (ap, projected_ps | {1}, f"projected to P={target}, {link.describe()}")):
            ax.set_xscale("log", base=2)
            ticks = sorted(ps)
            ax.set_xticks(ticks, [str(p) for p in ticks])
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.set_xlabel("workers P")
            ax.set_title(title)
            ax.grid(alpha=0.3, which="both")
        for ax, what in ((am, "measured epoch (ms, log)"), (ap, "projected epoch (ms, log)")):
            _plain_log(ax)
            ax.set_ylabel(what)
        seen: dict[str, Any] = {}
        for ax in (am, ap):
            for h, lab in zip(*ax.get_legend_handles_labels()):
                seen.setdefault(lab, h)
        figlayout.legend_below(fig, list(seen.values()), list(seen.keys()))
        band_txt = (f"shaded: ±{band:.0%}, the projection's mean |error| on these runs (slowest rank's compute "
                    "predicted at P=4 from P=2, graphpar project --validate)" if band is not None
                    else "no band: no strategy measured at two worker counts to validate the projection")
        band_txt = ("projection: compute from CPU seconds (a core per rank), communication from exact bytes on the "
                    f"link; {band_txt}")
        figlayout.finish(fig, f"NeutronTP-style comparison, epoch time vs workers: {r0['dataset']} "
                         f"({int(r0['graph.nodes']):,} vertices, {int(r0['graph.edges']):,} edges)",
                         [f"{models_line(s_['rec'] for s_ in series)}; {r0['layers']} layers, hidden {r0['hidden']}, "
                          f"{int(r0['epochs'])} epochs; line style = model", band_txt, provenance(df)])
        return figstyle.save(fig, path, formats)


def gnnpipe_figure(df: pd.DataFrame, recs: list[dict[str, Any]], path: Path, formats: tuple[str, ...]) -> list[Path]:
    """Bytes per training epoch vs depth L per strategy (colour) and P (dashed: smaller P), exact counts;
    hollow diamonds: the strategy's own formula."""
    by_id = {r["run_id"]: r for r in recs}
    ps = sorted(df["workers"].unique())
    r0 = df.iloc[0]
    with figstyle.paper():
        fig, ax = figlayout.new(figstyle.size("single", 3.1))
        order = sorted(df["strategy"].unique(), key=figstyle.order_key)
        for s in order:
            for p, g in df[df["strategy"] == s].groupby("workers"):
                g = g.sort_values("layers")
                st = figstyle.series_style(s)
                st["linestyle"] = "-" if p == max(ps) else "--"
                if p != max(ps):
                    st["markerfacecolor"] = "white"
                ax.plot(g["layers"], g["bytes_per_epoch"] / 1e6, label=f"{series_name(by_id[g['run_id'].iloc[0]])}, P={p}",
                        **st)
                a = g["analytic_bytes_per_epoch"].dropna() if "analytic_bytes_per_epoch" in g else []
                if len(a):
                    ax.scatter(g.loc[a.index, "layers"], a / 1e6, marker="D", s=30, facecolors="none",
                               edgecolors="black", linewidths=0.6, zorder=3)
        if "analytic_bytes_per_epoch" in df and df["analytic_bytes_per_epoch"].notna().any():
            ax.scatter([], [], marker="D", s=30, facecolors="none", edgecolors="black", label="analytic (formula)")
        _plain_log(ax)
        ax.set_xticks(sorted(df["layers"].unique()))
        ax.set_xlabel("GNN layers L")
        ax.set_ylabel("MB sent per epoch (log)")
        ax.grid(alpha=0.3, which="both")
        h, lab = ax.get_legend_handles_labels()
        figlayout.legend_below(fig, h, lab, ncols=2)
        name = r0["dataset"] if len(r0["dataset"]) <= 24 else r0["dataset"].split(":")[0].upper()
        tensor_note = ("; tensor runs the naive per-layer mode (a split and a gather per layer, so its volume grows "
                       "with L)" if "tensor" in order else "")
        figlayout.finish(fig, f"GNNPipe-style comparison, communication volume vs depth: {name} "
                         f"({int(r0['graph.nodes']):,} vertices, {int(r0['graph.edges']):,} edges)",
                         [f"{models_line(recs)}; hidden {r0['hidden']}, exact byte counts per training epoch "
                          f"(P={', '.join(str(p) for p in ps)}; dashed, hollow: P={min(ps)}){tensor_note}",
                          provenance(df)])
        return figstyle.save(fig, path, formats)

