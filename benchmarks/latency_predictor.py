"""The calibrated latency predictor on models it has never seen (issue 30): calibrate this machine from
microbenchmarks, predict every held-out model's latency per stage, time the models, and print the accuracy,
with the simple roofline on the same machine as the baseline, all in one run, on one CPU thread.

The held-out models were declared in a commit before any of them was predicted or timed; nothing is fitted on
them. `held-out` (`PREDICTOR_HELD_OUT_MODELS`: 24 timm models from 20 model modules) was scored once before
malloc was pinned; `held-out-2` (`PREDICTOR_HELD_OUT_MODELS_2`: 24 models from 23 other modules) was declared
after that, for the predictor that calibrates and measures with malloc's thresholds pinned (`cost.allocator`,
applied here whenever the machine description records a pin); `held-out-3` (`PREDICTOR_HELD_OUT_MODELS_3`: 20
models from 18 modules in neither earlier set) was declared after set 2 was scored, for the predictor that prices
the page faults of fresh outputs per byte; `held-out-4` (`PREDICTOR_HELD_OUT_MODELS_4`: 21 models from 15 modules
in no earlier set) was declared after set 3 was scored, for the predictor whose rates no longer take the `fresh`
flag (fresh pages priced per byte alone); `held-out-5` (`PREDICTOR_HELD_OUT_MODELS_5`: 21 models from the 13
modules in no earlier set, 6-34 GMACs per image, so timed at batch 8 and with the vision-language towers at 224 px)
was declared after set 4 was scored, for the predictor that times transposed convolutions; `held-out-6`
(`PREDICTOR_HELD_OUT_MODELS_6`: 24 models no set predicted or timed, from 24 modules of sets 1-4) was declared
after set 5 was scored, for the calibration that re-times slowed microbenchmarks, and is calibrated and timed with
subnormals flushed to zero; `held-out-7` (`PREDICTOR_HELD_OUT_MODELS_7`: 24 models no set predicted or timed, from 19
modules of sets 1-4) was declared after set 6 was scored, for the calibration that fits a context factor on random
networks (`cost.context_networks`), and is protocolled as set 6. Each set's protocol (models, batch size, resolutions, subnormals, result files) is its
entry in `analysis.core.predictor_sets.PREDICTOR_SETS`: batch 16 (set 5: 8), pretrained-config resolution (set 5's
towers: 224 px), BN folded, random weights; measured as
`analysis.cost.roofline.measure_stage_latency` does (the median of `--repeats` unprobed passes, each interleaved
with a probed pass that times the stages).

    python benchmarks/latency_predictor.py [--models held-out-7|held-out-6|...|held-out|tuning|tuning-7|figure] [--machine JSON] [--repeats 10] [--save]

Prints the calibration time, the per-model table (predicted, measured, error; roofline and its error) and the
summary: median and worst |error| over models, pooled Spearman rho of predicted vs measured stage time.
`--machine` reuses a saved calibration instead of calibrating. `--save-repeat` keeps only the figures and each
model's error of a repeat run (`results/benchmarks/latency_predictor-<set>-repeat.json`), to show how far a second
calibration and timing on the same host move a scored set's numbers. `--save` keeps what notebook 09 reads: for a
held-out set the machine description `results/09_predictor_machine[_N]_cpu.json`, the measured latencies
`results/09_predictor_latency[_N]_cpu.csv` and `results/benchmarks/latency_predictor[-held-out-N].json`; for
`figure` (SHViT-S4, EfficientViT-M4, DeiT-T, figure 09's stage panels; run it with the latest held-out
run's `--machine`, `held-out-7` as figure 09 was made) the measured latencies `results/09_predictor_figure_latency_cpu.csv`; for
`tuning` and `tuning-7` (run with set 5's and set 7's `--machine`, on their host: how the predictor does there on the
models it was designed with) `results/09_predictor_tuning[_7]_latency_cpu.csv`.
"""
import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from analysis.core.predictor_sets import PREDICTOR_SETS
from analysis.core.tables import write_csv
from analysis.cost.calibration import CalibratedMachine, calibrate
from analysis.cost.predictor import model_predictor, predictor_stages, predictor_summary
from analysis.cost.roofline import measure_stage_latency
from _results import save_result

RESULTS = Path(__file__).resolve().parents[1] / "results"
TARGETS = {"median |error| %": 10.0, "worst |error| %": 25.0, "pooled stage rho": 0.95, "calibration s": 120.0}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", choices=tuple(PREDICTOR_SETS), default="held-out-7")
    p.add_argument("--machine", metavar="JSON", help="a saved calibration (default: calibrate now)")
    p.add_argument("--repeats", type=int, default=10, help="timed passes per model (>= 10)")
    saving = p.add_mutually_exclusive_group()
    saving.add_argument("--save", action="store_true", help="keep what notebook 09 reads")
    saving.add_argument("--save-repeat", action="store_true",
                        help="keep only the figures and each model's error, as latency_predictor-<set>-repeat.json: a "
                             "repeat run of a scored set, which replaces none of its files")
    args = p.parse_args()
    models = PREDICTOR_SETS[args.models]
    torch.set_num_threads(1)
    torch.set_flush_denormal(models.flush_denormal)   # the set's protocol, for the calibration and the timing
    machine = CalibratedMachine.load(args.machine) if args.machine else calibrate("cpu", threads=1)
    machine.pin_malloc()   # time the models under the allocator setting the machine was calibrated in
    print(f"calibrated {machine.name} in {machine.calibration_s:.1f} s: "
          f"{sum(len(v['log2_rate']) for v in machine.samples.values())} kernels, {len(machine.samples)} kinds, "
          f"dispatch {machine.dispatch_s * 1e6:.2f} us, overhead {machine.overhead_s * 1e6:.2f} us per op")
    names, batch = models.models, models.batch_size
    predictors = {n: model_predictor(n, machine, batch_size=batch, resolution=models.resolution(n)) for n in names}
    latency = measure_stage_latency(predictors, repeats=args.repeats, warmup=2)
    summary = predictor_summary(predictor_stages(predictors, latency))
    with pd.option_context("display.width", 200, "display.max_rows", 100, "display.float_format", "{:.1f}".format):
        print(summary.drop(columns=[c for c in summary if "abs_error" in c]).to_string(index=False))
    pooled = summary.iloc[-1]
    figures = {"models": len(names), "batch": batch, "flush denormal": models.flush_denormal,
               "calibration s": machine.calibration_s,
               "median |error| %": round(float(pooled["median_abs_error_pct"]), 2),
               "worst |error| %": round(float(pooled["max_abs_error_pct"]), 2),
               "pooled stage rho": round(float(pooled["rho"]), 4),
               "roofline median |error| %": round(float(pooled["roofline_median_abs_error_pct"]), 2),
               "roofline worst |error| %": round(float(pooled["roofline_max_abs_error_pct"]), 2)}
    for key, target in TARGETS.items():
        ok = figures[key] >= target if key == "pooled stage rho" else figures[key] <= target
        print(f"  {key}: {figures[key]} (target {'>=' if key == 'pooled stage rho' else '<='} {target}): "
              f"{'met' if ok else 'NOT met'}")
    print(f"  simple roofline: median |error| {figures['roofline median |error| %']} %, worst "
          f"{figures['roofline worst |error| %']} %")
    if args.save_repeat:
        errors = summary.iloc[:-1].set_index("model")["error_pct"]
        save_result(__file__, {**figures, **{f"error % {m}": round(float(e), 2) for m, e in errors.items()}},
                    rounds=args.repeats, threads=1, variant=f"{args.models}-repeat")
    if args.save:
        write_csv(latency, RESULTS / models.file("latency"), exact=True)
        if models.held_out:
            machine.save(RESULTS / models.file("machine"))
            save_result(__file__, figures, rounds=args.repeats, threads=1,
                        variant="" if args.models == "held-out" else args.models)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s in all)")
