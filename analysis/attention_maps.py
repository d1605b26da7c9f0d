"""`python -m analysis.attention_maps`: where one query pixel of your own image attends, head by head,
in one attention layer of a timm / shvitlab model, or the attention rollout through every layer
(library: `analysis.heads.maps`); a figure (PNG + PDF) and the tidy CSV behind it."""
from __future__ import annotations

import argparse
import sys

from ._cli import (ArgumentParser, add_device_arg, add_overwrite_arg, add_resample_arg, add_seed_arg, add_threads_arg,
                   command, model_on_image, output_stem, write_figure_and_table, MODEL_HELP)

EPILOG = """examples:
  # every head of DeiT-T's last attention layer, from the centre of the image
  python -m analysis.attention_maps --model deit_tiny_patch16_224 --weights pretrained --image cat.jpg --out cat_heads
  # Swin-T's first layer, query at pixel x=120, y=80 of cat.jpg (its window's keys only)
  python -m analysis.attention_maps --model swin_tiny_patch4_window7_224 --image cat.jpg --layer 1 \\
      --query 120,80 --out cat_swin
  # attention rollout of the class token through every layer (isotropic ViT/DeiT models)
  python -m analysis.attention_maps --model deit_tiny_patch16_224 --weights pretrained --image cat.jpg \\
      --rollout --out cat_rollout
writes STEM.png, STEM.pdf and STEM.csv (head, row, col, weight per head x key token; rollout: row, col, weight)
"""


def query_point(text: str) -> tuple[float, float]:
    """X,Y: a pixel of the image, from its top-left corner."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y in pixels of --image, got {text!r}") from None
    return x, y


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m analysis.attention_maps", epilog=EPILOG,
                       description="Per-head attention maps of one query pixel of your image in one layer, or the "
                                   "attention rollout (Abnar & Zuidema 2020).")
    p.add_argument("--model", required=True, metavar="NAME", help=MODEL_HELP)
    p.add_argument("--weights", default="random", metavar="random|pretrained|PATH",
                   help="PATH: a local checkpoint (timm state dict, {'model': sd}, safetensors)")
    p.add_argument("--image", required=True, metavar="PATH",
                   help="your image; the model sees it scaled and centre-cropped to its input size, as timm's eval "
                        "transform does (the figure shows that view)")
    p.add_argument("--layer", metavar="NAME|INDEX", help="attention layer: its module name or its number among the "
                   "model's attention layers, from 1 as the tables' layer_index (negative from the end; default: "
                   "the last)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--query", type=query_point, metavar="X,Y",
                      help="query pixel of --image (default: its centre); the nearest query token is used")
    what.add_argument("--rollout", action="store_true",
                      help="attention rollout of the class token (mean over tokens without one) through every layer; "
                           "isotropic ViT/DeiT models only")
    add_device_arg(p)
    add_threads_arg(p)
    add_seed_arg(p, "seed for the random weights")
    p.add_argument("--out", required=True, metavar="STEM", type=output_stem,
                   help="writes STEM.png, STEM.pdf (the figure) and STEM.csv (the maps)")
    add_overwrite_arg(p)
    add_resample_arg(p)
    return p


def run(args) -> int:
    from pathlib import Path

    from .core.errors import UserError
    from .core.models import describe_weights
    from .core.plotting import provenance
    from .heads.maps import attention_rollout, query_attention, select_layer
    from .heads.plots import plot_attention_overlay

    if args.rollout and args.layer is not None:
        raise UserError("--layer does not apply to --rollout: the rollout multiplies every attention layer")
    model, view, x = model_on_image(args)
    layer = None if args.rollout else select_layer(model, args.layer)
    weights = describe_weights(args.weights)
    stamp = f"{args.model} | image {Path(args.image).name}"
    if args.rollout:
        result = attention_rollout(model, x)
        table = result.to_frame()
        fig = plot_attention_overlay(view.pixels, result.maps[:1], labels=[f"rollout of the {result.source}"],
                                     title=f"{args.model}: attention rollout over {len(result.layers)} layers",
                                     cbar_label="rolled-out attention")
        stamp += f" | rollout, {len(result.layers)} layers, {result.source}"
        grid = result.maps[0]
        summary = [f"rollout over {len(result.layers)} attention layers, {result.source}, {tuple(grid.shape)} "
                   f"patch grid"]
    else:
        query_yx = view.to_input(*args.query) if args.query else (view.pixels.shape[0] / 2, view.pixels.shape[1] / 2)
        result = query_attention(model, x, layer.name, query_yx)
        table = result.to_frame()
        qy, qx = result.query_yx
        fig = plot_attention_overlay(view.pixels, result.maps[0], labels=[f"head {h}" for h in result.heads],
                                     query_yx=result.query_yx,
                                     title=f"{args.model}, layer {layer.index} ({layer.name}): where the query + "
                                           f"attends")
        stamp += f" | layer {layer.index} {layer.name} | query token at (x {qx:g}, y {qy:g}) input px"
        grid = result.maps[0].amax(0)
        summary = [f"layer {layer.index} ({layer.name}, {layer.family}): {layer.num_heads} heads, "
                   f"{tuple(result.maps.shape[-2:])} key grid, query token at (x {qx:g}, y {qy:g}) of the "
                   f"{view.pixels.shape[1]}x{view.pixels.shape[0]} input"]
        for h, m in zip(result.heads, result.maps[0]):
            r, c = divmod(int(m.argmax()), m.shape[-1])
            summary.append(f"head {h}: max weight {float(m.max()):.4f} at key (row {r}, col {c})")
    r, c = divmod(int(grid.argmax()), grid.shape[-1])
    summary.append(f"map argmax: row {r}, col {c}")
    provenance(fig, scale="full", weights=weights, extra=stamp)
    write_figure_and_table(fig, table, args.out)
    print("\n".join(summary))
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
