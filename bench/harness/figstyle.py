"""One look for every figure: a fixed colour and marker per strategy, a line style per model, paper sizes.

    from graphpar.bench.harness import figstyle
    st = figstyle.series_style("partition", variant="stale")   # color, marker, markerfacecolor, linestyle
    with figstyle.paper():                                        # fonts sized for a 3.3 in column
        fig, ax = plt.subplots(figsize=figstyle.size("single"))
    figstyle.save(fig, out / "speedup_cora", ("png", "pdf"))       # 300 dpi PNG, vector PDF/SVG

Colours are the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies), one
per strategy whatever else a figure draws: ``tensor`` is blue in every figure. A variant of a strategy
(``stale``: ``partition --stale K``; ``hybrid``: ``pipeline --graph-parts G``; ``exact``: ``pipeline
--staleness 0``) keeps its strategy's hue, lighter or darker, with its own marker and hollow or filled
face, so it also reads in greyscale. Phases of an epoch (breakdown figures) use greys for compute,
yellow for communication and a hatched white for idle (pipeline bubble, barrier wait), never a strategy
colour.
"""
from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any, Iterator

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors as mcolors
import matplotlib.pyplot as plt

from ..files import replacing

STRATEGY_COLORS = {"single": "#000000", "tensor": "#0072b2", "partition": "#d55e00", "pipeline": "#009e73",
                   "sampling": "#cc79a7"}
STRATEGY_MARKERS = {"single": "*", "tensor": "o", "partition": "s", "pipeline": "^", "sampling": "D"}
_FALLBACK_COLORS = ("#E69F00", "#56B4E9", "#F0E442", "#7F7F7F", "#882255", "#44AA99")
_FALLBACK_MARKERS = ("P", "X", "v", "<", ">", "h")
# variant -> (mix with white (>0) or black (<0), marker override, hollow face)
VARIANTS = {None: (0.0, None, False), "stale": (0.45, None, True), "hybrid": (-0.35, "v", False),
            "exact": (0.0, None, True)}
MODEL_LINESTYLES = {"gcn": "-", "sage": "--", "decoupled": "-.", "gat": ":"}
PHASE_STYLE = (  # (summary column, colour, hatch, legend label): bottom to top of a breakdown bar
    ("phase.aggregation.wall_s", "#404040", None, "aggregation (SpMM)"),
    ("phase.dense.wall_s", "#808080", None, "dense NN"),
    ("phase.layout.wall_s", "#B0B0B0", None, "layout / packing"),
    ("phase.optimizer.wall_s", "#D8D8D8", None, "optimizer"),
    ("comm_exposed_s", "#F0E442", None, "communication (exposed)"),
    ("idle_total_s", "#FFFFFF", "////", "idle (bubble, barrier wait)"),
)
WIDTHS = {"single": 3.3, "double": 6.9}  # inches: one column / full width of a two-column paper
DPI = 300
FORMATS = ("png", "pdf", "svg")
RC = {"font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7, "legend.fontsize": 6, "xtick.labelsize": 6.5,
      "ytick.labelsize": 6.5, "lines.linewidth": 1.1, "lines.markersize": 4, "axes.linewidth": 0.6,
      "grid.linewidth": 0.4, "xtick.major.width": 0.6, "ytick.major.width": 0.6, "legend.frameon": False,
      "legend.handlelength": 1.8, "savefig.dpi": DPI, "pdf.fonttype": 42, "svg.fonttype": "none",
      "axes.titlelocation": "left", "figure.dpi": 100}


ORDER = ("single", "tensor", "partition", "pipeline", "sampling")
_VARIANT_ORDER = (None, "exact", "stale", "hybrid")


def order_key(strategy: str, variant: str | None = None) -> tuple:
    """Sort key: the fixed strategy order (others alphabetically after), then the variant."""
    rank = ORDER.index(strategy) if strategy in ORDER else len(ORDER)
    variant = variant if isinstance(variant, str) else None  # pandas may hold None as NaN
    return rank, strategy, _VARIANT_ORDER.index(variant) if variant in _VARIANT_ORDER else 9


def _fallback(strategy: str, table: tuple[str, ...]) -> str:
    """A strategy outside the map still gets the same colour/marker every time (hash of its name)."""
    return table[int(hashlib.sha1(strategy.encode()).hexdigest(), 16) % len(table)]


def _mix(color: str, amount: float) -> str:
    rgb = mcolors.to_rgb(color)
    target = (1.0, 1.0, 1.0) if amount > 0 else (0.0, 0.0, 0.0)
    a = abs(amount)
    return mcolors.to_hex(tuple(c + (t - c) * a for c, t in zip(rgb, target)))


def strategy_color(strategy: str, variant: str | None = None) -> str:
    variant = variant if isinstance(variant, str) else None
    base = STRATEGY_COLORS.get(strategy) or _fallback(strategy, _FALLBACK_COLORS)
    return _mix(base, VARIANTS.get(variant, VARIANTS[None])[0])


def series_style(strategy: str, variant: str | None = None, model: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``ax.plot`` of one series: colour, marker, face, line style (by model)."""
    variant = variant if isinstance(variant, str) else None
    _, marker, hollow = VARIANTS.get(variant, VARIANTS[None])
    color = strategy_color(strategy, variant)
    return {"color": color, "marker": marker or STRATEGY_MARKERS.get(strategy) or _fallback(strategy, _FALLBACK_MARKERS),
            "markerfacecolor": "white" if hollow else color, "markeredgecolor": color,
            "linestyle": MODEL_LINESTYLES.get(model or "gcn", ":")}


def variant_of(row: Any) -> str | None:
    """The variant a run row (``results.load_runs`` row or a record's config) belongs to."""
    def opt(key: str, default: Any) -> Any:
        if isinstance(row, dict) and "options" in row:
            return (row.get("options") or {}).get(key, default)
        value = row.get(f"opt.{key}", default) if hasattr(row, "get") else default
        return default if value is None or value != value else value  # NaN: a strategy without the option
    strategy = row.get("strategy")
    if strategy == "partition" and int(opt("stale", 1)) > 1:
        return "stale"
    if strategy == "pipeline" and int(opt("graph_parts", 1)) > 1:
        return "hybrid"
    if strategy == "pipeline" and int(opt("staleness", 1)) == 0:
        return "exact"
    return None


def series_label(row: Any) -> str:
    """Legend name of a run's series: the strategy, with its variant's defining option."""
    strategy, variant = row.get("strategy"), variant_of(row)
    if variant is None:
        return str(strategy)
    get = (lambda k: (row.get("options") or {}).get(k)) if isinstance(row, dict) and "options" in row else \
        (lambda k: row.get(f"opt.{k}"))
    detail = {"stale": lambda: f"stale {int(get('stale'))}", "hybrid": lambda: f"hybrid G={int(get('graph_parts'))}",
              "exact": lambda: "staleness 0"}[variant]()
    return f"{strategy} ({detail})"


def size(width: str = "single", height: float | None = None) -> tuple[float, float]:
    """(width, height) in inches; the default height keeps a 4:3-ish panel at one column."""
    w = WIDTHS[width]
    return w, height if height is not None else (2.5 if width == "single" else 2.8)


@contextlib.contextmanager
def paper() -> Iterator[None]:
    """Matplotlib settings of every figure (fonts for print at column width, embedded TrueType in PDF)."""
    with plt.rc_context(RC):
        yield


def parse_formats(value: str | None) -> tuple[str, ...]:
    """``"png,pdf"`` -> ("png", "pdf"); an unknown format is a ValueError naming the allowed ones."""
    if not value:
        return ("png",)
    out = tuple(dict.fromkeys(v.strip().lower().lstrip(".") for v in value.split(",") if v.strip()))
    bad = [v for v in out if v not in FORMATS]
    if bad or not out:
        raise ValueError(f"--format: {', '.join(bad) or repr(value)} is not one of {', '.join(FORMATS)}; "
                         "e.g. --format png,pdf")
    return out


def save(fig, path: Path, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Write ``fig`` once per format (``path`` with each suffix; PNG at 300 dpi) and free it."""
    written = []
    for fmt in formats:
        out = path.with_suffix("." + fmt)
        with replacing(out) as f:  # an exclusive temporary beside it, then os.replace: no planted link followed
            fig.savefig(f, format=fmt, dpi=DPI, metadata=_metadata(fmt))
        written.append(out)
    plt.close(fig)
    return written


def _metadata(fmt: str) -> dict[str, Any] | None:
    """No creation date in vector files: the same figure written twice is the same bytes."""
    if fmt == "pdf":
        return {"CreationDate": None}
    if fmt == "svg":
        return {"Date": None}
    return None
