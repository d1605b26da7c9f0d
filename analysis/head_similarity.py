"""`python -m analysis.head_similarity`: per-layer attention-head similarity (SHViT Fig. 3/4,
EfficientViT Fig. 4) of timm / shvitlab models on an image folder or offline sample images,
as a tidy CSV (library: `analysis.heads.similarity`)."""
from __future__ import annotations

import sys

from ._cli import (ArgumentParser, add_device_arg, add_overwrite_arg, add_resample_arg, add_seed_arg, check_stem,
                   command, output_file, output_path, positive_int, resample_pos_embed, MODEL_HELP)
from .core.errors import UserError
from .core.names import AMP_CHOICES, PAPER_METRICS
from .core.names import HEAD_METRICS as METRICS

# The registries' names, here so that --help needs no torch (tests/test_layout.py checks they match).
IMPORTANCE = "importance"  # both heads.importance.IMPORTANCE_METRICS, from one backward pass per batch

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
                   help=f"{MODEL_HELP} (repeatable)")
    p.add_argument("--weights", action="append", metavar="pretrained|random|PATH",
                   help="once for all models, or once per --model (default: random); PATH: a local checkpoint "
                        "(timm state dict, {'model': sd}, safetensors)")
    p.add_argument("--data", metavar="DIR", help="image folder (ImageNet-val class subfolders, or flat); "
                   "default: offline sample images (crops of scikit-learn's sample photos)")
    p.add_argument("--num-images", type=positive_int, default=128,
                   help="images per model (default 128, as in the paper)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    add_device_arg(p)
    p.add_argument("--metrics", default="paper", metavar="LIST",
                   help=f"'paper' (default: {', '.join(PAPER_METRICS)}, the metrics of SHViT Fig. 3/4 and "
                        f"EfficientViT Fig. 4), 'all', or a comma-separated subset of {', '.join(METRICS)}; add "
                        f"'{IMPORTANCE}' for head importance (Michel et al. 2019: |dL/d gate| per head, one backward "
                        "pass per batch; labels from --data's class folders, else the model's predictions)")
    p.add_argument("--amp", choices=AMP_CHOICES, default="none", help="autocast dtype (default none: fp32)")
    add_seed_arg(p, "image choice/order and random weights")
    p.add_argument("--out", required=True, metavar="CSV", type=output_path, help="tidy results (written atomically)")
    p.add_argument("--plot", metavar="PNG", help="also write a figure (PNG + PDF)")
    add_overwrite_arg(p)
    add_resample_arg(p)
    return p


def _metrics(text: str) -> list[str]:
    named = {"all": METRICS, "paper": PAPER_METRICS}
    metrics = []
    items = [m.strip() for m in text.split(",")]
    repeated = sorted({m for m in items if m and items.count(m) > 1})
    if repeated:
        raise UserError(f"--metrics names {', '.join(repeated)} more than once; give each once, got {text!r}")
    for item in items:
        metrics += list(named.get(item, [item] if item else []))
    known = METRICS + (IMPORTANCE,)
    unknown = sorted(set(metrics) - set(known))
    if unknown or not metrics:
        raise UserError(f"unknown --metrics {', '.join(unknown) or '(empty)'}; choose from 'paper', 'all', "
                        f"{', '.join(known)}")
    return list(dict.fromkeys(metrics))


def run(args) -> int:
    import torch

    from .core.distributed import World
    from .core.images import ImageFolderSource, SampleImages
    from .core.models import check_model_name, describe_weights
    from .core.runtime import resolve_device
    from .heads.similarity import AMP_DTYPES, head_similarity_table

    metrics = _metrics(args.metrics)
    weights = args.weights or ["random"]
    if len(weights) not in (1, len(args.model)):
        raise UserError(f"give --weights once, or once per --model ({len(args.model)} models, {len(weights)} weights)")
    weights = weights * len(args.model) if len(weights) == 1 else weights
    out, sidecar, plot = _outputs(args, weights)
    for name in args.model:
        check_model_name(name)
    world, device = World.with_device(resolve_device(args.device))
    if args.num_images < world.size:
        raise UserError(f"--num-images {args.num_images} is fewer than the {world.size} processes")
    source = (ImageFolderSource(args.data, args.num_images, seed=args.seed) if args.data
              else SampleImages(args.num_images, seed=args.seed))
    say = print if world.main else (lambda *a, **k: None)  # under torchrun, rank 0 reports and writes

    def announce(name, w):  # a folder may hold fewer images than asked, and unreadable ones are skipped
        files = len(getattr(source, "files", ())) or args.num_images
        count = (f"up to {args.num_images} images" if files >= args.num_images
                 else f"up to {files} images (all the folder holds; {args.num_images} asked)")
        say(f"{name} ({describe_weights(w)}): {count if args.data else f'{args.num_images} images'} from "
            f"{source.describe()}" + (f" over {world.size} processes" if world.size > 1 else ""), file=sys.stderr)
    result = head_similarity_table(list(zip(args.model, weights)), source, seed=args.seed, batch_size=args.batch_size,
                                   device=device, world=world, resample_pos_embed=resample_pos_embed(args, weights),
                                   announce=announce, amp=AMP_DTYPES[args.amp],
                                   metrics=[m for m in metrics if m != IMPORTANCE], importance=IMPORTANCE in metrics)
    if world.main:
        _write(result, args, weights, metrics, source, world, device, out, sidecar, plot, torch.__version__)
        _report(result, metrics, say)
    if "random" in weights:
        say("note: random weights: untrained attention is near uniform, so every model scores high; this is a null "
            "baseline, not a test of the papers' finding (use --weights pretrained or a checkpoint)", file=sys.stderr)
    say("images used: " + ", ".join(f"{n} ({m})" for m, n in result.attrs["images_used"].items()), file=sys.stderr)
    if any(result.attrs["images_skipped"].values()):
        say(f"skipped unreadable files: {max(result.attrs['images_skipped'].values())}", file=sys.stderr)
    say(f"wrote {out}, {sidecar}" + (f", {plot} (+ .pdf)" if plot else ""), file=sys.stderr)
    world.close()
    return 0


def _outputs(args, weights):
    """(--out, its metadata sidecar, the --plot PNG or None): checked distinct, not inputs, writable."""
    from .core.files import check_distinct, check_inputs_kept, check_sidecar

    out = args.out
    stem = args.plot[:-4] if args.plot and args.plot.lower().endswith((".png", ".pdf")) else args.plot
    if args.plot:
        check_stem(args.plot, "--plot")
        check_stem(stem, "--plot")
    plot = output_file(f"{stem}.png") if args.plot else None   # a stem keeps its dots: --plot fig.v1 -> fig.v1.png
    if plot is not None:
        output_file(f"{stem}.pdf")
    sidecar = out.with_suffix(".json")
    outputs = {"--out": out, "the metadata file (--out with .json)": sidecar, "--plot": plot,
               "--plot (.pdf)": plot and plot.with_suffix(".pdf")}
    check_distinct(**outputs)
    check_inputs_kept({"--weights": weights, "--data": args.data}, outputs)
    check_sidecar(sidecar, "analysis.head_similarity")
    return out, sidecar, plot


def _write(result, args, weights, metrics, source, world, device, out, sidecar, plot, torch_version) -> None:
    import timm

    from .core.files import write_json
    from .core.tables import write_csv
    from .heads.plots import plot_head_similarity

    write_csv(result, out)
    write_json({"command": "analysis.head_similarity", "models": args.model, "weights": weights,
                "data": source.describe(), "num_images_requested": args.num_images,
                "num_images_used": result.attrs["images_used"], "unreadable_skipped": result.attrs["images_skipped"],
                "world_size": world.size, "images_per_process": result.attrs["images_per_process"],
                "metrics": metrics, "batch_size": args.batch_size, "device": str(device), "amp": args.amp,
                "seed": args.seed, "torch": torch_version, "timm": timm.__version__}, sidecar)
    if plot is not None:
        plot_head_similarity(result, plot)


def _report(result, metrics, say) -> None:
    """The per-layer summary (and head importance) on stdout."""
    import pandas as pd

    from .heads.similarity import similarity_summary

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 200):
        summary = similarity_summary(result)
        if not summary.empty:
            say("head similarity per attention layer (%; n/a: one head):")
            say(summary.to_string(na_rep="n/a"))
        if IMPORTANCE in metrics:
            scores = result[result["metric"] == "head_importance_normalized"]
            say("head importance per layer (normalised per layer; a row per layer, a column per head):")
            say(scores.pivot_table(index=["model", "layer_index"], columns="head", values="value",
                                   sort=False).round(3).to_string(na_rep=""))


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
