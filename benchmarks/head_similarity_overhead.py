"""Cost of `python -m analysis.head_similarity`'s analysis vs a plain forward pass (CPU).

Both run `deit_tiny_patch16_224` (random weights, fused attention as timm ships it) over
the same pre-decoded images (image decoding is left out of both), with the same batch
size and thread count. The analysis is the library call the CLI makes,
`head_similarity(model, batches, metrics=...)`; the plain forward runs on an identical copy
of the model (the analysis's hooks stay on the original).

Pairs, not passes: while the analysis consumes its batches, the iterator feeding it runs
the plain model on each batch just before handing it over, so every batch gives one
(plain, analysed) pair of timings taken seconds apart. A 2-core VM drifts by +-10 % over
minutes; adjacent pairs share the drift, whole passes do not. The ratio reported is the
geometric mean of the per-batch ratios with a 95 % t-interval (`analysis.evidence`), plus
the once-per-pass work outside the batches (setup, `to_frame`) over a plain pass.
Targets (issue 14): <= 1.15x for the CLI's default analysis (the papers' two similarity
metrics) and <= 1.20x with `--metrics all`.

glibc returns freed activations to the OS and faults them back in on the next forward
(~10^5 page faults per DeiT-T batch of 32, varying with the heap's history): this
inflates and scatters both sides. `--malloc-cache` re-runs the benchmark with glibc told to
keep freed memory (MALLOC_TRIM_THRESHOLD_ / MALLOC_MMAP_THRESHOLD_), for both sides alike;
page faults per batch are printed either way.

`--breakdown` adds the capture alone (fused attention run explicitly, its softmax kept: what
`head_similarity` does, since it discards the logits), each metric alone, and "recompute alone
(exact)": the floor issue 14 names for a capture that keeps the logits bit-identical
(`AttentionCapture`'s default), i.e. for every batch, the time to recompute all its layers' maps
from the recorded q, k and logsumexp of the fused kernel, back to back after the forward pass (no
hooks, no model work in between), over that batch's plain forward.

    python benchmarks/head_similarity_overhead.py [--images 256] [--batch-size 32] [--threads N]
        [--rounds 5] [--breakdown] [--malloc-cache] [--save]
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import resource
import sys
import time
from typing import Optional

import torch

from analysis.core.images import SampleImages
from analysis.core.models import create_model
from analysis.core.intervals import log_ratio_interval
from analysis.heads._recorder import _FusedMaps, _MapRecorder
from analysis.heads.metrics import METRICS
from analysis.heads.similarity import PAPER_METRICS, head_similarity
from _results import save_result

_KEEP_FREED_MEMORY = {"MALLOC_TRIM_THRESHOLD_": str(1 << 40), "MALLOC_MMAP_THRESHOLD_": str(1 << 30)}


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def paired(batches, plain_model, pairs: list):
    """Yield `batches`; before each, time `plain_model` on it; after, time the consumer on it.
    Appends (plain seconds, analysed seconds, analysed page faults) per batch."""
    for x in batches:
        t0 = time.perf_counter()
        plain_model(x)
        t1 = time.perf_counter()
        f1 = _faults()
        yield x
        pairs.append((t1 - t0, time.perf_counter() - t1, _faults() - f1))


@torch.inference_mode()
def maps_alone(model, x) -> Optional[tuple[float, int]]:
    """Seconds and page faults to recompute every layer's maps of batch `x` outside the model, as
    the capture does (from the q, k, mask and logsumexp its recorder keeps of each fused call);
    None for a model without fused attention (its maps are the softmax outputs: nothing to redo)."""
    with _MapRecorder() as recorder:
        model(x)
    fused = [m for m in recorder.maps if isinstance(m, _FusedMaps)]
    if not fused:
        return None
    f0, t0 = _faults(), time.perf_counter()
    for maps in fused:
        maps[:]
    return time.perf_counter() - t0, _faults() - f0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="deit_tiny_patch16_224")
    p.add_argument("--images", type=int, default=256, help="images per pass (default 256)")
    p.add_argument("--batch-size", type=int, default=32, help="default 32")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="default: torch's")
    p.add_argument("--rounds", type=int, default=5, help="passes per analysis (default 5)")
    p.add_argument("--breakdown", action="store_true", help="also time the capture alone and each metric alone")
    p.add_argument("--malloc-cache", action="store_true",
                   help="run with glibc keeping freed memory (no page-fault noise), for both sides")
    p.add_argument("--save", action="store_true", help="keep the figures in results/benchmarks/ (with the host): "
                   "head_similarity_overhead.json, or head_similarity_overhead-malloc-cache.json with --malloc-cache")
    args = p.parse_args()
    if math.ceil(args.images / args.batch_size) * args.rounds < 2:
        p.error("an interval needs at least 2 (plain, analysed) batch pairs: raise --images or --rounds")
    if args.malloc_cache and any(os.environ.get(k) != v for k, v in _KEEP_FREED_MEMORY.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_KEEP_FREED_MEMORY})

    torch.set_num_threads(args.threads)
    model = create_model(args.model, "random", seed=0)
    plain_model = copy.deepcopy(model)
    batches = [x for x, _ in SampleImages(args.images, seed=0).batches(model, args.batch_size)]

    @torch.inference_mode()
    def plain(x):
        plain_model(x)

    runs = {"paper metrics (CLI default)": PAPER_METRICS, "all metrics": METRICS}
    if args.breakdown:
        runs["capture only"] = ()
        runs.update({metric: (metric,) for metric in METRICS})
    for x in batches[:2]:  # warm-up (allocator, kernels)
        plain(x)
    head_similarity(model, batches[:2])
    pairs = {name: [] for name in runs}
    outside = {name: [] for name in runs}  # per pass: time outside the batches
    for _ in range(args.rounds):
        for name, metrics in runs.items():
            before = len(pairs[name])
            t0 = time.perf_counter()
            head_similarity(model, paired(batches, plain, pairs[name]), metrics=metrics)
            whole = time.perf_counter() - t0
            outside[name].append(whole - sum(a + b for a, b, _ in pairs[name][before:]))

    if args.breakdown and maps_alone(model, batches[0]) is not None:  # (plain, maps alone) pairs per batch
        pairs["recompute alone (exact)"] = []
        for _ in range(args.rounds):
            for x in batches:
                t0 = time.perf_counter()
                plain(x)
                plain_seconds = time.perf_counter() - t0
                seconds, faults = maps_alone(model, x)
                pairs["recompute alone (exact)"].append((plain_seconds, plain_seconds + seconds, faults))
        outside["recompute alone (exact)"] = [0.0]

    plain_pass = sum(a for a, _, _ in pairs["all metrics"]) / args.rounds
    print(f"{args.model}, {args.images} images, batch {args.batch_size}, {args.threads} thread(s), "
          f"{args.rounds} rounds, allocator: {'glibc keeping freed memory' if args.malloc_cache else 'default'}")
    print(f"  {'analysis':28s} {'ratio':>6s} {'95% interval':>15s} {'per-batch ratios':>22s}   "
          f"{'page faults/batch':>17s}")
    results = {}
    for name in pairs:
        est = log_ratio_interval([b / a for a, b, _ in pairs[name]], "batch pairs")
        once = min(outside[name]) / plain_pass
        results[name] = (est.value + once, est.low + once, est.high + once)
        ratios = sorted(b / a for a, b, _ in pairs[name])
        faults = sum(f for _, _, f in pairs[name]) / len(pairs[name])
        print(f"  {name:28s} {results[name][0]:5.3f}x [{results[name][1]:.3f}, {results[name][2]:.3f}]"
              f"   min {ratios[0]:.2f} max {ratios[-1]:.2f}   {faults:15.0f}")
    plain_faults = []
    for x in batches:
        f0 = _faults()
        plain(x)
        plain_faults.append(_faults() - f0)
    print(f"  plain forward: {plain_pass:.2f} s per pass, {sum(plain_faults) / len(plain_faults):.0f} page faults/batch")
    for name, target, key in (("paper metrics", 1.15, "paper metrics (CLI default)"), ("all metrics", 1.20, "all metrics")):
        value, low, high = results[key]
        print(f"RATIO (analysis, {name} / plain forward): {value:.3f}x [{low:.3f}, {high:.3f}] (target <= {target:.2f}x)")
    if args.save:
        save_result(__file__, {name: [round(v, 4) for v in r] for name, r in results.items()}
                    | {"plain pass s": round(plain_pass, 4), "images": args.images, "batch size": args.batch_size,
                       "model": args.model}, rounds=args.rounds, threads=args.threads,
                    variant="malloc-cache" if args.malloc_cache else "")


if __name__ == "__main__":
    main()
