"""One figure style for every notebook and CLI plot, and provenance on every figure."""
from __future__ import annotations

import itertools
import math
import os
import textwrap
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib import font_manager
from matplotlib.text import Text

from .errors import not_a_command
from .files import write_set

__all__ = ["use_style", "provenance", "save_figure", "figure_writers", "PAPER_COLOR", "OURS_COLOR",
           "repel_texts", "visible_texts", "overlapping_texts", "texts_off_canvas", "empty_axes", "legends_over_data",
           "smallest_text_px", "legibility_problems", "NOTEBOOK_WIDTH_PX", "MIN_TEXT_PX"]

PAPER_COLOR = "0.55"
OURS_COLOR = "#1f6fb4"
NOTEBOOK_WIDTH_PX = 1000  # JupyterLab's output area on a laptop screen: wider figures are scaled down to it
MIN_TEXT_PX = 8           # the smallest font size, in screen pixels, that we call legible


def _matplotlib_fonts_first() -> None:
    """Text in matplotlib's own fonts (DejaVu Sans, STIX), listed before a system copy of another version
    and added when the host's font cache left them out: the PNG's glyphs and the PDF's embedded font then
    depend on matplotlib's version alone, not on the fonts a host has installed."""
    own = Path(matplotlib.get_data_path(), "fonts", "ttf")
    listed = {Path(f.fname) for f in font_manager.fontManager.ttflist}
    for path in sorted(set(own.glob("*.ttf")) - listed):
        font_manager.fontManager.addfont(path)
    font_manager.fontManager.ttflist.sort(key=lambda f: Path(f.fname).parent != own)   # stable: first of equals wins


def use_style() -> None:
    _matplotlib_fonts_first()
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1,
                  rc={"figure.dpi": 110, "savefig.dpi": 200, "savefig.bbox": "tight",
                      "pdf.fonttype": 42, "axes.titleweight": "bold",
                      "svg.hashsalt": "shvit-lab", "path.simplify": True})


_PROVENANCE_PT = 7
_CHAR_EM = 0.62  # a wide character's width in em of the style's sans-serif (DejaVu Sans): wrap before the edge


def provenance(fig: plt.Figure, *, scale: str, weights: str, extra: str = "") -> None:
    """Stamp what was measured (micro / full scale; pretrained / random / trained here weights) under the
    figure, its " | "-separated parts wrapped to the figure's width, at least `MIN_TEXT_PX` tall where
    a notebook shows the figure."""
    parts = [f"scale: {scale}", f"weights: {weights}"] + ([extra] if extra else [])
    size = max(_PROVENANCE_PT, math.ceil(2 * MIN_TEXT_PX * 72 * fig.get_figwidth() / NOTEBOOK_WIDTH_PX) / 2)
    width = int(fig.get_figwidth() * 72 / (size * _CHAR_EM))
    lines = [""]
    for part in parts:
        for piece in textwrap.wrap(part, width) or [""]:
            joined = f"{lines[-1]} | {piece}" if lines[-1] else piece
            if len(joined) <= width:
                lines[-1] = joined
            else:
                lines.append(piece)
    fig.text(0.995, -0.01, "\n".join(lines), ha="right", va="top", fontsize=size, color="0.35",
             gid="provenance")


def repel_texts(texts: list[Text], *, pad_pt: float = 1.0, max_rounds: int = 300) -> None:
    """Move annotations (`textcoords="offset points"`) apart along y until no two boxes overlap: each
    overlapping pair is pushed apart by half its overlap, the upper one up, in a fixed order, so the
    same figure always gets the same placement (a small deterministic repel, no adjustText)."""
    if not texts:
        return
    fig = texts[0].figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    to_pt = 72 / fig.dpi
    for _ in range(max_rounds):
        boxes = [t.get_window_extent(renderer) for t in texts]
        moved = False
        for i, j in itertools.combinations(range(len(texts)), 2):
            a, b = boxes[i], boxes[j]
            if not a.padded(pad_pt / to_pt / 2).overlaps(b.padded(pad_pt / to_pt / 2)):
                continue
            lower, upper = (i, j) if (a.y0 + a.y1, i) < (b.y0 + b.y1, j) else (j, i)
            step = (min(a.y1, b.y1) - max(a.y0, b.y0)) * to_pt / 2 + pad_pt / 2
            for k, sign in ((lower, -1), (upper, 1)):
                x, y = texts[k].xyann
                texts[k].xyann = (x, y + sign * step)
                boxes[k] = texts[k].get_window_extent(renderer)
            moved = True
        if not moved:
            return


def figure_writers(fig: plt.Figure, stem: str | os.PathLike) -> dict:
    """{stem.png: write, stem.pdf: write} for `core.files.write_set` (deterministic metadata). The stem keeps
    its dots (`cat.v1` gives cat.v1.png, as the CLIs check and announce), never `Path.with_suffix`'s cat.png."""
    def writer(fmt: str, meta: dict):
        return lambda tmp: fig.savefig(tmp, format=fmt, metadata=meta)
    return {Path(f"{stem}.png"): writer("png", {"Software": None}),
            Path(f"{stem}.pdf"): writer("pdf", {"CreationDate": None, "Producer": None})}


def save_figure(fig: plt.Figure, stem: str | os.PathLike) -> list[Path]:
    """Write `stem`.png and `stem`.pdf together or not at all (`figure_writers`); returns the paths."""
    Path(stem).parent.mkdir(parents=True, exist_ok=True)
    return write_set(figure_writers(fig, stem))


# -- legibility: what a reader sees of a figure at the width a notebook shows it --------------------------



def _drawn_ticklabels(ax) -> set:
    """The tick labels matplotlib draws: those of ticks inside the view limits, visible."""
    return {label for axis in ax._axis_map.values() if axis.get_visible()
            for tick in axis._update_ticks()  # the ticks `Axis.draw` picks
            for label in (tick.label1, tick.label2) if label.get_visible()}


def visible_texts(fig: plt.Figure, *, draw: bool = True) -> list[Text]:
    """Every non-empty text the figure draws: titles, labels, drawn tick labels, legends, annotations
    (`draw=False`: the figure was drawn already, e.g. by `fig.canvas.draw()`)."""
    if draw:
        fig.canvas.draw()
    undrawn = set()
    for ax in fig.axes:
        every = {t for axis in ax._axis_map.values() for t in axis.get_ticklabels(which="both")}
        undrawn |= every - (_drawn_ticklabels(ax) if ax.get_visible() and ax.axison else set())
    hidden = [ax for ax in fig.axes if not ax.get_visible()]
    texts = [t for t in fig.findobj(Text) if t not in undrawn and t.get_visible() and t.get_text().strip()
             and t.axes not in hidden]
    return list(dict.fromkeys(texts))


def overlapping_texts(fig: plt.Figure, tolerance_px: float = 1.0, *, draw: bool = True) -> list[tuple[Text, Text]]:
    """Pairs of drawn texts whose boxes overlap by more than `tolerance_px` both across and down."""
    texts = visible_texts(fig, draw=draw)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer).padded(-tolerance_px) for t in texts]
    return [(texts[i], texts[j]) for i in range(len(texts)) for j in range(i + 1, len(texts))
            if boxes[i].overlaps(boxes[j])]


def texts_off_canvas(fig: plt.Figure, tolerance_px: float = 1.0, *, draw: bool = True) -> list[Text]:
    """Texts that reach past the figure's edges. The provenance stamp sits below the figure on purpose
    (`savefig.bbox = "tight"` keeps it): it is only held to the figure's width."""
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox.padded(tolerance_px)
    off = []
    for t in visible_texts(fig, draw=draw):
        box = t.get_window_extent(renderer)
        inside_x = canvas.x0 <= box.x0 and box.x1 <= canvas.x1
        inside_y = canvas.y0 <= box.y0 and box.y1 <= canvas.y1
        if not inside_x or not (inside_y or t.get_gid() == "provenance"):
            off.append(t)
    return off


def empty_axes(fig: plt.Figure) -> list:
    """Cells with nothing in them: axes that are hidden, or hold no line, collection, patch, image,
    text or legend (a panel switched off to leave a gap counts: the reader sees a hole)."""
    def holds_something(ax) -> bool:
        return any((ax.lines, ax.collections, ax.patches, ax.images, ax.texts, ax.get_legend()))
    return [ax for ax in fig.axes if not ax.get_visible() or not holds_something(ax)]


def _points(artist) -> np.ndarray:
    """An artist's data points in display coordinates (a line's vertices, a scatter's offsets)."""
    if hasattr(artist, "get_xydata"):
        return np.reshape(artist.get_transform().transform(artist.get_xydata()), (-1, 2))
    return np.reshape(artist.get_offset_transform().transform(artist.get_offsets()), (-1, 2))


def legends_over_data(fig: plt.Figure, *, draw: bool = True) -> list[tuple]:
    """(legend, artist) pairs where an axes' legend covers that axes' data: a point of a line or a
    scatter, or a bar (any patch)."""
    if draw:
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    hits = []
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None or not legend.get_visible():
            continue
        box = legend.get_window_extent(renderer)
        for artist in [*ax.lines, *ax.collections]:
            p = _points(artist)
            if ((p[:, 0] >= box.x0) & (p[:, 0] <= box.x1) & (p[:, 1] >= box.y0) & (p[:, 1] <= box.y1)).any():
                hits.append((legend, artist))
        hits += [(legend, p) for p in ax.patches if p.get_visible() and box.overlaps(p.get_window_extent(renderer))]
    return hits


def smallest_text_px(fig: plt.Figure, shown_width_px: float = NOTEBOOK_WIDTH_PX, *, draw: bool = True) -> float:
    """The smallest font size among the drawn texts in screen pixels, the figure shown at its dpi and
    scaled down to `shown_width_px` when wider (JupyterLab fits an image to its output area)."""
    px_per_pt = min(fig.dpi, shown_width_px / fig.get_figwidth()) / 72
    return min(t.get_fontsize() for t in visible_texts(fig, draw=draw)) * px_per_pt


def legibility_problems(fig: plt.Figure, *, shown_width_px: float = NOTEBOOK_WIDTH_PX,
                        min_text_px: float = MIN_TEXT_PX) -> list[str]:
    """What keeps a reader from reading `fig`, one line each (empty: nothing): overlapping texts, texts
    past the figure's edges, empty cells, legends over data, text under `min_text_px` at `shown_width_px`."""
    fig.canvas.draw()
    problems = [f"overlap: {a.get_text()!r} / {b.get_text()!r}" for a, b in overlapping_texts(fig, draw=False)]
    problems += [f"off canvas: {t.get_text()!r}" for t in texts_off_canvas(fig, draw=False)]
    problems += [f"empty axes at {tuple(round(v, 2) for v in ax.get_position().bounds)}" for ax in empty_axes(fig)]
    problems += [f"legend over data in {legend.axes.get_title()!r}: {artist}"
                 for legend, artist in legends_over_data(fig, draw=False)]
    px_per_pt = min(fig.dpi, shown_width_px / fig.get_figwidth()) / 72
    small = [t for t in visible_texts(fig, draw=False) if t.get_fontsize() * px_per_pt < min_text_px]
    if small:
        problems.append(f"text {smallest_text_px(fig, shown_width_px, draw=False):.1f} px at {shown_width_px} px "
                        f"wide (< {min_text_px}): {[t.get_text() for t in small[:4]]}")
    return problems

if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
