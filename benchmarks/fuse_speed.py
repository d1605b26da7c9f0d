"""Fused (BatchNorm folded) vs unfused SHViT latency on CPU, measured in one run.

    python benchmarks/fuse_speed.py [--variant s1] [--batch-size 16] [--threads 1] [--repeats 30]

Prints the median latency of each and the ratio unfused / fused (>= 1.0 means fusing is not slower).
Runs are interleaved so machine noise hits both alike.
"""
import argparse
import copy
import statistics
import time

import torch

import shvit


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", default="s1")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    unfused = shvit.create(args.variant).eval()
    fused = copy.deepcopy(unfused).fuse()
    side = unfused.cfg.img_size
    x = torch.randn(args.batch_size, 3, side, side)
    times = {"unfused": [], "fused": []}
    with torch.inference_mode():
        for m in (unfused, fused):
            for _ in range(3):
                m(x)
        for _ in range(args.repeats):
            for name, m in (("unfused", unfused), ("fused", fused)):
                t0 = time.perf_counter()
                m(x)
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"shvitlab_{args.variant} batch {args.batch_size} @ {side}px, {args.threads} thread(s)")
    print(f"unfused {med['unfused']:.1f} ms  fused {med['fused']:.1f} ms  speed-up {med['unfused'] / med['fused']:.2f}x")


if __name__ == "__main__":
    main()
