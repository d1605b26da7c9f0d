"""`python -m analysis.cost`: macs, memory traffic, parameters and latency per stage of a model."""
from __future__ import annotations

import json
import sys
import time

from .._cli import (ArgumentParser, add_attention_backend_arg, add_device_arg, add_overwrite_arg, add_seed_arg,
                    add_threads_arg, command, non_negative_int, output_path, positive_int, resolution, MODEL_HELP)

EPILOG = """examples:
  python -m analysis.cost --model shvit_s4                      # counts per stage, 256 px (pretrained cfg)
  python -m analysis.cost --model shvit_s4 --latency            # + per-stage latency, 1 thread, 20 passes
  python -m analysis.cost --model deit_tiny_patch16_224 --json  # total + stages as JSON on stdout
  python -m analysis.cost --model shvitlab_fig2_a --resolution 224 --csv stages.csv
  python -m analysis.cost --model efficientvit_m4 --by module --csv modules.csv
  python -m analysis.cost --model deit_tiny_patch16_224 --latency --attention-backend math
  python -m analysis.cost --model vit_giant_patch14_dinov2 --meta   # 1.1 B params at 518 px, in seconds
"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m analysis.cost", epilog=EPILOG,
                       description="macs, memory traffic (bytes), parameters and latency per stage of a model "
                                   "(BN-fused, as the papers count).")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--resolution", type=resolution, default=None,
                   help="input side in px (default: the model's pretrained config)")
    p.add_argument("--batch-size", type=positive_int, default=1)
    add_device_arg(p)
    add_seed_arg(p, "seed for the random weights and input")
    add_threads_arg(p, help="CPU threads for --latency (default: 1, as the papers' CPU protocol)")
    p.add_argument("--no-fuse", action="store_true", help="count the model as built (BN not folded)")
    p.add_argument("--meta", action="store_true",
                   help="build and count on the meta device: no weights in memory, nothing computed, the same "
                        "counts (a model that does not fit in memory counts in seconds); not with --latency")
    add_attention_backend_arg(p)
    p.add_argument("--by", choices=("stage", "module", "operator"), default="stage",
                   help="table for the text / --csv output (default: stage)")
    p.add_argument("--depth", type=non_negative_int, default=None,
                   help="with --by module: deepest module level printed (default 3; the CSV has every module)")
    p.add_argument("--latency", action="store_true",
                   help="also time each stage (median over --repeats passes); without it the output is counts only, "
                        "byte-for-byte reproducible")
    p.add_argument("--repeats", type=positive_int, default=None, help="timed forward passes with --latency (default 20)")
    p.add_argument("--warmup", type=non_negative_int, default=None,
                   help="untimed forward passes before timing, with --latency (default 5)")
    p.add_argument("--json", action="store_true", help="print the total and per-stage table as JSON")
    p.add_argument("--csv", metavar="PATH", type=output_path, help="write the tidy table (see --by) to PATH")
    add_overwrite_arg(p)
    return p


def run(args) -> int:
    from ..core.errors import UserError
    from ..core.runtime import attention_backend, resolve_device, set_threads
    from ..core.tables import write_csv
    from .model_cost import analyse, cost_text, report

    ignored = [o for o, v in (("--repeats", args.repeats), ("--warmup", args.warmup), ("--threads", args.threads))
               if v is not None and not args.latency] + (["--depth"] if args.depth is not None and args.by != "module"
                                                          else [])
    if ignored:
        raise UserError(f"{', '.join(ignored)} would be ignored: --repeats, --warmup and --threads apply with "
                        "--latency, --depth with --by module")
    if args.json and (args.depth is not None or (args.by != "stage" and not args.csv)):
        raise UserError(f"{'--depth' if args.depth is not None else f'--by {args.by}'} would be ignored: --json prints "
                        "the total and the per-stage table (--by applies to the text output and --csv, --depth to "
                        "the text output)")
    if args.meta and args.latency:
        raise UserError("--meta counts without computing anything, so there is nothing to time: drop --latency")
    repeats = 20 if args.repeats is None else args.repeats
    warmup = 5 if args.warmup is None else args.warmup
    depth = 3 if args.depth is None else args.depth
    device = resolve_device(args.device)
    backend = attention_backend(args.attention_backend, device)
    if args.attention_backend != "auto" and not args.latency:
        raise UserError(f"--attention-backend {args.attention_backend} would be ignored: the counts are the same under "
                        "every kernel; it applies with --latency")
    threads = set_threads(args.threads or 1) if args.latency else None
    t0 = time.perf_counter()
    with backend:  # counts are the same under each; latency is not
        ca, lat, res = analyse(args.model, resolution=args.resolution, batch_size=args.batch_size,
                               device=device, seed=args.seed, fuse=not args.no_fuse,
                               repeats=repeats if args.latency else 0, warmup=warmup, progress=True, meta=args.meta)
        table = {"stage": ca.by_stage, "module": ca.by_module, "operator": ca.by_operator}[args.by]()
    unsupported = ca.unsupported_ops()
    if unsupported:
        print(f"warning: no macs rule for {', '.join(f'{op} ({n} calls)' for op, n in unsupported.items())}; "
              "the totals count them as 0 (see analysis.cost.op_rules.register_macs)", file=sys.stderr)
    if args.by == "stage" and lat is not None:
        table = table.merge(lat[["stage", "latency_ms"]], on="stage", how="left")
    table.insert(0, "resolution", res)
    table.insert(0, "model", args.model)
    if args.csv:
        write_csv(table, args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
    if args.json:
        print(json.dumps(report(ca, lat, args.model, res), indent=2))
    else:
        print(f"{args.model} at {res} px, batch {args.batch_size}" + ("" if args.no_fuse else ", BatchNorm folded")
              + (", counted on the meta device" if args.meta else ""))
        print(cost_text(ca, args.by, depth=depth, latency=lat))
        print(f"total: {ca.total('macs') / 1e6:.1f} M macs, {ca.total('mem_bytes') / 2**20:.1f} MiB, "
              f"{ca.total('params') / 1e6:.2f} M params")
        print(f"counted in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    if lat is not None:
        print(f"latency: median of {repeats} passes after {warmup} warm-up, {threads} CPU thread(s) "
              f"on {device}, batch {args.batch_size}" if device.type == "cpu" else
              f"latency: median of {repeats} passes after {warmup} warm-up on {device}, "
              f"batch {args.batch_size}", file=sys.stderr)
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
