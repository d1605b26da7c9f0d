"""Each op of a model timed inside the model and alone, beside the calibrated predictor's price for it.

    >>> t = OpContext(model, x, machine)     # a CalibratedMachine (analysis.cost.calibration)
    >>> t.by_op()          # per op: predicted_ms, alone_ms, in_model_ms
    >>> t.by_category()    # the same summed per op category, with alone / predicted and in_model / alone

The calibrated predictor prices an op at the rate its kind ran at alone, in a microbenchmark repeated on the same
tensors. A whole-model miss can come from two places, and this tells them apart, op by op:

- the rate model: `alone_ms` against `predicted_ms`, the op's own call repeated alone (the median of at least 3,
  after a warm-up, as the calibration times a microbenchmark) against the rate interpolated for its kind and shape;
- the model's context: `in_model_ms` against `alone_ms`, the same call timed where the model makes it (the fastest
  of `passes` forward passes), after the ops before it left the caches as they leave them, its weights and
  output buffer cold, against the same call repeated with everything it touches hot.

A shape cannot say everything: `subnormal_pct` is the share of an op's floating-point inputs that are subnormal
(nonzero, below the dtype's smallest normal number), which many CPUs compute far slower (random weights can
make attention probabilities that small); `torch.set_flush_denormal(True)` flushes them to zero.

What remains of a model's measured time beyond the sum of `in_model_ms` is the time between ops (Python, module
calls, dispatch), which the predictor's per-op overhead stands for. Ops are timed at the aten level, as a
`TorchDispatchMode` sees them; a fused attention call is one op, priced as `kernels.describe_attention` prices it.
An in-place op is timed alone on copies of its inputs, so that timing it does not change the pass. Everything
runs on the CPU, with one pass of the model per `passes` and one more to time each op alone.
"""
from __future__ import annotations

import time
from typing import List, Optional

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from ..core.errors import not_a_command
from .breakdown import CATEGORIES, categorize
from .calibration import CalibratedMachine, median_seconds
from .kernels import describe, describe_attention
from .op_rules import _tensors, is_free, op_mem_bytes

__all__ = ["OpContext", "with_ratios"]


def _copy(x):
    """A copy of `x` (tensors in nested lists and tuples) with the same sizes, strides and offset: an expanded
    (stride 0) input stays expanded."""
    if isinstance(x, torch.Tensor):
        t = torch.empty(0, dtype=x.dtype, device=x.device)
        return t.set_(x.untyped_storage().clone(), x.storage_offset(), x.shape, x.stride())
    if isinstance(x, (list, tuple)):
        return type(x)(_copy(v) for v in x)
    return x


def _subnormal_pct(args) -> float:
    """% of the elements of the floating-point tensors in `args` that are subnormal."""
    floats = [t for t in _tensors(args) if t.is_floating_point() and t.numel()]
    total = sum(t.numel() for t in floats)
    tiny = [((t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)).sum().item() for t in floats]
    return 100.0 * sum(tiny) / total if total else 0.0


def with_ratios(sums: pd.DataFrame) -> pd.DataFrame:
    """`sums` (predicted_ms, alone_ms, in_model_ms summed per row: a category, or a category pooled over models)
    with rate_ratio = alone / predicted and context_ratio = in_model / alone."""
    return sums.assign(rate_ratio=sums["alone_ms"] / sums["predicted_ms"],
                       context_ratio=sums["in_model_ms"] / sums["alone_ms"])


class _TimeOps(TorchDispatchMode):
    """Times every op that moves bytes where the model calls it; with `machine`, also prices it and times it alone
    right after, on the same inputs (copies for an in-place op)."""

    def __init__(self, machine: Optional[CalibratedMachine] = None):
        super().__init__()
        self.machine, self.rows = machine, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if is_free(func):
            return func(*args, **kwargs)
        start = time.perf_counter()
        out = func(*args, **kwargs)
        row = {"in_model_s": time.perf_counter() - start}
        if self.machine is not None:
            name = f"aten.{func.overloadpacket.__name__}"
            if "scaled_dot_product" in name:   # a fused attention kernel, priced as the cost counter prices it
                kernel = describe_attention(*args[:3])
            else:
                read, written = op_mem_bytes(func, args, kwargs, out)
                kernel = describe(func, args, kwargs, out, read + written)
            call_args, call_kwargs = (_copy(args), _copy(kwargs)) if func._schema.is_mutable else (args, kwargs)
            call = lambda: func(*call_args, **call_kwargs)
            call()   # its warm-up, as `_kernels_of` warms a microbenchmark up
            row.update(op=name, category=categorize(name), kind=kernel.kind if kernel.kind == "free"
                       else self.machine.kind_for(kernel), predicted_s=self.machine.seconds(kernel),
                       alone_s=median_seconds(call, "cpu"), subnormal_pct=_subnormal_pct(args))
        self.rows.append(row)
        return out


class OpContext:
    """Every op of one forward pass of `model` (eval, no grad, as given: fold BN first to match the predictor) on
    the CPU input `x`, timed inside the model (the fastest of `passes` passes, after `warmup`) and alone, and
    priced on `machine`. See the module docstring."""

    def __init__(self, model: nn.Module, x: torch.Tensor, machine: CalibratedMachine, *, passes: int = 5,
                 warmup: int = 2):
        self.model, self.x, self.machine = model.eval(), x, machine
        self.passes, self.warmup = passes, warmup
        self._rows: Optional[pd.DataFrame] = None

    def _run(self) -> pd.DataFrame:
        with torch.no_grad():
            for _ in range(self.warmup):
                self.model(self.x)
            in_model: List[np.ndarray] = []
            for _ in range(self.passes):
                with _TimeOps() as mode:
                    self.model(self.x)
                in_model.append(np.array([r["in_model_s"] for r in mode.rows]))
            with _TimeOps(self.machine) as mode:
                self.model(self.x)
        df = pd.DataFrame(mode.rows).drop(columns="in_model_s")
        if any(len(t) != len(df) for t in in_model):
            raise RuntimeError("the model dispatched different ops on different passes: its ops cannot be matched")
        df["in_model_s"] = np.min(in_model, axis=0)
        for c in ("predicted", "alone", "in_model"):
            df[f"{c}_ms"] = df.pop(f"{c}_s") * 1e3
        return df

    def by_op(self) -> pd.DataFrame:
        """One row per op that moves bytes, in call order: op, category, the calibrated kind that priced it,
        subnormal_pct of its inputs, predicted_ms (its kernel alone: without the per-op overhead and the machine's
        context factor), alone_ms,
        in_model_ms."""
        if self._rows is None:
            self._rows = self._run()
        return self._rows.copy()

    def by_category(self) -> pd.DataFrame:
        """Per op category that ran (`breakdown.CATEGORIES` order): n_ops, predicted_ms, alone_ms, in_model_ms,
        subnormal_ms (the in-model ms of its ops with at least 1% subnormal inputs), rate_ratio = alone /
        predicted (the rate model's miss) and context_ratio = in_model / alone (the model's context's)."""
        df = self.by_op().assign(n_ops=1)
        df["subnormal_ms"] = df["in_model_ms"].where(df["subnormal_pct"] >= 1.0, 0.0)
        g = df.groupby("category", sort=False)[["n_ops", "predicted_ms", "alone_ms", "in_model_ms",
                                                 "subnormal_ms"]].sum()
        return with_ratios(g.reindex([c for c in CATEGORIES if c in g.index])).reset_index()


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
