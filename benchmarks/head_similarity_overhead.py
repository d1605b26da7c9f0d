"""Cost of `python -m analysis.head_similarity`'s analysis vs a plain forward pass (CPU).

Both run `deit_tiny_patch16_224` (random weights, fused attention as timm ships it) over
the same pre-decoded images (image decoding is left out of both), with the same batch
size and thread count. Plain and analysed passes alternate for `--repeats` rounds and the
ratio uses each one's fastest round (the least disturbed on a shared machine); medians
are printed beside. Target: ratio <= 1.3x for the CLI's default analysis (the papers' two
similarity metrics); the ratio for `--metrics all` is printed too.

    python benchmarks/head_similarity_overhead.py [--images 256] [--batch-size 32] [--threads N] [--breakdown]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from analysis.head_metrics import METRICS
from analysis.head_similarity import PAPER_METRICS, head_similarity
from analysis.images import SampleImages
from analysis.models import create_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="deit_tiny_patch16_224")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--breakdown", action="store_true", help="also time the capture alone and each metric alone")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    model = create_model(args.model, "random", seed=0)
    batches = [x for x, _ in SampleImages(args.images, seed=0).batches(model, args.batch_size)]

    @torch.inference_mode()
    def plain():
        for x in batches:
            model(x)

    runs = {"plain forward": plain,
            "analysis: paper metrics": lambda: head_similarity(model, batches, metrics=PAPER_METRICS),
            "analysis: all metrics": lambda: head_similarity(model, batches, metrics=METRICS)}
    if args.breakdown:
        runs["analysis: capture only"] = lambda: head_similarity(model, batches, metrics=())
        for metric in METRICS:
            runs[f"analysis: {metric}"] = lambda metric=metric: head_similarity(model, batches, metrics=[metric])
    plain()  # warm-up (allocator, kernels)
    head_similarity(model, batches[:1])
    times = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)

    base_min, base_med = min(times["plain forward"]), statistics.median(times["plain forward"])
    print(f"{args.model}, {args.images} images, batch {args.batch_size}, {args.threads} thread(s), "
          f"{args.repeats} alternating rounds")
    print(f"  {'':32s} {'min':>8s} {'median':>8s}   {'ratio(min)':>10s} {'ratio(median)':>13s}")
    for name, t in times.items():
        lo, med = min(t), statistics.median(t)
        print(f"  {name:32s} {lo:7.2f}s {med:7.2f}s   {lo / base_min:9.2f}x {med / base_med:12.2f}x")
    for name, target in (("paper metrics", " = CLI default (target <= 1.30x)"), ("all metrics", " = --metrics all")):
        ratio = min(times[f"analysis: {name}"]) / base_min
        print(f"RATIO (analysis, {name} / plain forward): {ratio:.2f}x{target}")


if __name__ == "__main__":
    main()
