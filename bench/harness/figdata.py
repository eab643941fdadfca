"""What a figure draws, as tables: the runs of one configuration family and the numbers of each series.

    df, left_out = figdata.one_family(results.load_runs(records, latest=True), records)
    pts = figdata.speedup_points(df)     # series, workers, speedup, lo, hi: exactly what speedup_* draws

A *configuration family* is every run that differs only in strategy, worker count and strategy options:
same dataset, model, layers, hidden, epochs, evaluation cadence, recipe, seed, and (unless
``mix_versions``) the same code version. A figure draws one family, the newest per (dataset, model,
layers, hidden), so runs of ``--eval-every 0`` and ``1``, or of two commits, are never mixed silently.
Every number comes from ``results.load_runs`` (``metrics.summary``, ``metrics.repeats``): the table a
sweep prints and the figure of that sweep show the same medians.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd

from . import figstyle

FAMILY_EXCLUDE = ("strategy", "workers", "options", "timeout_s")


def family_key(rec: dict[str, Any], mix_versions: bool = False) -> str:
    """Hash of what makes two runs comparable in one figure (see the module docstring)."""
    cfg = {k: v for k, v in rec.get("config", {}).items() if k not in FAMILY_EXCLUDE}
    if not mix_versions:
        cfg["git_sha"] = rec.get("env", {}).get("git_sha")
    return hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:10]


def with_series(df: pd.DataFrame) -> pd.DataFrame:
    """Adds ``series`` (legend name: strategy and variant) and ``variant`` columns."""
    df = df.copy()
    rows = [r for _, r in df.iterrows()]
    df["variant"] = [figstyle.variant_of(r) for r in rows]
    df["series"] = [figstyle.series_label(r) for r in rows]
    return df


def one_family(df: pd.DataFrame, records: list[dict[str, Any]], mix_versions: bool = False) -> tuple[pd.DataFrame, int]:
    """``df`` (``load_runs(latest=True)`` rows of one dataset/model/layers/hidden) cut to its newest run's
    configuration family, one row per (series, workers) (the newest); returns it and how many rows were
    left out."""
    fam = {r["run_id"]: family_key(r, mix_versions) for r in records if r.get("run_id") is not None}
    d = with_series(df)
    d["family"] = d["run_id"].map(fam)
    newest = d.sort_values("time_utc").iloc[-1]["family"]
    kept = d[d["family"] == newest].sort_values("time_utc")
    kept = kept.drop_duplicates(["series", "workers"], keep="last")
    return kept, len(d) - len(kept)


def single_base(df: pd.DataFrame) -> float | None:
    """Epoch seconds of ``single`` at P=1 in this family (median over its repeats), or None."""
    base = df[(df["strategy"] == "single") & (df["workers"] == 1)]
    return float(base.sort_values("time_utc")["epoch_s"].iloc[-1]) if len(base) else None


def speedup_points(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (series, workers) of the non-single strategies: speedup over single at P=1 (median
    epoch), and its range from the repeats' min-max (a single run: fastest to slowest timed epoch)."""
    base = single_base(df)
    d = df[df["strategy"] != "single"].sort_values(["series", "workers"])
    if base is None or d.empty:
        return pd.DataFrame(columns=["series", "strategy", "variant", "workers", "speedup", "lo", "hi"])
    return pd.DataFrame({"series": d["series"], "strategy": d["strategy"], "variant": d["variant"],
                         "workers": d["workers"], "speedup": base / d["epoch_s"], "lo": base / d["epoch_s_max"],
                         "hi": base / d["epoch_s_min"], "repeats": d.get("repeats", 1)}).reset_index(drop=True)


def describe(df: pd.DataFrame) -> str:
    """The family in words, for a caption: model, depth, widths, epochs, evaluation cadence, repeats."""
    r = df.iloc[0]
    model = str(r["model"]).upper() if r["model"] != "decoupled" else "decoupled (MLP + propagation)"
    ev = int(r.get("eval_every") or 0)
    evals = ("evaluated every epoch" if ev == 1 else f"evaluated every {ev} epochs") if ev else "final evaluation only"
    n = int(df["repeats"].max()) if "repeats" in df and df["repeats"].notna().any() else 1
    return (f"{model}, {r['layers']} layers, hidden {r['hidden']}, {int(r['epochs'])} epochs "
            f"({int(r.get('warmup_epochs', 1))} warm-up), {evals}; {n} repeat{'s' if n > 1 else ''}")
