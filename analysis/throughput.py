"""`python -m analysis.throughput`: images/s under the SHViT / EfficientViT speed-test protocol
(library: `analysis.cost.throughput`)."""
from __future__ import annotations

import json
import sys

from ._cli import (ArgumentParser, add_overwrite_arg, add_seed_arg, command, cpu_threads, non_negative_float,
                   output_path, positive_float, positive_int, resolution, MODEL_HELP)
from .core.errors import UserError
from .core.names import RUNTIMES

EPILOG = """examples:
  python -m analysis.throughput --model shvit_s1                          # CPU, batch 16, 1 thread
  python -m analysis.throughput --model shvit_s1 --model efficientvit_m4 --json
  python -m analysis.throughput --model shvit_s4 --runtime cuda           # batch 256, AMP
  python -m analysis.throughput --model shvit_s1 --runtime onnx           # needs the [onnx] extra
  python -m analysis.throughput --model shvit_s1 --warmup 10 --window 60  # the papers' windows
  python -m analysis.throughput --table2 --csv table2.csv                 # ours vs paper Table 2
"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m analysis.throughput", epilog=EPILOG,
                       description="images/s under the SHViT / EfficientViT speed-test protocol "
                                   "(BN fused, eval, no grad).")
    p.add_argument("--model", action="append", help=f"{MODEL_HELP} (repeatable)")
    p.add_argument("--table2", action="store_true", help="every paper Table 2 row with a timm name, "
                                                         "with the rank correlation to the paper")
    p.add_argument("--runtime", "--device", dest="runtime", default="cpu", choices=("auto",) + RUNTIMES,
                   help="cpu (PyTorch), cuda (PyTorch, AMP) or onnx (ONNX Runtime, CPU); auto: cuda if available")
    p.add_argument("--resolution", type=resolution, default=None, help="default: each model's pretrained config")
    p.add_argument("--batch-size", type=positive_int, default=None, help="default: 16 (cpu, onnx), 256 (cuda)")
    p.add_argument("--threads", type=cpu_threads, default=1,
                   help="CPU / ONNX Runtime threads (default 1, as the papers)")
    p.add_argument("--no-amp", action="store_true", help="cuda: time in float32")
    p.add_argument("--cuda-graph", action="store_true",
                   help="cuda: replay each pass as one CUDA graph, so the host's kernel-launch speed drops "
                        "out (not the papers' protocol; small models at batch 256 are launch-bound)")
    p.add_argument("--warmup", type=non_negative_float, default=1.0, help="warm-up seconds (papers: 10)")
    p.add_argument("--window", type=positive_float, default=3.0, help="timed seconds (papers: 60)")
    add_seed_arg(p, "seed for the random weights")
    p.add_argument("--json", action="store_true", help="print one JSON record per model")
    p.add_argument("--csv", metavar="PATH", type=output_path, help="write the results as a tidy CSV")
    add_overwrite_arg(p)
    return p


def run(args) -> int:
    import pandas as pd
    from tqdm import tqdm

    from .core.models import check_model_name
    from .core.runtime import resolve_device
    from .core.tables import write_csv
    from .cost.throughput import ONNX_MISSING, model_throughput, table2_comparison

    if not args.model and not args.table2:
        raise UserError("give at least one --model NAME (or --table2)")
    runtime = args.runtime
    if runtime == "auto":
        runtime = resolve_device("auto").type
    elif runtime == "cuda":
        resolve_device("cuda")
    if args.cuda_graph and runtime != "cuda":
        raise UserError("--cuda-graph needs --runtime cuda")
    if runtime == "onnx":
        try:
            import onnxruntime  # noqa: F401  (optional: the [onnx] extra)
        except ImportError:
            raise UserError(ONNX_MISSING) from None
    for name in args.model or ():
        check_model_name(name, build=True)   # a factory that fails does so before the progress bar
    if args.table2:
        df = table2_comparison(window_s=args.window, warmup_s=args.warmup, runtime=runtime)
        print(f"spearman rank correlation with the paper: {df.attrs['spearman']:.3f}", file=sys.stderr)
        if args.csv:
            write_csv(df, args.csv)
        print(df.to_json(orient="records", indent=2) if args.json else df.to_string(index=False))
        return 0
    records = []
    for name in tqdm(args.model, desc="throughput", disable=len(args.model) < 2, file=sys.stderr):
        r = model_throughput(name, runtime=runtime, batch_size=args.batch_size, resolution=args.resolution,
                             seed=args.seed, threads=args.threads, warmup_s=args.warmup, window_s=args.window,
                             amp=False if args.no_amp else None, cuda_graph=args.cuda_graph)
        records.append(r)
        if args.json:
            print(json.dumps(r), flush=True)
        else:
            print(f"{name:24s} {r['images_per_s']:10.1f} img/s (IQR {r['spread']:.1f})  {_setting(r)}", flush=True)
    if args.csv:
        write_csv(pd.DataFrame(records), args.csv)
    return 0


def _setting(r: dict) -> str:
    """What was timed, in words: device, batch, resolution, threads or precision, and the timing window."""
    how = (f"{'AMP fp16' if r['amp'] else 'fp32'}{', CUDA graph' if r['cuda_graph'] else ''}"
           if r["runtime"] == "cuda" else f"{r['threads']} thread{'s' * (r['threads'] != 1)}")
    return (f"{r['device']}, batch {r['batch_size']}, {r['resolution']} px, {how}; median of {r['passes']} "
            f"passes in a {r['window_s']:g} s window after {r['warmup_s']:g} s warm-up")


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
