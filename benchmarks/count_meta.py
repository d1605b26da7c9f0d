"""Counting without arithmetic (issue 28 item 2): CostAnalysis on the meta device against fvcore and against a
real run, in one run, on one CPU thread.

Prints the best of `--repeats` interleaved rounds of: fvcore's `FlopCountAnalysis` on the BN-folded model,
`CostAnalysis` on the same real model, and `CostAnalysis` on the model built on meta (`meta=True`: shapes
only), each a new analysis object; their totals (which must agree: fvcore plus the attention it cannot see)
and the ratios fvcore / meta and fvcore / real. Then the same for a model that is expensive to run for
real, counted on meta only (default `vit_giant_patch14_dinov2` at 518 px: about 1.8 T MACs, 1.1 B params).

    python benchmarks/count_meta.py [--model shvit_s4] [--repeats 5] [--big vit_giant_patch14_dinov2] [--save]
"""
import argparse
import logging
import time

import torch
from fvcore.nn import FlopCountAnalysis

from analysis.core.models import create_model_at, fuse_model
from analysis.cost.counter import CostAnalysis
from _results import save_result


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def on_meta(name: str, resolution=None):
    """(BN-folded model built on meta, a meta input) at the model's default resolution."""
    with torch.device("meta"):
        model, (c, h, w) = create_model_at(name, resolution, device="meta")
        return fuse_model(model, inplace=True), torch.empty(1, c, h, w)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="shvit_s4")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--big", default="vit_giant_patch14_dinov2", help="a model counted on meta only ('' to skip)")
    p.add_argument("--save", action="store_true", help="keep the figures in results/benchmarks/ (with the host)")
    args = p.parse_args()
    torch.set_num_threads(1)
    logging.disable(logging.WARNING)  # fvcore's unsupported-op warnings
    model, (c, h, w) = create_model_at(args.model, None, seed=0)
    model, x = fuse_model(model, inplace=True), torch.randn(1, c, h, w)
    meta_model, meta_x = on_meta(args.model)
    runs = {"fvcore": lambda: FlopCountAnalysis(model, x).unsupported_ops_warnings(False)
            .uncalled_modules_warnings(False).total(),
            "real": lambda: CostAnalysis(model, x, fuse=False).ops(),
            "meta": lambda: CostAnalysis(meta_model, meta_x, fuse=False).ops()}
    best, result = {k: float("inf") for k in runs}, {}
    for _ in range(args.repeats):  # interleaved, so that a load change hits all three alike
        for key, fn in runs.items():
            t, result[key] = timed(fn)
            best[key] = min(best[key], t)
    attention = int(result["meta"].query("op == 'aten.scaled_dot_product_attention'")["macs"].sum())
    totals = {"fvcore + attention by hand": result["fvcore"] + attention, "real": int(result["real"]["macs"].sum()),
              "meta": int(result["meta"]["macs"].sum())}
    print(f"{args.model} @ {h} px, BN folded, 1 thread, best of {args.repeats} interleaved rounds:")
    for key in runs:
        print(f"  {key:6s} {best[key]:.3f} s")
    print(f"  ratio fvcore / meta: {best['fvcore'] / best['meta']:.2f}x (target >= 5), "
          f"fvcore / real: {best['fvcore'] / best['real']:.2f}x")
    print(f"  totals (M macs): {', '.join(f'{k} {v / 1e6:.1f}' for k, v in totals.items())}; "
          f"equal: {len(set(totals.values())) == 1}")
    figures = {"model": args.model, "resolution": h, **{f"{k} s": round(v, 4) for k, v in best.items()},
               "fvcore / meta": round(best["fvcore"] / best["meta"], 3),
               "fvcore / real": round(best["fvcore"] / best["real"], 3),
               "totals equal": len(set(totals.values())) == 1}
    if args.big:
        t, (big, big_x) = timed(lambda: on_meta(args.big))
        t_count, ca = timed(lambda: CostAnalysis(big, big_x, fuse=False))
        t_count += timed(lambda: ca.total())[0]
        print(f"{args.big} @ {big_x.shape[-1]} px on meta: built in {t:.1f} s, counted in {t_count:.1f} s: "
              f"{ca.total() / 1e9:.1f} G macs, {ca.total('params') / 1e9:.3f} B params, "
              f"unsupported ops: {ca.unsupported_ops() or 'none'}")
        figures.update({"big model": args.big, "big build s": round(t, 2), "big count s": round(t_count, 2),
                        "big G macs": round(ca.total() / 1e9, 1)})
    if args.save:
        save_result(__file__, figures, rounds=args.repeats, threads=1)


if __name__ == "__main__":
    main()
