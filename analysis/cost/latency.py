"""Measured latency per stage (stem, stage 1..n, head) and of the whole model.

    >>> lat = stage_latency(model, x, repeats=20)  # tidy DataFrame: stage, latency_ms, spread_ms
    >>> lat.attrs["model_latency_ms"]              # whole forward, timed in the same loop
    >>> model_latency(model, x, repeats=20)        # float, ms

How: during a probed pass a global forward pre-hook marks the moment a module of another stage starts (any
module inside the stage, since a model may iterate a stage's container without calling it, as timm's relative-
position ViT, HRNet, Twins and CoaT do); a stage lasts until the next stage starts (the last one until the forward
returns), so ops
outside every stage module (a position-embedding add in the root) count towards the
stage that ran before them, exactly as in `CostAnalysis.by_stage`. On CUDA the marks are
CUDA events (no synchronisation inside the forward; one at the end of each pass); on CPU
`time.perf_counter`. Each figure is the median over `repeats` passes after `warmup`
untimed passes, under `torch.no_grad()` in eval mode. Each repeat also times one pass with
the probes switched off, interleaved with the probed one so that a busy machine slows both
alike; its median is `attrs["model_latency_ms"]`, and the stage medians add up to it up to
the spread and the probes' own cost.
"""
from __future__ import annotations

import sys
from typing import List, Optional

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.nn.modules.module import register_module_forward_pre_hook
from tqdm import tqdm

from ..core.errors import not_a_command
from ..core.models import leaves_model_as_found
from ..core.stages import StageMap, stage_map
from .timing import Clock, time_calls

__all__ = ["stage_latency", "model_latency"]


@leaves_model_as_found
@torch.no_grad()
def model_latency(model: nn.Module, x: torch.Tensor, *, repeats: int = 20, warmup: int = 5) -> float:
    """Median whole-forward latency in ms (synchronised on CUDA)."""
    return float(np.median(_model_times(model, x, repeats=repeats, warmup=warmup)))


def _model_times(model, x, *, repeats, warmup) -> List[float]:
    model.eval()
    return [1e3 * s for s in time_calls(lambda: model(x), device=x.device, warmup=warmup, calls=repeats)]


@leaves_model_as_found
@torch.no_grad()
def stage_latency(model: nn.Module, x: torch.Tensor, *, repeats: int = 20, warmup: int = 5,
                  stages: Optional[StageMap] = None, progress: bool = False) -> pd.DataFrame:
    """Median latency per stage in ms: columns stage, latency_ms, spread_ms (interquartile range).

    `attrs["model_latency_ms"]` holds the median of the interleaved whole-model passes;
    `progress` shows a bar of the passes on stderr.
    """
    smap = stages or stage_map(model)
    clock = Clock(x.device)
    marks: list = []
    stage_of = {mod: stage for name, mod in model.named_modules() if name and (stage := smap.stage_of(name))}

    def pre_hook(m, inp):
        stage = stage_of.get(m)
        if stage is not None and (not marks or marks[-1][0] != stage):
            marks.append((stage, clock.mark()))

    model.eval()
    per_stage, whole = {s: [] for s in smap.names}, []
    for i in tqdm(range(warmup + repeats), desc="latency", unit="pass", file=sys.stderr, disable=not progress,
                  leave=False):
        clock.sync()
        a = clock.mark()
        model(x)
        b = clock.mark()
        clock.sync()
        marks.clear()
        hook = register_module_forward_pre_hook(pre_hook)   # the probed pass only: the other pays nothing
        try:
            start = clock.mark()
            model(x)
            end = clock.mark()
        finally:
            hook.remove()
        clock.sync()
        if i < warmup:
            continue
        whole.append(1e3 * clock.seconds(a, b))
        run = {s: 0.0 for s in smap.names}
        bounds = [(smap.names[0], start)] + marks + [(None, end)]
        for (stage, a), (_, b) in zip(bounds[:-1], bounds[1:]):
            run[stage] += 1e3 * clock.seconds(a, b)
        for s in smap.names:
            per_stage[s].append(run[s])
    rows = []
    for s in smap.names:
        t = np.asarray(per_stage[s])
        q1, med, q3 = np.percentile(t, [25, 50, 75]) if len(t) else (np.nan,) * 3
        rows.append({"stage": s, "latency_ms": float(med), "spread_ms": float(q3 - q1)})
    df = pd.DataFrame(rows)
    df.attrs["model_latency_ms"] = float(np.median(whole)) if whole else float("nan")
    return df


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
