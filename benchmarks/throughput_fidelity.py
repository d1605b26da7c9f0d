"""Fidelity of `analysis.throughput`: its CPU figure vs a plain hand-written timing loop.

Same model (BN-fused), batch 16, one thread. The two are interleaved over several rounds so
that a busy machine slows both alike; prints the ratio protocol / hand loop per round and
the median ratio (target: within 10%, i.e. 0.90..1.10).

    python benchmarks/throughput_fidelity.py [--model shvit_s1] [--rounds 5] [--window 3]
"""
import argparse
import statistics
import time

import torch

from analysis.core.models import create_model, fuse_model
from analysis.cost.throughput import measure_throughput


def hand_loop(model, x, seconds: float) -> float:
    """The loop everyone writes: warm up, run n passes, images / elapsed."""
    with torch.no_grad():
        for _ in range(3):
            model(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            model(x)
            n += 1
        return n * x.shape[0] / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shvit_s1")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--window", type=float, default=3.0)
    args = p.parse_args()
    torch.set_num_threads(1)
    model = create_model(args.model)
    fused = fuse_model(model)
    x = torch.randn(16, 3, 224, 224)
    ratios = []
    for i in range(args.rounds):
        ours = measure_throughput(model, runtime="cpu", threads=1, warmup_s=0.5, window_s=args.window)
        plain = hand_loop(fused, x, args.window)
        ratios.append(ours["images_per_s"] / plain)
        print(f"round {i}: protocol {ours['images_per_s']:.1f} img/s, hand loop {plain:.1f} img/s, "
              f"ratio {ratios[-1]:.3f}")
    med = statistics.median(ratios)
    print(f"{args.model}: median ratio protocol / hand loop = {med:.3f} "
          f"({'within' if abs(med - 1) <= 0.10 else 'OUTSIDE'} 10%)")


if __name__ == "__main__":
    main()
