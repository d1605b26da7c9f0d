"""`python -m analysis.breakdown`: share of runtime per operator category (EfficientViT Fig. 2,
SHViT Fig. 7) of BN-fused models (library: `analysis.cost.breakdown`)."""
from __future__ import annotations

import sys
from pathlib import Path

from ._cli import (ArgumentParser, add_device_arg, add_overwrite_arg, add_seed_arg, add_threads_arg, check_stem,
                   command, output_file, output_path, positive_int, resolution, MODEL_HELP)
from .core.names import PAPER_MODELS

EPILOG = """examples:
  python -m analysis.breakdown                                   # the papers' four models, CPU, batch 16
  python -m analysis.breakdown --model deit_tiny_patch16_224 --batch-size 1 --csv breakdown.csv
  python -m analysis.breakdown --device cuda --figure figures/breakdown   # PNG + PDF
"""



def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m analysis.breakdown", epilog=EPILOG,
                       description="share of runtime per operator category (torch.profiler), BN-fused models.")
    p.add_argument("--model", action="append", help=f"{MODEL_HELP}; repeatable (default: {', '.join(PAPER_MODELS)})")
    add_device_arg(p)
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--resolution", type=resolution, default=None, help="default: each model's pretrained config")
    p.add_argument("--repeats", type=positive_int, default=3, help="profiled forward passes")
    add_threads_arg(p, help="CPU threads (default: torch's)")
    add_seed_arg(p)
    p.add_argument("--fused-attn", action="store_true",
                   help="keep timm's fused attention kernels (default: explicit attention, as the papers)")
    p.add_argument("--csv", metavar="PATH", type=output_path, help="write the tidy table")
    p.add_argument("--figure", metavar="STEM", help="write STEM.png and STEM.pdf (stacked bars)")
    add_overwrite_arg(p)
    return p


def run(args) -> int:
    import pandas as pd

    from .core.files import check_distinct, write_set
    from .core.models import check_model_name
    from .core.plotting import figure_writers, provenance
    from .core.runtime import resolve_device, set_threads
    from .core.tables import csv_writer
    from .cost.breakdown import CATEGORIES, breakdown_table
    from .cost.plots import plot_breakdown

    names = args.model or list(PAPER_MODELS)
    for n in names:
        check_model_name(n, build=True)   # a factory that fails does so before the progress bar
    if args.figure:
        for ext in (".png", ".pdf"):
            output_file(check_stem(args.figure, "--figure") + ext)
        check_distinct(**{"--csv": args.csv, "--figure (.png)": args.figure + ".png",
                          "--figure (.pdf)": args.figure + ".pdf"})
    device = resolve_device(args.device)
    set_threads(args.threads)
    df = breakdown_table(names, device=device, batch_size=args.batch_size, resolution=args.resolution,
                         repeats=args.repeats, seed=args.seed, fused_attn=args.fused_attn)
    outputs = {Path(args.csv): csv_writer(df, args.csv)} if args.csv else {}   # written together or not at all
    if args.figure:
        fig = plot_breakdown(df)
        provenance(fig, scale="full", weights="random", extra=f"{device.type}, batch {args.batch_size}")
        outputs.update(figure_writers(fig, args.figure))
    write_set(outputs)
    wide = df.pivot_table(index="model", columns="category", values="share", sort=False)[list(CATEGORIES)]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print((wide * 100).round(1).to_string())
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
