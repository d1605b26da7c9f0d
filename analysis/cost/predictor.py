"""Calibrated latency prediction: every op of a model priced by what microbenchmarks taught about this machine.

    >>> machine = calibrate("cpu", threads=1)                  # analysis.cost.calibration, ~1 minute
    >>> p = LatencyPredictor(model, torch.randn(16, 3, 224, 224), machine)
    >>> p.predicted_ms(), p.by_stage(), p.ops()                # with what bounds each op and stage
    >>> p.by_category(profiled=True)                           # which op classes a miss sits in
    >>> predictors = {name: model_predictor(name, machine) for name in PREDICTOR_HELD_OUT_MODELS}
    >>> stages = predictor_stages(predictors, measure_stage_latency(predictors))   # analysis.cost.roofline
    >>> predictor_summary(stages)                              # error per model, rho, the roofline beside it

Each op that `CostAnalysis` records (BN-fused model, attention as one kernel) is described by
`kernels.describe` and predicted to take its work at the rate the calibration measured for the nearest
kernels of its kind (`CalibratedMachine.seconds`), times the machine's `context` factor (how much slower kernels
ran inside the calibration's random networks than alone; 1 for machines calibrated before held-out set 7), plus `overhead_s`, what an op costs inside a model beyond its
kernel. A model, stage or module is the sum of its ops.

What bounds an op (`bound`, and `bound_pct`, the share of its predicted time that resource accounts for):
`compute` when its flops at the machine's GEMM peak take longest, `cache` or `memory` when its bytes at the
calibrated copy rate for its working set take longest (cache while the working set is at most
`cache_bytes`), `overhead` when dispatch and per-op cost take longest. A compute-bound op at 40% runs at
40% of peak; the rest is what the calibration learnt (small shapes, depthwise, packing). A stage's bound is
the bound of the ops that take most of its predicted time, with their share.
"""
from __future__ import annotations

import functools
from typing import Iterable, Mapping, Optional

import numpy as np
import pandas as pd
import torch.nn as nn

from ..core.errors import not_a_command
from ..core.models import create_model_at, fuse_model
from .breakdown import CATEGORIES, categorize, category_times
from .calibration import CalibratedMachine
from .counter import CostAnalysis
from .roofline import Roofline, _rho

__all__ = ["LatencyPredictor", "model_predictor", "predictor_summary", "predictor_stages", "unprobed_models", "BOUNDS"]

BOUNDS = ("compute", "cache", "memory", "overhead")


class LatencyPredictor:
    """Every op of one forward pass of `model` on `inputs` priced on a `CalibratedMachine`.

    Args mirror `CostAnalysis` (`fuse`: a BN-fused copy, the default; `stages`: a StageMap). The simple
    roofline's prediction on the same machine (`CalibratedMachine.roofline`) is the baseline column
    (`roofline_s` per op).
    """

    def __init__(self, model: nn.Module, inputs, machine: CalibratedMachine, *, fuse: bool = True, stages=None):
        self.machine = machine
        self.cost = CostAnalysis(model, inputs, fuse=fuse, stages=stages, kernels=True)

    def ops(self) -> pd.DataFrame:
        """`CostAnalysis.ops()` with the kind that priced each op, its context factor, its kernel (alone, times the
        context factor) / overhead / predicted seconds,
        its compute / memory / overhead times, its bound and bound_pct, and roofline_s (the simple roofline)."""
        return self._ops.copy()

    @functools.cached_property
    def _ops(self) -> pd.DataFrame:
        m, df = self.machine, self.cost.ops()
        kernels = df.pop("kernel")
        df["category"] = df["op"].map(categorize)
        df["kind"] = [k.kind if k.kind == "free" else m.kind_for(k) for k in kernels]
        df["context"] = [m.context_factor(k) for k in kernels]
        df["kernel_s"] = np.array([m.seconds(k) for k in kernels]) * df["context"].to_numpy()
        df["overhead_s"] = m.overhead_s
        df["predicted_s"] = df["kernel_s"] + df["overhead_s"]
        mem = df["mem_bytes"].astype(float)
        df["compute_s"] = 2.0 * df["macs"].astype(float) / m.peak_flops
        faults = np.array([k.fresh_bytes * m.fault_s_per_byte for k in kernels], dtype=float)   # fresh pages
        df["memory_s"] = np.where(mem > 0, mem / [m.copy_rate(b) if b > 0 else 1.0 for b in mem], 0.0) + faults
        fixed = m.dispatch_s + m.overhead_s
        times = np.stack([df["compute_s"], df["memory_s"], np.full(len(df), fixed)], axis=1)
        which = times.argmax(axis=1)
        memory = np.where(mem <= m.cache_bytes, "cache", "memory")
        df["bound"] = np.select([which == 0, which == 1], ["compute", memory], "overhead")
        df["bound_pct"] = 100.0 * times.max(axis=1) / df["predicted_s"]
        df["roofline_s"] = Roofline(self.cost.model, self.cost.inputs, m.roofline(),
                                    cost=self.cost).ops()["predicted_s"].to_numpy()
        return df

    def _summed(self, key: str, order: Iterable[str]) -> pd.DataFrame:
        df = self.ops().assign(n_ops=1)
        sums = ["n_ops", "macs", "mem_bytes", "kernel_s", "overhead_s", "predicted_s", "roofline_s"]
        g = df.groupby(key, sort=False)[sums].sum().reindex(list(order)).fillna(0)
        by_bound = df.pivot_table(index=key, columns="bound", values="predicted_s", aggfunc="sum", fill_value=0.0)
        by_bound = by_bound.reindex(index=g.index, columns=list(BOUNDS), fill_value=0.0).fillna(0.0)
        g["n_ops"] = g["n_ops"].astype(int)
        for b in BOUNDS:
            g[f"{b}_bound_ms"] = by_bound[b] * 1e3
        g["bound"] = by_bound.idxmax(axis=1).where(g["predicted_s"] > 0, "overhead")
        g["bound_pct"] = 100.0 * by_bound.max(axis=1) / g["predicted_s"].where(g["predicted_s"] > 0, np.nan)
        for c in [c for c in sums if c.endswith("_s")]:
            g[c[:-2] + "_ms"] = g.pop(c) * 1e3
        return g.reset_index()

    def by_stage(self) -> pd.DataFrame:
        """Per stage: n_ops, macs, mem_bytes, kernel / overhead / predicted ms, the ms of the ops each resource
        bounds (`compute_bound_ms`, ...), the stage's bound and bound_pct, and roofline_ms (the simple roofline)."""
        return self._summed("stage", self.cost.stage_map.names)

    def by_category(self, *, profiled: bool = False, repeats: int = 3) -> pd.DataFrame:
        """Per op category (`breakdown.CATEGORIES`): n_ops, macs, mem_bytes, predicted_ms and the rest of
        `by_stage()`'s columns; with `profiled`, also the category's time under torch.profiler on this model and
        input (`breakdown.category_times`, attention run as the model runs it) and ratio = profiled /
        predicted: which classes of kernel a whole-model miss sits in. The profiler books an op with its
        callees (a `linear` with its transpose), adds a little time per op, and sees no Python between ops."""
        df = self._summed("category", CATEGORIES)
        if profiled:
            times = category_times(self.cost.model, self.cost.inputs[0], repeats=repeats, fuse=False, fused_attn=None)
            df["profiled_ms"] = df["category"].map(lambda c: times.get(c, 0.0))
            df["ratio"] = df["profiled_ms"] / df["predicted_ms"].where(df["predicted_ms"] > 0)
        return df

    def predicted_ms(self) -> float:
        return float(self.ops()["predicted_s"].sum() * 1e3)


def model_predictor(name: str, machine: CalibratedMachine, *, batch_size: int = 16, resolution: Optional[int] = None,
                    device="cpu", seed: int = 0, built: Optional[tuple] = None) -> LatencyPredictor:
    """The predictor of model `name` (random weights, BN folded in place) at `resolution` (default: its
    pretrained config) on a seeded batch, as `roofline.model_roofline` builds it."""
    import torch

    model, (c, h, w) = built if built is not None else create_model_at(name, resolution, seed=seed,
                                                                       batch_size=batch_size, device=device)
    model = fuse_model(model, inplace=True).to(device)
    x = torch.randn(batch_size, c, h, w, generator=torch.Generator().manual_seed(seed)).to(device)
    return LatencyPredictor(model, x, machine, fuse=False)


def predictor_stages(predictors: Mapping[str, LatencyPredictor], latency: Optional[pd.DataFrame] = None
                     ) -> pd.DataFrame:
    """`by_stage()` of each named predictor (model, batch_size, resolution first), joined with a
    `roofline.measure_stage_latency` table when given."""
    frames = []
    for name, p in predictors.items():
        x = p.cost.inputs[0]
        frames.append(p.by_stage().assign(model=name, resolution=x.shape[-1], batch_size=x.shape[0]))
    out = pd.concat(frames, ignore_index=True)
    out = out[["model", "resolution", "batch_size"] + [c for c in out.columns
                                                      if c not in ("model", "resolution", "batch_size")]]
    if latency is not None:
        measured = latency[["model", "stage", "measured_ms", "spread_ms", "model_measured_ms"] +
                           [c for c in latency.columns if c in ("device_name", "threads", "torch")]]
        out = out.merge(measured, on=["model", "stage"], how="left", validate="one_to_one")
    return out


def predictor_summary(stages: pd.DataFrame) -> pd.DataFrame:
    """Per model: predicted and measured ms, error_pct = 100 (predicted / measured - 1), the simple roofline's
    prediction and error beside it, and the Spearman rho of predicted vs measured stage time; then a row
    "all": the median and worst |error| over models (both predictors) and the rho pooled over all stages."""
    rows = []
    for model, g in stages.groupby("model", sort=False):
        predicted, roofline, measured = g["predicted_ms"].sum(), g["roofline_ms"].sum(), g["model_measured_ms"].iloc[0]
        rows.append({"model": model, "stages": len(g), "predicted_ms": predicted, "measured_ms": measured,
                     "error_pct": 100 * (predicted / measured - 1), "roofline_ms": roofline,
                     "roofline_error_pct": 100 * (roofline / measured - 1),
                     "rho": _rho(g["predicted_ms"], g["measured_ms"])})
    out = pd.DataFrame(rows)
    pooled = {"model": "all", "stages": len(stages), "predicted_ms": out["predicted_ms"].sum(),
              "measured_ms": out["measured_ms"].sum(), "roofline_ms": out["roofline_ms"].sum(),
              "rho": _rho(stages["predicted_ms"], stages["measured_ms"]),
              "median_abs_error_pct": float(out["error_pct"].abs().median()),
              "max_abs_error_pct": float(out["error_pct"].abs().max()),
              "roofline_median_abs_error_pct": float(out["roofline_error_pct"].abs().median()),
              "roofline_max_abs_error_pct": float(out["roofline_error_pct"].abs().max())}
    return pd.concat([out, pd.DataFrame([pooled])], ignore_index=True)


def unprobed_models(stages: pd.DataFrame) -> list:
    """The models of a `predictor_stages` table with ops in a stage measured at exactly 0 ms: no probe mark fell
    in that stage, so its time went to the stage before (`latency.stage_latency` before it probed every module of
    a stage, for models that iterate a stage's container without calling it). Their whole-model times stand."""
    return sorted(stages.loc[(stages["measured_ms"] == 0) & (stages["n_ops"] > 0), "model"].unique())


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
