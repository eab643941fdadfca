"""Layout that never collides: titles wrapped to the figure, legends outside the data, value labels
placed where they overlap nothing (or left out), and the check the tests run on every figure type.

    fig, ax = figlayout.new(size)                      # constrained layout, room kept for the caption
    figlayout.legend_below(fig, handles, labels)       # outside every axes
    figlayout.finish(fig, title, caption_lines)        # wrapped title, wrapped caption at the bottom
    figlayout.place_labels(ax, [(x, y, "1.65x", color), ...], obstacles)   # after finish
    figlayout.collisions(fig)                          # [] when no two texts overlap and none leaves the canvas

Text boxes come from matplotlib itself (``artist.get_window_extent(renderer)`` after a draw), so what is
checked is what is drawn.
"""
from __future__ import annotations

import textwrap
from typing import Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox

_CHAR_W = 0.55  # mean glyph width / font size (DejaVu Sans), for wrapping before anything is drawn
# label offsets tried in order, in points from the data point: above, right, below, left, then farther
OFFSETS = ((0, 5), (6, 2), (0, -10), (-6, 2), (8, 9), (8, -11), (-8, 9), (-8, -11), (0, 14), (0, -19))


def wrap(text: str, width_in: float, fontsize: float) -> str:
    """``text`` wrapped (per existing line) to fit ``width_in`` inches at ``fontsize`` points."""
    chars = max(int(width_in * 72 / (fontsize * _CHAR_W)), 10)
    return "\n".join(textwrap.fill(line, chars, break_on_hyphens=False) if line else line
                     for line in text.splitlines())


def new(figsize: tuple[float, float], **subplots) -> tuple:
    """A figure with constrained layout and its axes (``plt.subplots`` arguments)."""
    fig, axes = plt.subplots(figsize=figsize, layout="constrained", **subplots)
    return fig, axes


def legend_below(fig, handles: list, labels: list[str], ncols: int | None = None) -> Legend | None:
    """One legend for the figure, below the axes (never over data); ``finish`` puts it above the caption."""
    if not handles:
        return None
    width_in = fig.get_figwidth()
    longest = max(len(s) for s in labels)
    fits = max(int(width_in * 72 / ((longest + 5) * plt.rcParams["legend.fontsize"] * _CHAR_W)), 1)
    n = ncols or min(len(labels), fits)
    legend = fig.legend(handles, labels, loc="lower center", ncols=n, bbox_to_anchor=(0.5, 0.0),
                        borderaxespad=0.2, columnspacing=1.2)
    legend.set_in_layout(False)
    return legend


def finish(fig, title: str | None, caption: Iterable[str]) -> None:
    """Title on top (wrapped to the figure's width), the caption lines at the bottom (wrapped, small,
    grey), the figure legend just above them, the axes laid out in what is left."""
    width_in = fig.get_figwidth()
    size = plt.rcParams["font.size"]
    if title:
        fig.suptitle(wrap(title, width_in * 0.97, size + 0.5), fontsize=size + 0.5, x=0.01, ha="left")
    cap = wrap("\n".join(caption), width_in * 0.97, size - 1.5)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    height_px = fig.bbox.height
    bottom = 2.0 / height_px
    if cap:
        text = fig.text(0.01, bottom, cap, fontsize=size - 1.5, color="dimgray", va="bottom", ha="left")
        text.set_in_layout(False)
        bottom += (text.get_window_extent(renderer).height + 3) / height_px
    for legend in fig.legends:
        legend.set_bbox_to_anchor((0.5, bottom), transform=fig.transFigure)
        bottom += (legend.get_window_extent(renderer).height + 2) / height_px
    fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom))
    fig.canvas.draw()  # the final layout: data coordinates map to where they will be drawn


def _drawn_tick_labels(fig) -> set[int]:
    """ids of the tick labels matplotlib draws (others exist but lie outside the view)."""
    drawn = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis._update_ticks():  # the ticks the axis draws: inside the view interval
                for label in (tick.label1, tick.label2):
                    if label.get_visible():
                        drawn.add(id(label))
    return drawn


def text_boxes(fig) -> list[tuple[Text, Bbox]]:
    """Every drawn, non-empty text of the figure with its box in display (pixel) coordinates."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    drawn_ticks = _drawn_tick_labels(fig)
    ticks = {id(label) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
             for t in axis.get_major_ticks() + axis.get_minor_ticks() for label in (t.label1, t.label2)}
    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip() or (id(t) in ticks and id(t) not in drawn_ticks):
            continue
        if not _parents_visible(t):
            continue
        box = t.get_window_extent(renderer)
        if box.width > 0 and box.height > 0:
            out.append((t, box))
    return out


def _parents_visible(t: Text) -> bool:
    ax = t.axes
    return ax is None or ax.get_visible()


def _overlap(a: Bbox, b: Bbox, pad: float = 0.5) -> bool:
    return a.x0 + pad < b.x1 and b.x0 + pad < a.x1 and a.y0 + pad < b.y1 and b.y0 + pad < a.y1


def collisions(fig) -> list[str]:
    """What is wrong with the figure's layout, one line each (empty: nothing): two texts overlapping,
    a text leaving the canvas, a legend lying over an axes' data area."""
    boxes = text_boxes(fig)
    canvas = fig.bbox
    problems = []
    for t, b in boxes:
        if b.x0 < canvas.x0 - 0.5 or b.y0 < canvas.y0 - 0.5 or b.x1 > canvas.x1 + 0.5 or b.y1 > canvas.y1 + 0.5:
            problems.append(f"off the canvas: {t.get_text()!r}")
    for i, (t1, b1) in enumerate(boxes):
        for t2, b2 in boxes[i + 1:]:
            if _overlap(b1, b2):
                problems.append(f"overlap: {t1.get_text()!r} and {t2.get_text()!r}")
    renderer = fig.canvas.get_renderer()
    legends = [lg for lg in fig.findobj(Legend) if lg.get_visible()]
    for lg in legends:
        lb = lg.get_window_extent(renderer)
        for ax in fig.axes:
            if ax.get_visible() and _overlap(lb, ax.bbox, pad=1.0):
                problems.append(f"legend over the data of axes {ax.get_title()!r}")
    return problems


def obstacle(ax, x: float, y: float, w_pt: float = 6, h_pt: float = 6) -> Bbox:
    """A box of ``w_pt`` x ``h_pt`` points around a data point (a marker), in display coordinates."""
    px, py = ax.transData.transform((x, y))
    scale = ax.figure.dpi / 72
    return Bbox.from_extents(px - w_pt * scale / 2, py - h_pt * scale / 2, px + w_pt * scale / 2, py + h_pt * scale / 2)


def segment(ax, x: float, y0: float, y1: float, w_pt: float = 4) -> Bbox:
    """A vertical error bar from ``y0`` to ``y1`` at ``x`` (caps included), in display coordinates."""
    (px, p0), (_, p1) = ax.transData.transform([(x, y0), (x, y1)])
    half = w_pt * ax.figure.dpi / 72 / 2
    return Bbox.from_extents(px - half, min(p0, p1), px + half, max(p0, p1))


def place_labels(ax, labels: list[tuple[float, float, str, str]], obstacles: Iterable[Bbox] = (),
                 fontsize: float | None = None, offsets: tuple[tuple[float, float], ...] = OFFSETS,
                 ha: str = "center") -> int:
    """Annotate each ``(x, y, text, color)`` at the first offset where its box overlaps no other text,
    no obstacle (markers, error bars) and stays inside the axes; a label with no free spot is left out.
    Call after the layout is final (``finish``). Returns how many were left out."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    taken = [b for _, b in text_boxes(fig)] + list(obstacles)
    inside = ax.bbox
    omitted = 0
    for x, y, text, color in labels:
        placed = False
        for dx, dy in offsets:
            ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), color=color,
                              fontsize=fontsize or plt.rcParams["font.size"] - 1, ha=ha, va="center",
                              annotation_clip=True)
            ann.set_in_layout(False)
            box = ann.get_window_extent(renderer)
            if (box.x0 >= inside.x0 and box.x1 <= inside.x1 and box.y0 >= inside.y0 and box.y1 <= inside.y1
                    and not any(_overlap(box, b) for b in taken)):
                taken.append(box)
                placed = True
                break
            ann.remove()
        omitted += not placed
    return omitted
