"""Speed of `python -m analysis.cost` (target: shvit_s4 at 256 px analysed in under 5 s on CPU).

Prints, measured in this one run: the in-process analysis time (build, fuse, count, tables;
latency skipped and with the default 20 timed passes), and the wall time of the CLI as a
user runs it (interpreter start and imports included).

    python benchmarks/cost_speed.py [--model shvit_s4] [--threads 1]
"""
import argparse
import subprocess
import sys
import time

import torch

from analysis.cost.model_cost import analyse, report


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shvit_s4")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for repeats in (0, 20):
        t0 = time.perf_counter()
        ca, lat, res = analyse(args.model, repeats=repeats)
        report(ca, lat, args.model, res)
        ca.by_module()
        dt = time.perf_counter() - t0
        print(f"{args.model} @ {res} px, in process, latency repeats={repeats}: {dt:.2f} s "
              f"({dt / 5:.2f} of the 5 s budget)")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "analysis.cost", "--model", args.model, "--json",
                    "--threads", str(args.threads)], check=True, stdout=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    print(f"CLI wall time (python start + imports + analysis + latency): {dt:.2f} s ({dt / 5:.2f} of 5 s)")


if __name__ == "__main__":
    main()
