"""Where the calibrated predictor's misses come from, per op category: its rate model, or the model's context
(issue 30). For each model of a predictor set (default: the tuning models, which design decisions may look at),
every op is timed alone (as the calibration times a microbenchmark) and inside the model
(`analysis.cost.op_context.OpContext`), beside its predicted time; the whole model is timed too. One thread, the
set's batch size, BN folded, random weights, malloc pinned as the machine was calibrated.

    python benchmarks/predictor_context.py [--models tuning] [--machine JSON] [--save]

Prints per model and pooled over the models, per op category: predicted, alone and in-model ms, the in-model ms
of ops with at least 1% subnormal inputs, the rate model's ratio (alone / predicted) and the context's (in-model /
alone); and per model the whole model's
measured time against the sum of its ops in the model (the rest: time between ops) and against the prediction, and
timed again with subnormal floats treated the other way (`torch.set_flush_denormal`: flushed to zero where the set
keeps them, kept where it flushes them), which shows where values, not shapes, set the speed.
`--save` keeps the per model x category table as the set's `context` file (tuning models:
`results/09_predictor_tuning_context_cpu.csv`) and the pooled figures in `results/benchmarks/predictor_context.json`.
"""
import argparse
import time
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from analysis.core.predictor_sets import PREDICTOR_SETS
from analysis.core.runtime import with_measured_on
from analysis.core.tables import write_csv
from analysis.cost.calibration import CalibratedMachine, calibrate
from analysis.cost.latency import model_latency
from analysis.cost.op_context import OpContext, with_ratios
from analysis.cost.predictor import model_predictor
from _results import save_result

RESULTS = Path(__file__).resolve().parents[1] / "results"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", choices=tuple(PREDICTOR_SETS), default="tuning")
    p.add_argument("--machine", metavar="JSON", help="a saved calibration (default: calibrate now)")
    p.add_argument("--save", action="store_true", help="keep the table and the pooled figures")
    args = p.parse_args()
    models = PREDICTOR_SETS[args.models]
    torch.set_num_threads(1)
    torch.set_flush_denormal(models.flush_denormal)
    machine = CalibratedMachine.load(args.machine) if args.machine else calibrate("cpu", threads=1)
    machine.pin_malloc()
    tables, wholes = [], []
    for name in tqdm(models.models, desc="models", unit="model"):
        pred = model_predictor(name, machine, batch_size=models.batch_size, resolution=models.resolution(name))
        model, x = pred.cost.model, pred.cost.inputs[0]
        with torch.no_grad():
            measured = model_latency(model, x, repeats=10, warmup=2)
            torch.set_flush_denormal(not models.flush_denormal)   # the same model, subnormals treated the other way
            other = model_latency(model, x, repeats=10, warmup=2)
            torch.set_flush_denormal(models.flush_denormal)
        cats = OpContext(model, x, machine).by_category().assign(model=name)
        tables.append(cats)
        wholes.append({"model": name, "predicted_ms": pred.predicted_ms(), "in_model_ops_ms": cats["in_model_ms"].sum(),
                       "measured_ms": measured,
                       f"measured_{'ieee' if models.flush_denormal else 'flushed'}_ms": other})
    table = pd.concat(tables, ignore_index=True)
    sums = ["n_ops", "predicted_ms", "alone_ms", "in_model_ms", "subnormal_ms"]
    pooled = with_ratios(table.groupby("category", sort=False)[sums].sum())
    whole = pd.DataFrame(wholes)
    whole["between_ops_ratio"] = whole["measured_ms"] / whole["in_model_ops_ms"]
    whole["error_pct"] = 100 * (whole["predicted_ms"] / whole["measured_ms"] - 1)
    with pd.option_context("display.width", 200, "display.max_rows", 200, "display.float_format", "{:.2f}".format):
        print(table.set_index(["model", "category"]).to_string())
        print("\npooled over the models:\n" + pooled.to_string())
        print("\nwhole models:\n" + whole.to_string(index=False))
    total = pooled[sums[1:]].sum()
    figures = {"models": len(models.models), "rate ratio": round(float(total["alone_ms"] / total["predicted_ms"]), 3),
               "context ratio": round(float(total["in_model_ms"] / total["alone_ms"]), 3),
               "between-ops ratio": round(float(whole["measured_ms"].sum() / whole["in_model_ops_ms"].sum()), 3),
               "in-model share with subnormal inputs %": round(float(100 * total["subnormal_ms"] / total["in_model_ms"]), 2),
               **{f"context ratio {c}": round(float(r), 3) for c, r in pooled["context_ratio"].items()},
               **{f"rate ratio {c}": round(float(r), 3) for c, r in pooled["rate_ratio"].items()}}
    print("\n" + ", ".join(f"{k} {v}" for k, v in figures.items()))
    if args.save:
        out = table.merge(whole.drop(columns=["predicted_ms", "between_ops_ratio", "error_pct"]), on="model")
        write_csv(with_measured_on(out, "cpu", 1), RESULTS / models.file("context"))
        save_result(__file__, figures, rounds=10, threads=1, variant="" if args.models == "tuning" else args.models)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s in all)")
