"""Head redundancy per layer: `python -m analysis.head_similarity` (SHViT Fig. 3/4, EfficientViT Fig. 4).

Runs each model over an image folder (or offline sample images), captures every
attention layer's per-head maps (`analysis.attention`) and streams the statistics of
`analysis.head_metrics` into one tidy CSV: one row per model x layer x metric (plus
per-head rows), similarities as fractions in [-1, 1]. By default the papers' two
similarity metrics; `--metrics all` adds linear CKA, entropy and attention distance.

Library use: `head_similarity(model, batches)` -> DataFrame.
"""
from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd
import timm
import torch
import torch.nn as nn
from tqdm import tqdm

from .attention import AttentionCapture, attention_layers
from .cli import ArgumentParser, add_device_arg, resolve_device
from .errors import UserError, exit_on_user_error
from .head_metrics import METRICS, HeadStatistics
from .images import ImageFolderSource, SampleImages
from .io import check_writable, write_csv, write_json
from .models import check_model_name, create_model, describe_weights

__all__ = ["head_similarity", "model_head_similarity", "head_similarity_table", "plot_head_similarity", "main",
           "COLUMNS"]

COLUMNS = ["model", "weights", "layer", "layer_index", "stage", "family", "num_heads", "head",
           "metric", "value", "applicable", "num_images", "data", "seed"]
PAPER_METRICS = ("mean_pairwise_cosine", "mean_max_cosine")  # SHViT Fig. 3/4, EfficientViT Fig. 4
_AMP = {"none": None, "fp16": torch.float16, "bf16": torch.bfloat16}


@torch.inference_mode()
def head_similarity(model: nn.Module, batches: Iterable, *, device: torch.device | str = "cpu",
                    amp: Optional[torch.dtype] = None, metrics: Iterable[str] = METRICS,
                    progress: bool = False, total: Optional[int] = None) -> pd.DataFrame:
    """Stream `batches` (images, or (images, labels)) through `model`; per-layer head statistics.

    `amp` runs the model under autocast in that dtype (fp16 / bf16); statistics are
    reduced in fp32 and summed in fp64 either way.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    stats = HeadStatistics(metrics)
    autocast = (lambda: torch.autocast(device.type, dtype=amp)) if amp is not None else contextlib.nullcontext
    with AttentionCapture(model, stats.update, head_outputs=stats.needs_head_outputs,
                          chunk_bytes=stats.chunk_bytes):
        for batch in tqdm(batches, total=total, unit="batch", disable=not progress, file=sys.stderr, leave=False):
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            with autocast():
                model(images.to(device))
    return stats.to_frame()


def model_head_similarity(name: str, weights: str, model: nn.Module, source, *, batch_size: int = 32,
                          device: torch.device | str = "cpu", amp: Optional[torch.dtype] = None,
                          metrics: Iterable[str] = METRICS, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """`head_similarity` of one named model over an image source, as rows with `COLUMNS`."""
    total = math.ceil(source.num_images / batch_size) if getattr(source, "num_images", None) else None
    df = head_similarity(model, source.batches(model, batch_size), device=device, amp=amp, metrics=metrics,
                         progress=progress, total=total)
    df.insert(0, "model", name)
    df.insert(1, "weights", describe_weights(weights))
    df["data"] = source.describe()
    df["seed"] = seed
    return df[COLUMNS]


def head_similarity_table(specs: Iterable[tuple[str, str]], source, *, seed: int = 0, **kwargs) -> pd.DataFrame:
    """Head statistics of several `(model name, weights)` on one image source: one tidy table.

    `weights` as in `analysis.models.create_model` (`random`, `pretrained` or a checkpoint path);
    keyword arguments go to `model_head_similarity`.
    """
    frames = []
    for name, weights in specs:
        model = create_model(name, weights, seed=seed)
        frames.append(model_head_similarity(name, weights, model, source, seed=seed, **kwargs))
    return pd.concat(frames, ignore_index=True)


def plot_head_similarity(df: pd.DataFrame, path: str | Path, *, metric: str = "mean_pairwise_cosine"):
    """Per-layer head similarity (%) per model; the paper's DeiT-T curve when DeiT-T is plotted."""
    import matplotlib.pyplot as plt

    from .plotting import PAPER_COLOR, provenance, save_figure, use_style
    from .reference import load_reference

    use_style()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    rows = df[(df.metric == metric) & df["head"].isna()]
    not_applicable = []
    for (model, weights), g in rows.groupby(["model", "weights"], sort=False):
        g = g[g.applicable.astype(bool)]
        if g.empty:
            not_applicable.append(model)
            continue
        ax.plot(g.layer_index, 100 * g.value, marker="o", ms=4, label=f"{model} ({weights})")
    if rows.model.str.startswith("deit_tiny").any():
        ref = load_reference("shvit_fig3_deit_head_similarity")
        ref = ref[ref.heads == 3]
        ax.plot(ref.layer, ref.similarity_pct, ls="--", marker="s", ms=4, color=PAPER_COLOR,
                label="DeiT-T, SHViT paper Fig. 3")
    ax.set_xlabel("attention layer")
    ax.set_ylabel("mean pairwise head similarity (%)" if metric == "mean_pairwise_cosine"
                  else f"{metric} (%)")
    if not_applicable:
        ax.set_title(f"single-head (not applicable): {', '.join(not_applicable)}", fontsize=8,
                     fontweight="normal")
    if ax.lines:
        ax.legend(fontsize=7)
    provenance(fig, scale="full", weights=", ".join(sorted(set(df.weights))),
               extra=f"{int(rows.num_images.max()) if len(rows) else 0} images")
    paths = save_figure(fig, Path(path).with_suffix(""))
    plt.close(fig)
    return paths


EPILOG = """examples:
  # the paper's DeiT-T measurement on 128 ImageNet-val images
  python -m analysis.head_similarity --model deit_tiny_patch16_224 --weights pretrained \\
      --data ~/imagenet/val --out deit_heads.csv --plot deit_heads.png
  # several models, your own checkpoint for the second, offline sample images
  python -m analysis.head_similarity --model deit_tiny_patch16_224 --model efficientvit_m4 \\
      --weights random --weights ckpt/evit_m4.pth --out heads.csv
"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m analysis.head_similarity", epilog=EPILOG,
                       description="Per-layer attention-head similarity (SHViT Fig. 3, EfficientViT Fig. 4).")
    p.add_argument("--model", action="append", required=True, metavar="NAME",
                   help="timm or shvitlab_* model name (repeatable)")
    p.add_argument("--weights", action="append", metavar="pretrained|random|PATH",
                   help="once for all models, or once per --model (default: random); PATH: a local checkpoint "
                        "(timm state dict, {'model': sd}, safetensors)")
    p.add_argument("--data", metavar="DIR", help="image folder (ImageNet-val class subfolders, or flat); "
                   "default: offline sample images (crops of scikit-learn's sample photos)")
    p.add_argument("--num-images", type=int, default=128, help="images per model (default 128, as in the paper)")
    p.add_argument("--batch-size", type=int, default=32)
    add_device_arg(p)
    p.add_argument("--metrics", default="paper", metavar="LIST",
                   help=f"'paper' (default: {', '.join(PAPER_METRICS)}, the metrics of SHViT Fig. 3/4 and "
                        f"EfficientViT Fig. 4), 'all', or a comma-separated subset of {', '.join(METRICS)}")
    p.add_argument("--amp", choices=tuple(_AMP), default="none", help="autocast dtype (default none: fp32)")
    p.add_argument("--seed", type=int, default=0, help="image choice/order and random weights")
    p.add_argument("--out", required=True, metavar="CSV", help="tidy results (written atomically)")
    p.add_argument("--plot", metavar="PNG", help="also write a figure (PNG + PDF)")
    return p


@exit_on_user_error
def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.num_images < 1:
        raise UserError("--num-images must be at least 1")
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    named = {"all": METRICS, "paper": PAPER_METRICS}
    metrics = list(named.get(args.metrics.strip()) or [m.strip() for m in args.metrics.split(",") if m.strip()])
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown or not metrics:
        raise UserError(f"unknown --metrics {', '.join(unknown) or '(empty)'}; choose from {', '.join(METRICS)}")
    weights = args.weights or ["random"]
    if len(weights) not in (1, len(args.model)):
        raise UserError(f"give --weights once, or once per --model ({len(args.model)} models, {len(weights)} weights)")
    weights = weights * len(args.model) if len(weights) == 1 else weights
    out = check_writable(args.out)
    plot = check_writable(Path(args.plot).with_suffix(".png")) if args.plot else None
    if plot is not None:
        check_writable(plot.with_suffix(".pdf"))
    for name in args.model:
        check_model_name(name)
    device = resolve_device(args.device)
    source = (ImageFolderSource(args.data, args.num_images, seed=args.seed) if args.data
              else SampleImages(args.num_images, seed=args.seed))

    models = []
    for name, w in zip(args.model, weights):
        model = create_model(name, w, seed=args.seed)
        attention_layers(model)  # unsupported architecture: fail before any compute
        models.append((name, w, model))

    frames, skipped = [], {}
    while models:  # release each model once measured
        name, w, model = models.pop(0)
        print(f"{name} ({describe_weights(w)}): {args.num_images} images from {source.describe()}", file=sys.stderr)
        frames.append(model_head_similarity(name, w, model, source, batch_size=args.batch_size, device=device,
                                            amp=_AMP[args.amp], metrics=metrics, seed=args.seed))
        skipped[name] = source.num_skipped
    result = pd.concat(frames, ignore_index=True)
    write_csv(result, out)
    write_json({"command": "analysis.head_similarity", "models": args.model, "weights": weights,
                "data": source.describe(), "num_images": args.num_images, "unreadable_skipped": skipped,
                "metrics": metrics, "batch_size": args.batch_size, "device": str(device), "amp": args.amp,
                "seed": args.seed, "torch": torch.__version__, "timm": timm.__version__},
               out.with_suffix(".json"))
    if any(skipped.values()):
        print(f"skipped unreadable files: {max(skipped.values())}", file=sys.stderr)
    if plot is not None:
        plot_head_similarity(result, plot)
    print(f"wrote {out}" + (f", {plot} (+ .pdf)" if plot else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
