"""A model zoo on one plane: MACs, memory traffic and the memory-bound share of many timm models.

    >>> machine = committed_machine("cpu")              # results/09_roofline_machine_cpu.csv, not re-measured
    >>> table = zoo_table(ZOO_MODELS, machine)          # one row per model, batch 1, default resolution
    >>> fig = plot_zoo(table)                           # MACs vs mem_bytes, coloured by memory-bound share

Every model is built with random weights at its default (pretrained-config) resolution, BatchNorm folded,
and counted on one image (`roofline.model_roofline`): counts do not depend on the weights. Its
`memory_bound_share` is the roofline's own definition (`Roofline.by_stage`'s `memory_bound_ms` over
`predicted_ms`): the share of the model's predicted time spent in ops whose arithmetic intensity
(`flops_per_byte`, 2 FLOP per MAC) is below the machine's ridge point, each op priced as
max(compute, memory) + per-op overhead. A model with an op no rule counts is refused rather than
drawn with too few MACs.
"""
from __future__ import annotations

import sys
from typing import Iterable, Mapping, Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import timm
from matplotlib.colors import Normalize
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, LogLocator
from matplotlib.transforms import Bbox
from tqdm import tqdm

from ..core.errors import UserError, not_a_command
from ..core.models import check_model_name
from ..core.paths import project_root
from ..core.plotting import use_style
from .roofline import Machine, Roofline, model_roofline

__all__ = ["ZOO_MODELS", "ZOO_HIGHLIGHT", "committed_machine", "model_family", "zoo_row", "zoo_table", "plot_zoo"]

# timm name -> label: 33 models of 22 timm modules, the papers' two families among them.
ZOO_MODELS = {
    "resnet18": "ResNet-18", "resnet50": "ResNet-50", "mobilenetv2_100": "MobileNetV2",
    "mobilenetv3_large_100": "MobileNetV3-L", "efficientnet_b0": "EfficientNet-B0", "ghostnet_100": "GhostNet",
    "regnety_016": "RegNetY-1.6G", "convnext_tiny": "ConvNeXt-T", "repvit_m1_1": "RepViT-M1.1",
    "mobileone_s1": "MobileOne-S1", "deit_tiny_patch16_224": "DeiT-T", "deit_small_patch16_224": "DeiT-S",
    "swin_tiny_patch4_window7_224": "Swin-T", "pvt_v2_b1": "PVTv2-B1", "poolformer_s12": "PoolFormer-S12",
    "levit_128s": "LeViT-128S", "levit_256": "LeViT-256", "mobilevit_s": "MobileViT-S",
    "mobilevitv2_100": "MobileViTv2-1.0", "edgenext_small": "EdgeNeXt-S", "fastvit_t8": "FastViT-T8",
    "efficientformer_l1": "EfficientFormer-L1", "efficientformerv2_s1": "EfficientFormerV2-S1",
    "tiny_vit_5m_224": "TinyViT-5M", "maxvit_tiny_tf_224": "MaxViT-T", "coatnet_0_rw_224": "CoAtNet-0",
    "efficientvit_m0": "EfficientViT-M0", "efficientvit_m4": "EfficientViT-M4", "efficientvit_m5": "EfficientViT-M5",
    "shvit_s1": "SHViT-S1", "shvit_s2": "SHViT-S2", "shvit_s3": "SHViT-S3", "shvit_s4": "SHViT-S4",
}
# family (timm module) -> (legend label, colour): the papers' models, drawn as connected, labelled series
ZOO_HIGHLIGHT = {"shvit": ("SHViT (S1–S4)", "#d62728"), "efficientvit_msra": ("EfficientViT (M0, M4, M5)", "#ff7f0e")}

_COLUMNS = ["model", "family", "resolution", "batch_size", "params", "macs", "mem_bytes", "flops_per_byte",
            "predicted_ms", "memory_bound_ms", "memory_bound_share", "machine"]
_MIB, _GIGA = 2 ** 20, 1e9
_RADII = (4, 8, 13, 19, 26, 34, 44, 56, 70)           # label distances from their point tried, in points
_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1),
               (1, 0.5), (-1, 0.5), (1, -0.5), (-1, -0.5), (0.5, 1), (-0.5, 1), (0.5, -1), (-0.5, -1))
_ALIGN = {1: ("left", "bottom"), 0: ("center", "center"), -1: ("right", "top")}   # by the direction's signs


def committed_machine(device: str = "cpu") -> Machine:
    """The machine description notebook 09 measured and committed (`results/09_roofline_machine_<device>.csv`)."""
    path = project_root() / "results" / f"09_roofline_machine_{device}.csv"
    if not path.is_file():
        raise UserError(f"no committed machine description {path}; run notebooks/09_roofline.ipynb on {device} first")
    return Machine.from_dict(pd.read_csv(path).iloc[0].to_dict())


def model_family(name: str) -> str:
    """The timm module that defines model `name` ('shvit', 'efficientvit_msra', 'resnet', ...); '' for a
    model timm does not register (your own factory)."""
    check_model_name(name)   # an unknown name: one line naming the closest ones
    return timm.models.model_entrypoint(name).__module__.rsplit(".", 1)[-1] if timm.is_model(name) else ""


def zoo_row(roofline: Roofline, name: str, family: str = "") -> dict:
    """One zoo row of a counted model: size, MACs, bytes, intensity, predicted and memory-bound time."""
    cost = roofline.cost
    unsupported = cost.unsupported_ops()
    if unsupported:
        raise UserError(f"{name}: no op rule counts {', '.join(unsupported)}: its MACs would be short")
    stages, x = roofline.by_stage(), cost.inputs[0]
    macs, mem_bytes = cost.total("macs"), cost.total("mem_bytes")
    predicted, memory_bound = float(stages["predicted_ms"].sum()), float(stages["memory_bound_ms"].sum())
    return {"model": name, "family": family, "resolution": int(x.shape[-1]), "batch_size": int(x.shape[0]),
            "params": cost.total("params"), "macs": macs, "mem_bytes": mem_bytes,
            "flops_per_byte": 2 * macs / mem_bytes if mem_bytes else float("nan"),
            "predicted_ms": predicted, "memory_bound_ms": memory_bound,
            "memory_bound_share": memory_bound / predicted if predicted else float("nan"),
            "machine": roofline.machine.name}


def zoo_table(names: Iterable[str] = ZOO_MODELS, machine: Optional[Machine] = None, *, batch_size: int = 1,
              seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """One `zoo_row` per model name (random weights, BN folded, default resolution) on `machine`
    (default: `committed_machine()`); params are those of the BN-folded model."""
    machine = machine or committed_machine()
    rows = []
    for name in tqdm(list(names), desc="counting", unit="model", file=sys.stderr, disable=not progress):
        rows.append(zoo_row(model_roofline(name, machine, batch_size=batch_size, seed=seed), name,
                            model_family(name)))
    return pd.DataFrame(rows, columns=_COLUMNS)


# ----------------------------------------------------------------------------- the figure

def _extents(box: Bbox) -> np.ndarray:
    return np.array([box.x0, box.y0, box.x1, box.y1])


def _overlap(box: np.ndarray, boxes: np.ndarray) -> float:
    """Total area that `box` (x0, y0, x1, y1) shares with each of `boxes` (n x 4)."""
    w = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    h = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    return float((np.clip(w, 0, None) * np.clip(h, 0, None)).sum())


def _hits(boxes: np.ndarray, xy: np.ndarray) -> int:
    """How many of `boxes` (n x 4) contain one of the points `xy` (m x 2) or more."""
    x, y = xy[:, None, 0], xy[:, None, 1]
    inside = (x > boxes[:, 0]) & (x < boxes[:, 2]) & (y > boxes[:, 1]) & (y < boxes[:, 3])
    return int(inside.any(axis=0).sum())


def _clash(text: np.ndarray, whole: np.ndarray, leader: np.ndarray, drawn: np.ndarray, markers: np.ndarray,
           others: np.ndarray, frame: np.ndarray) -> float:
    """How badly a label fits whose `text` box and `whole` box (text and leader line) are where they are.
    What a reader cannot read weighs most: the text over what is drawn (labels with their leaders, texts,
    legend) or over a point's box (`markers`), the whole over what is drawn or outside the axes `frame`.
    Less: the whole over one of the `others` (the dots not on its own point: a later label starts there),
    or its `leader` (points along it) crossing one."""
    outside = (whole[2] - whole[0]) * (whole[3] - whole[1]) - _overlap(whole, frame[None])
    unreadable = _overlap(text, drawn) + _overlap(text, markers) + _overlap(whole, drawn) + outside
    return 10 * unreadable + _overlap(whole, others) + 50.0 * _hits(others, leader)


def _spot(dx: float, dy: float, radius: float) -> dict:
    """Annotation keywords placing a label `radius` points from its point in direction (dx, dy)."""
    return {"xytext": (dx * radius, dy * radius), "ha": _ALIGN[np.sign(dx)][0], "va": _ALIGN[np.sign(dy)][1]}


def _best_spot(label, renderer, xy: np.ndarray, clash) -> dict:
    """Move `label` (of the point at display `xy`) to the nearest spot, by `_RADII` then `_DIRECTIONS`, where
    `clash(text box, whole box, leader points)` is least; returns its annotation keywords."""
    best = None
    for radius in _RADII:
        for dx, dy in _DIRECTIONS:
            spot = _spot(dx, dy, radius)
            label.set_position(spot["xytext"])
            label.set(horizontalalignment=spot["ha"], verticalalignment=spot["va"])
            whole = _extents(label.get_window_extent(renderer))   # text and leader line
            text = _extents(Text.get_window_extent(label, renderer))
            centre = np.array([(text[0] + text[2]) / 2, (text[1] + text[3]) / 2])
            score = clash(text, whole, xy + np.linspace(0.25, 0.9, 8)[:, None] * (centre - xy))
            if best is None or score < best[0]:
                best = (score, spot)
        if best[0] == 0:
            break
    label.set_position(best[1]["xytext"])
    label.set(horizontalalignment=best[1]["ha"], verticalalignment=best[1]["va"])
    return best[1]


def _place_labels(ax, points: pd.DataFrame, marker_pt: float = 6.0) -> None:
    """Label every point (columns x, y, label, color, weight), each joined to its point by a leader line,
    at the nearest spot (greedy, in the order given) where neither covers another label, text or legend, the
    text covers no point and the line crosses none; where no spot is free, the one that clashes least."""
    renderer = ax.figure.canvas.get_renderer()
    frame = _extents(ax.get_window_extent(renderer))
    r = marker_pt * ax.figure.dpi / 72
    xy = ax.transData.transform(points[["x", "y"]].to_numpy(float))
    markers = np.column_stack([xy - r, xy + r])
    drawn = [_extents(t.get_window_extent(renderer)) for t in ax.texts]
    if ax.get_legend() is not None:
        drawn.append(_extents(ax.get_legend().get_window_extent(renderer)))
    drawn = np.array(drawn).reshape(-1, 4)
    for i, p in enumerate(points.itertuples()):
        label = ax.annotate(p.label, (p.x, p.y), xytext=(0, 0), textcoords="offset points", fontsize=7.5,
                            color=p.color, fontweight=p.weight, zorder=5,
                            arrowprops={"arrowstyle": "-", "color": "0.55", "lw": 0.5, "shrinkA": 1, "shrinkB": 3})
        away = (np.abs(xy - xy[i]) > r / 3).any(axis=1)   # a leader cannot miss a point on its own
        others = np.column_stack([xy[away] - r / 2, xy[away] + r / 2])   # the dots themselves
        _best_spot(label, renderer, xy[i],
                   lambda text, whole, leader: _clash(text, whole, leader, drawn, markers, others, frame))
        box = _extents(label.get_window_extent(renderer))
        drawn = np.vstack([drawn, box + [-2, -2, 2, 2]])   # 2 px apart: once drawn, a leader moves ~1 px


def _iso_intensity(ax, flops_per_byte: float, text: str, style: dict) -> None:
    """The line of models whose whole-model intensity is `flops_per_byte`, labelled at its upper end."""
    x = np.geomspace(*ax.get_xlim(), 50)
    y = 2 * x * _GIGA / flops_per_byte / _MIB
    ax.plot(x, y, zorder=1, **style)
    (x0, y0), (x1, y1) = ax.transData.transform([(x[0], y[0]), (x[-1], y[-1])])
    angle = np.degrees(np.arctan2(y1 - y0, x1 - x0))
    inside = np.flatnonzero(y <= ax.get_ylim()[1] / 1.15)
    if len(inside):
        i = inside[-1]
        ax.text(x[i] / 1.1, y[i], text, rotation=angle, rotation_mode="anchor", ha="right", va="bottom",
                fontsize=7.5, color=style.get("color", "0.4"), zorder=2)


def _highlight_of(table: pd.DataFrame, highlight: Mapping) -> pd.Series:
    return table["family"].map(lambda f: highlight[f][1] if f in highlight else None)


def _points(table: pd.DataFrame, labels: Mapping, highlight: Mapping) -> pd.DataFrame:
    """What `_place_labels` labels: the papers' families first (their labels get the nearest spots), then by MACs."""
    colour = _highlight_of(table, highlight)
    points = pd.DataFrame({"x": table["macs"] / _GIGA, "y": table["mem_bytes"] / _MIB,
                           "label": table["model"].map(lambda m: labels.get(m, m)),
                           "color": colour.fillna("0.2"), "weight": np.where(colour.notna(), "bold", "normal"),
                           "rest": colour.isna()})
    return points.sort_values(["rest", "x"], kind="stable").reset_index(drop=True)


def _plane_panel(ax, cax, table: pd.DataFrame, labels: Mapping, highlight: Mapping, norm, ridge: Optional[float]):
    """MACs vs mem_bytes on log axes, coloured by memory-bound share; lines of equal whole-model intensity."""
    x, y = table["macs"] / _GIGA, table["mem_bytes"] / _MIB
    ax.set(xscale="log", yscale="log", xlim=(x.min() / 1.7, x.max() * 1.7), ylim=(y.min() / 1.5, y.max() * 1.6))
    edge = _highlight_of(table, highlight)
    dots = ax.scatter(x, y, c=100 * table["memory_bound_share"], cmap="viridis", norm=norm, s=38, zorder=3,
                      edgecolors=edge.fillna("white"), linewidths=np.where(edge.notna(), 1.6, 0.5))
    for family, (name, colour) in highlight.items():
        members = table[table["family"] == family].sort_values("macs")
        if members.empty:
            continue
        ax.plot(members["macs"] / _GIGA, members["mem_bytes"] / _MIB, color=colour, lw=1.3, zorder=2, label=name)
    for intensity, text, style in ((30, "30 FLOP/byte", ":"), (10, "10 FLOP/byte", ":")) + \
            (((ridge, f"ridge {ridge:.1f} FLOP/byte", "--"),) if ridge else ()):
        _iso_intensity(ax, intensity, text, {"color": "0.45", "lw": 0.8, "ls": style})
    for axis in (ax.xaxis, ax.yaxis):   # 0.1, 0.2, 0.5, 1, ... rather than powers of ten alone
        axis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set(xlabel="MACs per image (G), BN folded", ylabel="mem_bytes per image (MiB): every op's reads + writes",
           title="(a) Compute and memory traffic, batch 1")
    ax.figure.colorbar(dots, cax=cax, label="memory-bound share of predicted time (%)")
    ax.legend(loc="lower right", fontsize=7.5, frameon=True)
    _place_labels(ax, _points(table, labels, highlight))


def _share_panel(ax, table: pd.DataFrame, labels: Mapping, highlight: Mapping, norm) -> None:
    """One bar per model: its memory-bound share, sorted; the papers' families' names in their colours."""
    t = table.sort_values(["memory_bound_share", "model"], ignore_index=True)
    share = 100 * t["memory_bound_share"]
    edge = _highlight_of(t, highlight)
    ax.barh(np.arange(len(t)), share, color=plt.get_cmap("viridis")(norm(share)), height=0.75,
            edgecolor=edge.fillna("none"), linewidth=1.2)
    ax.set_yticks(np.arange(len(t)), [labels.get(m, m) for m in t["model"]], fontsize=7.5)
    for tick, colour in zip(ax.get_yticklabels(), edge):
        if pd.notna(colour):
            tick.set(color=colour, fontweight="bold")
    for i, v in enumerate(share):
        ax.text(v + 0.4, i, f"{v:.1f}", va="center", fontsize=7, color="0.3")
    ax.set(xlim=(0, share.max() * 1.12), ylim=(-0.7, len(t) - 0.3), xlabel="memory-bound share of predicted time (%)",
           title="(b) Time in ops below the ridge")
    ax.grid(axis="y", visible=False)


def plot_zoo(table: pd.DataFrame, *, labels: Optional[Mapping[str, str]] = None,
             highlight: Mapping[str, tuple] = ZOO_HIGHLIGHT, ridge: Optional[float] = None):
    """Two panels from a `zoo_table`: (a) MACs vs mem_bytes on log axes, coloured by memory-bound share,
    every model labelled (no label covers another), `highlight` families ({family: (name, colour)}) joined
    and outlined, lines of equal whole-model intensity (and the machine's `ridge`, FLOP per byte, if given);
    (b) the memory-bound share per model, sorted. `labels`: {model: label} (default `ZOO_MODELS`'s)."""
    use_style()
    labels = ZOO_MODELS if labels is None else labels
    fig = plt.figure(figsize=(12, 7.4))
    grid = fig.add_gridspec(1, 4, width_ratios=[1.7, 0.04, 0.45, 1], wspace=0.05, left=0.06, right=0.98,
                            bottom=0.08, top=0.94)
    plane, cax, bars = fig.add_subplot(grid[0]), fig.add_subplot(grid[1]), fig.add_subplot(grid[3])
    norm = Normalize(0, 100 * max(np.ceil(table["memory_bound_share"].max() * 10) / 10, 0.1))
    _share_panel(bars, table, labels, highlight, norm)
    _plane_panel(plane, cax, table, labels, highlight, norm, ridge)
    return fig


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
