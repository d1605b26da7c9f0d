"""One figure style for every notebook and CLI plot, and provenance on every figure."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

from .errors import not_a_command
from .files import write_set

__all__ = ["use_style", "provenance", "save_figure", "figure_writers", "PAPER_COLOR", "OURS_COLOR"]

PAPER_COLOR = "0.55"
OURS_COLOR = "#1f6fb4"


def use_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1,
                  rc={"figure.dpi": 110, "savefig.dpi": 200, "savefig.bbox": "tight",
                      "pdf.fonttype": 42, "axes.titleweight": "bold",
                      "svg.hashsalt": "shvit-lab", "path.simplify": True})


def provenance(fig: plt.Figure, *, scale: str, weights: str, extra: str = "") -> None:
    """Stamp what was measured (micro / full scale; pretrained / random / trained here weights)."""
    text = f"scale: {scale} | weights: {weights}" + (f" | {extra}" if extra else "")
    fig.text(0.995, -0.01, text, ha="right", va="top", fontsize=7, color="0.35")


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


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
