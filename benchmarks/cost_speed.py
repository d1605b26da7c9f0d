"""Speed of counting (issue 14: SHViT-S4 @ 256 counted in process in under 1 s, at least 3x faster
than fvcore on the same BN-folded model, totals unchanged), and of `python -m analysis.cost`.

Prints, measured in this one run on one CPU thread: the best of `--repeats` countings by
`CostAnalysis` and by fvcore's `FlopCountAnalysis` of the same folded model and input (each a new
analysis object; ours also with the first call's time), their ratio, both totals, and the wall time
of the CLI as a user runs it (interpreter start, imports, build, fold, count, tables).

    python benchmarks/cost_speed.py [--model shvit_s4] [--repeats 5]
"""
import argparse
import logging
import subprocess
import sys
import time

import torch
from fvcore.nn import FlopCountAnalysis

from analysis.core.models import create_model_at, fuse_model
from analysis.cost.counter import CostAnalysis


def best_of(fn, repeats):
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times[0], result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shvit_s4")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)  # fvcore's unsupported-op warnings
    model, (c, h, w) = create_model_at(args.model, None, seed=0)
    model = fuse_model(model, inplace=True)
    x = torch.randn(1, c, h, w)
    ours, first, ours_total = best_of(lambda: CostAnalysis(model, x, fuse=False).total("macs"), args.repeats)
    theirs, _, fv_total = best_of(lambda: FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
                                  .uncalled_modules_warnings(False).total(), args.repeats)
    print(f"{args.model} @ {h} px, BN folded, 1 thread, best of {args.repeats}:")
    print(f"  CostAnalysis: {ours:.3f} s (first call {first:.3f} s), {ours_total / 1e6:.1f} M macs")
    print(f"  fvcore:       {theirs:.3f} s, {fv_total / 1e6:.1f} M macs")
    print(f"  ratio fvcore / ours: {theirs / ours:.2f}x (target >= 3), under 1 s: {ours < 1}, "
          f"totals equal: {ours_total == fv_total}")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "analysis.cost", "--model", args.model, "--json"], check=True,
                   stdout=subprocess.DEVNULL)
    print(f"CLI wall time (python start + imports + build + fold + count): {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
