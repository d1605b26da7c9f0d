"""`python -m analysis.roofline`: measure this machine's roofline (GEMM peak, memory bandwidth, per-op
overhead), place every op of BN-fused models on it, predict each stage's latency and check the
prediction against the clock (library: `analysis.cost.roofline`)."""
from __future__ import annotations

import sys
from pathlib import Path

from ._cli import (ArgumentParser, add_device_arg, add_overwrite_arg, add_seed_arg, add_threads_arg, check_stem,
                   command, non_negative_int, output_file, output_path, positive_int, resolution, MODEL_HELP)
from .core.errors import UserError
from .core.names import ROOFLINE_MODELS

EPILOG = """examples:
  python -m analysis.roofline --model shvit_s4                     # 1 thread, batch 16: predicted vs measured
  python -m analysis.roofline                      # DeiT-T, Swin-T, EfficientViT-M4, SHViT-S4, Fig 2 (a)/(b)
  python -m analysis.roofline --save-machine cpu.json --predict-only --model shvit_s4
  python -m analysis.roofline --machine cpu.json --by op --csv ops.csv --model deit_tiny_patch16_224
  python -m analysis.roofline --device cuda --figure roofline      # PNG + PDF
  python -m analysis.roofline --calibrated --save-machine cal.json --model resnet18   # calibrated predictor
  python -m analysis.roofline --calibrated --machine cal.json --predict-only --model mymodels.py:tiny
  python -m analysis.roofline --calibrated --flush-denormal --model swin_tiny_patch4_window7_224   # no subnormals
"""



def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m analysis.roofline", epilog=EPILOG,
                       description="per-op roofline and predicted vs measured latency per stage of BN-fused models "
                                   "(random weights: speed does not depend on them, but for subnormal values: see "
                                   "--flush-denormal).")
    p.add_argument("--model", action="append", help=f"{MODEL_HELP}; repeatable (default: {', '.join(ROOFLINE_MODELS)})")
    p.add_argument("--resolution", type=resolution, default=None, help="default: each model's pretrained config")
    p.add_argument("--batch-size", type=positive_int, default=16, help="the papers' CPU batch")
    add_device_arg(p)
    add_threads_arg(p, help="CPU threads for the machine measurement and the latency (default: 1, as the "
                            "papers' CPU protocol and `analysis.cost --latency`)")
    add_seed_arg(p)
    p.add_argument("--repeats", type=positive_int, default=None, help="timed forward passes per model (default 10)")
    p.add_argument("--warmup", type=non_negative_int, default=None,
                   help="untimed forward passes before timing (default 2)")
    p.add_argument("--calibrated", action="store_true",
                   help="the calibrated predictor (analysis.cost.predictor): ~1,500 microbenchmarks of this machine "
                        "(under 2 min), each op priced by its kind and shape, with what bounds it; the simple "
                        "roofline on the same machine as a baseline column")
    p.add_argument("--machine", metavar="JSON", help="use this machine description (calibrated with --calibrated) "
                                                    "instead of measuring one")
    p.add_argument("--save-machine", metavar="JSON", type=output_path, help="write the machine description used")
    p.add_argument("--predict-only", action="store_true", help="predict, do not time the models")
    p.add_argument("--flush-denormal", action="store_true",
                   help="on the CPU, flush subnormal floats to zero while measuring the machine and timing the models "
                        "(torch.set_flush_denormal): random weights can make subnormal values (Swin-T's attention "
                        "probabilities), which many CPUs compute far slower and no shape predicts")
    p.add_argument("--by", choices=("stage", "module", "op"), default=None, help="table for --csv (default: stage)")
    p.add_argument("--depth", type=non_negative_int, default=None, help="with --by module: deepest level listed")
    p.add_argument("--csv", metavar="PATH", type=output_path, help="write the tidy table (see --by) to PATH")
    p.add_argument("--figure", metavar="STEM", help="write STEM.png and STEM.pdf (ops on the roofline, "
                                                   "predicted vs measured)")
    add_overwrite_arg(p)
    return p


def run(args) -> int:
    import torch

    from .core.runtime import resolve_device

    names, machine = _checked(args)
    device = resolve_device(args.device)
    if args.flush_denormal and device.type != "cpu":
        raise UserError(f"--flush-denormal would be ignored: it applies to the CPU, the models run on {device.type}")
    if args.flush_denormal and not torch.set_flush_denormal(True):
        raise UserError("--flush-denormal: this CPU cannot flush subnormal floats to zero (x86 with SSE3 can)")
    try:
        return _run(args, names, machine, device)
    finally:
        if args.flush_denormal:
            torch.set_flush_denormal(False)


def _run(args, names, machine, device) -> int:
    from .core.files import write_set
    from .core.models import create_model_at
    from .core.runtime import set_threads
    from .cost.calibration import calibrate
    from .cost.predictor import model_predictor, predictor_stages
    from .cost.roofline import measure_machine, measure_stage_latency, model_roofline, roofline_stages

    threads = set_threads(args.threads or 1) if device.type == "cpu" else None
    if machine is not None and machine.device != device.type and not args.predict_only:
        raise UserError(f"--machine {args.machine} describes a {machine.device} machine, the models would be timed "
                        f"on {device.type} (use --predict-only to predict for that machine)")
    # every model at its resolution, checked before measuring or writing anything
    built = {n: create_model_at(n, args.resolution, seed=args.seed, batch_size=args.batch_size, device=device)
             for n in names}
    if machine is None:
        print(f"{'calibrating' if args.calibrated else 'measuring'} the machine ({device}"
              f"{f', {threads} thread(s)' if threads else ''}) ...", file=sys.stderr)
        machine = calibrate(device, threads=threads) if args.calibrated else measure_machine(device, threads=threads)
    _describe(machine)
    if args.calibrated and not args.predict_only:
        machine.pin_malloc()   # time the models under the allocator setting the machine was calibrated in
    if args.save_machine:
        machine.save(args.save_machine)
        print(f"wrote {args.save_machine}", file=sys.stderr)
    build = model_predictor if args.calibrated else model_roofline
    rooflines = {n: build(n, machine, batch_size=args.batch_size, resolution=args.resolution, device=device,
                          seed=args.seed, built=built.pop(n)) for n in names}
    repeats = 10 if args.repeats is None else args.repeats
    warmup = 2 if args.warmup is None else args.warmup
    latency = None if args.predict_only else measure_stage_latency(rooflines, repeats=repeats, warmup=warmup)
    stages = (predictor_stages if args.calibrated else roofline_stages)(rooflines, latency)
    for path in write_set(_outputs(args, rooflines, stages, machine, latency is not None)):
        print(f"wrote {path}", file=sys.stderr)
    _report(stages, latency is not None, args.calibrated)
    if latency is not None:
        print(f"measured: median of {repeats} passes after {warmup} warm-up, batch {args.batch_size}, "
              f"{f'{threads} CPU thread(s)' if threads else device}", file=sys.stderr)
    return 0


def _describe(machine) -> None:
    """One line on stderr: what the machine description says."""
    if hasattr(machine, "samples"):
        print(f"machine: {machine.name}: calibrated from {sum(len(v['log2_rate']) for v in machine.samples.values())} "
              f"kernels of {len(machine.samples)} kinds, peak {machine.peak_flops / 1e9:.1f} GFLOP/s, overhead "
              f"{machine.overhead_s * 1e6:.2f} us per op", file=sys.stderr)
    else:
        print(f"machine: {machine.name}: peak {machine.peak_flops / 1e9:.1f} GFLOP/s, bandwidth "
              f"{machine.bandwidth / 1e9:.1f} GB/s, ridge {machine.ridge:.2f} FLOP/byte, overhead "
              f"{machine.overhead_s * 1e6:.2f} us per op", file=sys.stderr)


def _checked(args):
    """(model names, the --machine description or None), every option combination and output checked."""
    from .core.files import check_distinct
    from .core.models import check_model_name
    from .cost.calibration import CalibratedMachine
    from .cost.roofline import Machine

    names = args.model or list(ROOFLINE_MODELS)
    for n in names:
        check_model_name(n)
    if args.flush_denormal and args.predict_only and args.machine:
        raise UserError("--flush-denormal would be ignored: with --machine and --predict-only nothing is measured")
    if args.predict_only and (args.repeats is not None or args.warmup is not None):
        raise UserError("--repeats and --warmup would be ignored: --predict-only times nothing")
    if args.by is not None and not args.csv:
        raise UserError(f"--by {args.by} would be ignored: it chooses the table of --csv")
    if args.depth is not None and args.by != "module":
        raise UserError("--depth would be ignored: it applies with --by module")
    if args.calibrated and args.by == "module":
        raise UserError("--by module is the simple roofline's: with --calibrated, choose --by stage or --by op")
    if args.calibrated and args.figure and args.predict_only:
        raise UserError("--figure with --calibrated draws predicted beside measured time: drop --predict-only")
    machine = (CalibratedMachine if args.calibrated else Machine).load(args.machine) if args.machine else None
    for ext in (".png", ".pdf") if args.figure else ():
        output_file(check_stem(args.figure, "--figure") + ext)
    check_distinct(**{"--csv": args.csv, "--save-machine": args.save_machine, "--machine": args.machine,
                      **({"--figure (.png)": args.figure + ".png", "--figure (.pdf)": args.figure + ".pdf"}
                         if args.figure else {})})
    return names, machine


def _outputs(args, rooflines, stages, machine, measured: bool) -> dict:
    """{path: writer} of the --csv table (by stage, module or op) and the --figure, written together."""
    import pandas as pd

    from .core.plotting import figure_writers, provenance
    from .core.tables import csv_writer
    from .cost.plots import plot_roofline
    from .cost.predictor import predictor_summary
    from .cost.predictor_plots import plot_predictor

    outputs, by = {}, args.by or "stage"
    if args.csv:
        if by == "stage":
            table = stages
        else:
            tables = [(rl.ops() if by == "op" else rl.by_module(args.depth)).assign(model=n)
                      for n, rl in rooflines.items()]
            table = pd.concat(tables, ignore_index=True)
            table = table[["model"] + [c for c in table.columns if c != "model"]]
        outputs[Path(args.csv)] = csv_writer(table, args.csv)
    if args.figure and args.calibrated:
        fig = plot_predictor(stages, {"the models asked for": predictor_summary(stages)}, models=list(rooflines)[:3])
    elif args.figure:
        ops = pd.concat([rl.ops().assign(model=n) for n, rl in rooflines.items()], ignore_index=True)
        fig = plot_roofline(ops, machine, stages if measured else None)
    if args.figure:
        provenance(fig, scale="full", weights="random (speed only)", extra=f"{machine.name}, batch {args.batch_size}")
        outputs.update(figure_writers(fig, args.figure))
    return outputs


def _report(stages, measured: bool, calibrated: bool) -> None:
    """The per-stage table (and the summary against the clock) on stdout."""
    import pandas as pd

    from .cost.predictor import predictor_summary
    from .cost.roofline import roofline_summary

    columns = ["model", "stage", "n_ops", "macs", "mem_bytes"] + (
        ["predicted_ms", "bound", "bound_pct", "roofline_ms"] if calibrated else
        ["flops_per_byte", "compute_ms", "memory_ms", "overhead_ms", "predicted_ms"]) + \
        (["measured_ms"] if measured else [])
    shown = stages[columns].assign(macs=stages["macs"] / 1e6, mem_bytes=stages["mem_bytes"] / 2 ** 20)
    shown = shown.rename(columns={"macs": "macs (M)", "mem_bytes": "mem_bytes (MiB)",
                                  "flops_per_byte": "FLOP/byte"})
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 500,
                           "display.float_format", "{:.2f}".format):
        print(shown.to_string(index=False))
        if measured:
            print()
            print((predictor_summary if calibrated else roofline_summary)(stages).to_string(index=False))


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
