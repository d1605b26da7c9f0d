"""`python -m analysis.head_similarity`: per-layer attention-head similarity (SHViT Fig. 3/4,
EfficientViT Fig. 4) of timm / shvitlab models on an image folder or offline sample images,
as a tidy CSV (library: `analysis.heads.similarity`)."""
from __future__ import annotations

import sys

from ._cli import (ArgumentParser, add_device_arg, add_overwrite_arg, add_resample_arg, add_seed_arg, check_stem,
                   command, output_file, output_path, positive_int, resample_pos_embed)
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
                   help="timm or shvitlab_* model name (repeatable)")
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
    import pandas as pd
    import timm
    import torch

    from .core.distributed import World
    from .core.files import check_distinct, check_inputs_kept, check_sidecar, write_json
    from .core.images import ImageFolderSource, SampleImages
    from .core.memory import check_memory
    from .core.models import check_model_name, create_model, describe_weights, input_size
    from .core.runtime import resolve_device
    from .core.tables import write_csv
    from .heads.layers import attention_layers
    from .heads.plots import plot_head_similarity
    from .heads.similarity import AMP_DTYPES, model_head_similarity, similarity_summary

    metrics = _metrics(args.metrics)
    weights = args.weights or ["random"]
    if len(weights) not in (1, len(args.model)):
        raise UserError(f"give --weights once, or once per --model ({len(args.model)} models, {len(weights)} weights)")
    weights = weights * len(args.model) if len(weights) == 1 else weights
    out = args.out
    stem = args.plot[:-4] if args.plot and args.plot.lower().endswith((".png", ".pdf")) else args.plot
    if args.plot:
        check_stem(args.plot, "--plot")
        check_stem(stem, "--plot")
    plot = output_file(f"{stem}.png") if args.plot else None   # a stem keeps its dots: --plot fig.v1 -> fig.v1.png
    if plot is not None:
        output_file(f"{stem}.pdf")
    sidecar = out.with_suffix(".json")
    check_distinct(**{"--out": out, "the metadata file (--out with .json)": sidecar,
                      "--plot": plot, "--plot (.pdf)": plot and plot.with_suffix(".pdf")})
    check_inputs_kept({"--weights": weights, "--data": args.data},
                      {"--out": out, "the metadata file (--out with .json)": sidecar, "--plot": plot,
                       "--plot (.pdf)": plot and plot.with_suffix(".pdf")})
    check_sidecar(sidecar, "analysis.head_similarity")
    for name in args.model:
        check_model_name(name)
    device = resolve_device(args.device)
    world = World.from_env(device)
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if args.num_images < world.size:
        raise UserError(f"--num-images {args.num_images} is fewer than the {world.size} processes")
    source = (ImageFolderSource(args.data, args.num_images, seed=args.seed) if args.data
              else SampleImages(args.num_images, seed=args.seed))

    models, resample = [], resample_pos_embed(args, weights)
    for name, w in zip(args.model, weights):
        model = create_model(name, w, seed=args.seed, resample_pos_embed=resample)
        attention_layers(model)  # unsupported architecture: fail before any compute
        check_memory(name, (args.batch_size, *input_size(model)), device=device)
        models.append((name, w, model))

    frames, skipped, used, per_rank = [], {}, {}, {}
    say = print if world.main else (lambda *a, **k: None)  # under torchrun, rank 0 reports and writes
    while models:  # release each model once measured
        name, w, model = models.pop(0)
        say(f"{name} ({describe_weights(w)}): {args.num_images} images from {source.describe()}"
            + (f" over {world.size} processes" if world.size > 1 else ""), file=sys.stderr)
        df = model_head_similarity(name, w, model, source, batch_size=args.batch_size, device=device,
                                   amp=AMP_DTYPES[args.amp], metrics=[m for m in metrics if m != IMPORTANCE],
                                   importance=IMPORTANCE in metrics, seed=args.seed, world=world)
        frames.append(df)
        skipped[name], used[name] = source.num_skipped, source.num_used
        per_rank[name] = world.gather(df.attrs["images_this_process"])
    result = pd.concat(frames, ignore_index=True)
    if world.main:
        write_csv(result, out)
        write_json({"command": "analysis.head_similarity", "models": args.model, "weights": weights,
                    "data": source.describe(), "num_images_requested": args.num_images, "num_images_used": used,
                    "unreadable_skipped": skipped, "world_size": world.size, "images_per_process": per_rank,
                    "metrics": metrics, "batch_size": args.batch_size, "device": str(device), "amp": args.amp,
                    "seed": args.seed, "torch": torch.__version__, "timm": timm.__version__},
                   sidecar)
        if plot is not None:
            plot_head_similarity(result, plot)
    if world.main:
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
    if "random" in weights:
        say("note: random weights: untrained attention is near uniform, so every model scores high; this is a null "
            "baseline, not a test of the papers' finding (use --weights pretrained or a checkpoint)", file=sys.stderr)
    if any(skipped.values()):
        say(f"skipped unreadable files: {max(skipped.values())}", file=sys.stderr)
    say(f"wrote {out}, {sidecar}" + (f", {plot} (+ .pdf)" if plot else ""), file=sys.stderr)
    world.close()
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
