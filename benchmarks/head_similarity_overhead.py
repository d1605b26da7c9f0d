"""Cost of `python -m analysis.head_similarity`'s analysis vs a plain forward pass (CPU).

Both run `deit_tiny_patch16_224` (random weights, fused attention as timm ships it) over
the same pre-decoded images (image decoding is left out of both), with the same batch
size and thread count. The analysis is the library call the CLI makes,
`head_similarity(model, batches, metrics=...)`, timed batch by batch through the
iterator it consumes; whatever runs outside the batches (setup, `to_frame`) is added once.

Rounds alternate plain and analysed passes. A batch's cost is its fastest round and a
pass's cost is the sum over batches: on a shared machine, bursts of load elsewhere hit a
few batches, not whole passes, so per-batch minima are far steadier than whole-pass
minima (both are printed, with medians). Target: ratio <= 1.3x for the CLI's default
analysis (the papers' two similarity metrics); `--metrics all` is printed too.

    python benchmarks/head_similarity_overhead.py [--images 256] [--batch-size 32] [--threads N] [--breakdown]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from analysis.heads.metrics import METRICS
from analysis.heads.similarity import head_similarity, PAPER_METRICS
from analysis.core.images import SampleImages
from analysis.core.models import create_model


def timed(batches, per_batch: list):
    """Yield `batches`, appending the time the consumer spent on each one."""
    for x in batches:
        t0 = time.perf_counter()
        yield x
        per_batch.append(time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="deit_tiny_patch16_224")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--breakdown", action="store_true", help="also time the capture alone and each metric alone")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    model = create_model(args.model, "random", seed=0)
    batches = [x for x, _ in SampleImages(args.images, seed=0).batches(model, args.batch_size)]

    @torch.inference_mode()
    def plain(it):
        for x in it:
            model(x)

    runs = {"plain forward": plain,
            "analysis: paper metrics": lambda it: head_similarity(model, it, metrics=PAPER_METRICS),
            "analysis: all metrics": lambda it: head_similarity(model, it, metrics=METRICS)}
    if args.breakdown:
        runs["analysis: capture only"] = lambda it: head_similarity(model, it, metrics=())
        for metric in METRICS:
            runs[f"analysis: {metric}"] = lambda it, metric=metric: head_similarity(model, it, metrics=[metric])
    plain(batches)  # warm-up (allocator, kernels)
    head_similarity(model, batches[:1])
    per_batch = {name: [] for name in runs}  # [round][batch]
    outside = {name: [] for name in runs}    # per round: time outside the batches
    whole = {name: [] for name in runs}      # per round: the whole pass
    for _ in range(args.repeats):
        for name, fn in runs.items():
            times: list = []
            t0 = time.perf_counter()
            fn(timed(batches, times))
            whole[name].append(time.perf_counter() - t0)
            per_batch[name].append(times)
            outside[name].append(whole[name][-1] - sum(times))

    def cost(name, reduce):
        return sum(reduce(b) for b in zip(*per_batch[name])) + reduce(outside[name])

    base = {r: cost("plain forward", r) for r in (min, statistics.median)}
    base_whole = min(whole["plain forward"])
    print(f"{args.model}, {args.images} images, batch {args.batch_size}, {args.threads} thread(s), "
          f"{args.repeats} alternating rounds")
    print(f"  {'':32s} {'per-batch min':>13s} {'median':>7s} {'ratio':>7s} {'(median)':>9s}   "
          f"{'whole-pass min ratio':>20s}")
    for name in runs:
        lo, med = cost(name, min), cost(name, statistics.median)
        print(f"  {name:32s} {lo:12.2f}s {med:6.2f}s {lo / base[min]:6.2f}x {med / base[statistics.median]:8.2f}x"
              f"   {min(whole[name]) / base_whole:19.2f}x")
    for name, note in (("paper metrics", " = CLI default (target <= 1.30x)"), ("all metrics", " = --metrics all")):
        print(f"RATIO (analysis, {name} / plain forward): {cost(f'analysis: {name}', min) / base[min]:.2f}x{note}")


if __name__ == "__main__":
    main()
