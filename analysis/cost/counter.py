"""Cost of a forward pass per aten op, per module and per stage: macs, memory traffic, intensity.

    >>> ca = CostAnalysis(timm.create_model("shvit_s1"), torch.randn(1, 3, 224, 224))
    >>> ca.total()                     # macs of the BN-fused model, as the papers report them
    241...
    >>> ca.by_stage()                  # tidy DataFrame: stem, stage1..3, head
    >>> ca.by_module(), ca.by_operator(), ca.ops()

CLI: `python -m analysis.cost --model shvit_s4 --json` (see `--help`); by name: `analysis.cost.model_cost`.

What is counted (the model; one record per aten op that the forward dispatches):

macs      multiply-accumulates in fvcore's convention (what both papers and fvcore call
          FLOPs): conv / linear / mm / bmm / matmul / einsum count their products;
          scaled dot-product attention counts B*H*Lq*Lk*(E+Ev) from the call's shapes,
          whichever kernel torch picks on this host and device (fvcore silently drops it);
          norms, upsampling and global average pooling count as fvcore does (BN in eval: 1 or
          2 per element; LN/GN: 4 or 5 per element); element-wise ops, softmax and activations
          count 0, as in fvcore. Every op is counted by a rule, known to count 0, or reported:
          `unsupported_ops()` lists the rest, never a silent zero (`analysis.cost.op_rules`).
mem_bytes compulsory traffic of each op as if it were one kernel: every distinct tensor
          input (activations, weights, biases, masks) read once and every output written
          once, in the tensor's dtype. A broadcast (stride-0) input counts only the
          elements it really holds. View and metadata-only ops (view, reshape without copy,
          permute, transpose, expand, split, detach, ...) cost 0; the copies that
          `reshape` / `contiguous` make of non-contiguous tensors are counted (a read and a
          write). In-place ops read and write their target; `copy_` / `fill_` / `zero_`
          only write it. Attention is one kernel whichever backend runs: q, k, v (and mask)
          read and the attention output written; kernel-internal statistics (logsumexp) and
          the math backend's intermediate attention matrix are not counted, so the numbers
          are the same on every host. (A model that computes attention with explicit
          matmul + softmax, e.g. timm's `fused_attn=False`, is counted op by op.)
          Caches and fusion across ops are ignored on purpose: this is the per-op traffic
          that makes reshapes, copies, norms and element-wise ops memory-bound.
activations elements written by non-view ops.
flops_per_byte arithmetic intensity, 2 * macs / mem_bytes.

Convention for the papers' numbers: by default the model is analysed after folding
BatchNorm into the neighbouring conv / linear (`timm.utils.model.reparameterize_model`
on a copy; the user's model is never changed), as the papers' speed tests and their
MAC counts do: fvcore on the fused SHViT-S1..S4 gives 241.4 / 365.5 / 600.7 / 986.4 M
(paper 241 / 366 / 601 / 986); unfused, BN adds ~1%. BatchNorms that a model cannot fold
stay and are counted as fvcore counts them. Pass `fuse=False` to analyse the model as given.

Counting without arithmetic: `CostAnalysis(..., meta=True)` counts on torch's `meta` device (shapes,
strides and dtypes, no storage): a meta copy of the model (its tensors replaced, no weights copied) runs on
meta inputs, and a model built on meta (`with torch.device("meta"): timm.create_model(...)`, or
`python -m analysis.cost --meta`) is always counted there, so a model that does not fit in memory is
counted in seconds. Every total equals a real run's (tested on SHViT, DeiT, Swin, EfficientViT-M, LeViT,
ConvNeXt). torch's meta kernels are mostly Python, so the counter remembers each op's output layout by its
arguments' shapes (`_MetaShapes`), which makes a meta count faster than a real one (`benchmarks/count_meta.py`
prints both against fvcore, in one run). The default stays a real run: `CostAnalysis.model` is then the model
itself (latency and the roofline time it), and a real run also counts the models whose forward reads tensor
values (data-dependent shapes), which meta cannot run (a `UserError` says so).
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any, Callable, List, Mapping, Optional, Sequence

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from ..core.errors import UserError, not_a_command
from ..core.models import fuse_model, leaves_model_as_found
from .kernels import Kernel, describe, describe_attention
from .op_rules import (UNSUPPORTED, _tensors, classify, is_free, macs_rules, op_macs, op_mem_bytes, sdpa_macs,
                       sdpa_mem_bytes)
from ..core.stages import StageMap, stage_map

__all__ = ["CostAnalysis", "OpRecord", "meta_copy"]

# ---------------------------------------------------------------------------------------------
# the counter
# ---------------------------------------------------------------------------------------------

@dataclass
class OpRecord:
    """One aten op call (or one attention call): where it ran, what it cost, how it was counted."""

    index: int
    module: str
    op: str
    macs: int
    bytes_read: int
    bytes_written: int
    activations: int
    out_shape: tuple
    counted_as: str
    kernel: Optional[Kernel] = None   # with CostAnalysis(kernels=True): what the latency predictor needs


class _Running:
    """Which module runs now: forward pre-hooks on every module push its name, forward hooks pop it and
    record its output shape (torch's ModuleTracker also hooks the backward pass, which a count never runs)."""

    def __init__(self, model: nn.Module):
        self.names = {m: n for n, m in model.named_modules()}
        self.stack, self.shapes, self.handles = [""], [], []

    def __enter__(self):
        for m in self.names:
            self.handles += [m.register_forward_pre_hook(self._enter),
                             m.register_forward_hook(self._exit, always_call=True)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self.handles:
            h.remove()

    def _enter(self, module, args) -> None:
        self.stack.append(self.names[module])

    def _exit(self, module, args, out) -> None:
        self.stack.pop()
        self.shapes.append((self.names[module], _first_shape(out)))


def _signature(x):
    """A hashable stand-in for an op argument: a tensor by its metadata; TypeError for one that has none."""
    if isinstance(x, torch.Tensor):
        return (x.shape, x.stride(), x.storage_offset(), x.dtype)
    if isinstance(x, (tuple, list)):
        return tuple(_signature(v) for v in x)
    if isinstance(x, dict):
        return tuple((k, _signature(v)) for k, v in x.items())
    hash(x)
    return x


class _MetaShapes:
    """Runs ops on meta tensors, remembering the outputs' shapes, strides and dtypes by the op and its arguments'
    metadata: torch's meta kernels are mostly Python, and a model repeats the same op on the same shapes block
    after block. Only ops that make new tensors (no view, no in-place, no output aliasing an input) are
    remembered; a new empty meta tensor of the same layout is exactly what the kernel would return."""

    def __init__(self):
        self.seen = {}

    def call(self, func, args, kwargs):
        schema = func._schema
        if func.is_view or schema.is_mutable or any(r.alias_info is not None for r in schema.returns):
            return func(*args, **kwargs)
        try:
            key = (func, _signature(args), _signature(kwargs))
        except TypeError:  # an argument with no hash: not remembered
            return func(*args, **kwargs)
        layout = self.seen.get(key)
        if layout is not None:
            return layout()
        out = func(*args, **kwargs)
        outs = out if isinstance(out, tuple) else (out,)
        if all(isinstance(t, torch.Tensor) for t in outs):
            specs = [(t.shape, t.stride(), t.dtype) for t in outs]
            fresh = [functools.partial(torch.empty_strided, shape, stride, dtype=dtype, device="meta")
                     for shape, stride, dtype in specs]
            self.seen[key] = (lambda: tuple(f() for f in fresh)) if isinstance(out, tuple) else fresh[0]
        return out


class _CostMode(TorchDispatchMode):
    """Dispatch mode that records every aten op with the innermost module running it; `rules`
    (`op_rules.macs_rules`) are this analysis's own macs rules, consulted before the registered ones; `meta`:
    the inputs are on the meta device (`_MetaShapes` runs the ops)."""

    def __init__(self, running: _Running, model: nn.Module, rules: Optional[dict] = None, meta: bool = False,
                 kernels: bool = False):
        super().__init__()
        self.running, self.records, self.kernels = running, [], kernels
        self.shapes = _MetaShapes() if meta else None
        self.rules = rules or {}
        self.modules = dict(model.named_modules())
        self.paused = False

    def record(self, op: str, macs_of, bytes_of, out, counted_as: str, kernel_of) -> None:
        """Append one record; `macs_of(module)`, `bytes_of()` and `kernel_of(mem_bytes)` give its macs,
        (read, written) and, when asked for, its `kernels.Kernel`."""
        outs = _tensors(out)
        module = self.running.stack[-1]
        read, written = bytes_of()
        self.records.append(OpRecord(len(self.records), module, op, macs_of(self.modules.get(module)), read, written,
                                     sum(t.numel() for t in outs), tuple(outs[0].shape) if outs else (),
                                     counted_as, kernel_of(read + written) if self.kernels else None))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = self.shapes.call(func, args, kwargs) if self.shapes is not None else func(*args, **kwargs)
        if not self.paused:
            self.record(str(func.overloadpacket), lambda module: op_macs(func, args, kwargs, out, module, self.rules),
                        lambda: op_mem_bytes(func, args, kwargs, out), () if is_free(func) else out,
                        classify(func, self.rules), lambda mem: describe(func, args, kwargs, out, mem))
        return out


class _AttentionMode(TorchFunctionMode):
    """Costs every `F.scaled_dot_product_attention` call from its arguments' shapes, as one kernel,
    whichever backend torch picks (math, flash, memory-efficient, cuDNN, ...): the aten ops the
    call dispatches to are run but not recorded, and its output (same values) is handed on in
    the fused kernels' memory layout, so a later `reshape` copies, or not, on every host alike."""

    def __init__(self, counter: _CostMode):
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention or self.counter.paused:
            return func(*args, **kwargs)
        self.counter.paused = True
        try:
            out = func(*args, **kwargs)
            if out.dim() == 4:  # the fused kernels' layout ([B, L, H, Ev] in memory), so the ops after
                out = out.transpose(1, 2).contiguous().transpose(1, 2)  # it copy alike on every backend
        finally:
            self.counter.paused = False
        self.counter.record("aten.scaled_dot_product_attention", lambda module: sdpa_macs(*args, **kwargs),
                            lambda: sdpa_mem_bytes(args, kwargs, out), out, "counted",
                            lambda mem: describe_attention(*args, **kwargs))
        return out


def _intensity(macs, mem_bytes):
    return (2 * macs / mem_bytes) if mem_bytes else float("nan")


_SUMS = ["macs", "mem_bytes", "bytes_read", "bytes_written", "activations"]


class CostAnalysis:
    """fvcore-like cost analysis of one forward pass of `model` on `inputs`.

    Args:
        model: any nn.Module; timm / shvit models get a stage map automatically.
        inputs: a tensor or a tuple of positional inputs.
        fuse: analyse a BN-fused copy (default; the papers' convention), else the model as given.
        stages: a `StageMap` overriding `analysis.core.stages.stage_map(model)`.
        rules: `{op: rule}` macs rules for this analysis only (ops and rules as `op_rules.register_macs`
            takes them), before the registered ones: an op gets a rule, or another one, without touching
            the registry (torch's `FlopCounterMode(custom_mapping=...)`, fvcore's `set_op_handle`).
        meta: count on the meta device, without arithmetic (see the module docstring); a model already
            on meta is counted there whatever `meta` says.
        kernels: also describe each op as the latency predictor sees it (`ops()["kernel"]`: a `kernels.Kernel`).

    The forward runs once, lazily, under `torch.no_grad()` in eval mode. `total()` returns
    ints; `ops()`, `by_operator()`, `by_module()` and `by_stage()` return tidy DataFrames.
    """

    def __init__(self, model: nn.Module, inputs, *, fuse: bool = True, stages: Optional[StageMap] = None,
                 rules: Optional[Mapping[Any, Callable[..., int]]] = None, meta: bool = False,
                 kernels: bool = False):
        self.kernels = kernels
        self.rules = macs_rules(rules)  # first: an unknown op name fails before the model is copied
        self.meta = meta or _on_meta(model)
        if self.meta:
            model = model if _on_meta(model) else meta_copy(model)
            with torch.device("meta"):  # fusing builds new modules: on meta too
                model = fuse_model(model, inplace=True) if fuse else model
        else:
            model = fuse_model(model) if fuse else model
        self.model = model
        self.inputs = inputs if isinstance(inputs, tuple) else (inputs,)
        if self.meta:
            self.inputs = tuple(x.to("meta") if isinstance(x, torch.Tensor) else x for x in self.inputs)
        self.fused = fuse
        self.stage_map = stages or stage_map(self.model)

    # -- running -------------------------------------------------------------------------------
    @functools.cached_property
    def _run(self) -> dict:
        if not self.meta:
            return _count(self.model, self.inputs, self.rules, self.kernels)
        try:
            return _count(self.model, self.inputs, self.rules, self.kernels)
        except (RuntimeError, NotImplementedError) as e:  # an op that needs values: no meta kernel can say
            raise UserError(f"{type(self.model).__name__} cannot be counted on the meta device, its forward reads "
                            f"tensor values ({str(e).splitlines()[0]}); count it on real tensors") from None

    # -- tables --------------------------------------------------------------------------------
    def ops(self) -> pd.DataFrame:
        """One row per aten op call, in execution order, with its module and stage."""
        return self._ops.copy()

    @functools.cached_property
    def _ops(self) -> pd.DataFrame:
        df = pd.DataFrame([r.__dict__ for r in self._run["records"]],
                          columns=[f for f in OpRecord.__dataclass_fields__])
        df["mem_bytes"] = df["bytes_read"] + df["bytes_written"]
        df["stage"] = self._assign_stages(df["module"])
        return df[["index", "stage", "module", "op", "macs", "mem_bytes", "bytes_read", "bytes_written",
                   "activations", "out_shape", "counted_as"] + (["kernel"] if self.kernels else [])]

    def unsupported_ops(self) -> dict:
        """{op: calls} of the ops no rule counts (their macs are missing from every total), as
        fvcore's `unsupported_ops()`; empty when every op was counted or is known to count 0."""
        ops = self.ops()
        return ops.loc[ops["counted_as"] == UNSUPPORTED, "op"].value_counts().sort_index().to_dict()

    def _assign_stages(self, modules: Sequence[str]) -> List[str]:
        """Stage of every op; ops outside every stage inherit the stage that ran before them."""
        current, out = self.stage_map.names[0], []
        for m in modules:
            current = self.stage_map.stage_of(m) or current
            out.append(current)
        return out

    def total(self, metric: str = "macs") -> int:
        """Whole-model total of `macs`, `mem_bytes`, `bytes_read`, `bytes_written`, `activations` or `params`."""
        if metric == "params":
            return sum(p.numel() for p in self.model.parameters())
        if metric not in _SUMS:
            raise UserError(f"unknown metric {metric!r}; choose from {', '.join(_SUMS + ['params'])}")
        return int(self.ops()[metric].sum())

    def by_operator(self) -> pd.DataFrame:
        """Per aten operator: calls, macs, mem_bytes, activations, intensity; sorted by mem_bytes."""
        df = self.ops()
        g = df.groupby("op", sort=False).agg(calls=("op", "size"), **{c: (c, "sum") for c in _SUMS})
        g["flops_per_byte"] = [_intensity(a, b) for a, b in zip(g["macs"], g["mem_bytes"])]
        return g.reset_index().sort_values(["mem_bytes", "op"], ascending=[False, True], ignore_index=True)

    def by_module(self) -> pd.DataFrame:
        """Per module (inclusive of its children, like fvcore's by_module; "" is the whole model)."""
        df = self.ops()
        own = df.groupby("module", sort=False)[_SUMS].sum()
        last_shape = dict(self._run["shapes"])  # last call wins
        rows = []
        for name, mod in self.model.named_modules():
            prefix = name + "."
            mask = [m == name or m.startswith(prefix) or name == "" for m in own.index]
            sums = own[mask].sum() if any(mask) else pd.Series(0, index=_SUMS)
            shape = last_shape.get(name)
            tokens, chans = self.stage_map.tokens_channels(shape) if shape else (None, None)
            rows.append({"module": name, "type": type(mod).__name__, "depth": name.count(".") + bool(name),
                         "stage": self.stage_map.stage_of(name) if name else "",
                         "params": sum(p.numel() for p in mod.parameters()),
                         **{c: int(sums[c]) for c in _SUMS},
                         "flops_per_byte": _intensity(sums["macs"], sums["mem_bytes"]),
                         "out_shape": tuple(shape) if shape else None, "tokens": tokens, "channels": chans})
        return pd.DataFrame(rows)

    def by_stage(self) -> pd.DataFrame:
        """Per stage (stem, stage1..n, head): the table behind SHViT Fig. 2 / Fig. 7."""
        df = self.ops()
        sums = df.groupby("stage")[_SUMS].sum()
        params = {s: 0 for s in self.stage_map.names}
        for pname, p in self.model.named_parameters():
            params[self.stage_map.stage_of(pname) or self.stage_map.names[0]] += p.numel()
        shapes = self._run["shapes"]
        rows = []
        for stage, modules in self.stage_map.stages:
            outs = [s for n, s in shapes if n in modules and s]
            tokens, chans = self.stage_map.tokens_channels(outs[-1]) if outs else (None, None)
            s = sums.loc[stage] if stage in sums.index else pd.Series(0, index=_SUMS)
            rows.append({"stage": stage, "params": params[stage], **{c: int(s[c]) for c in _SUMS},
                         "flops_per_byte": _intensity(s["macs"], s["mem_bytes"]),
                         "tokens": tokens, "channels": chans})
        return pd.DataFrame(rows)


def _on_meta(model: nn.Module) -> bool:
    return any(t.is_meta for t in (*model.parameters(), *model.buffers()))


def meta_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters, buffers and tensor attributes are empty tensors on the meta device
    (same shapes, strides, dtypes and requires_grad): no weight is copied, so it costs no memory."""
    memo = {}
    for m in model.modules():
        for name, t in (*m._parameters.items(), *m._buffers.items(), *vars(m).items()):
            if isinstance(t, torch.Tensor) and id(t) not in memo:
                empty = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
                memo[id(t)] = nn.Parameter(empty, t.requires_grad) if isinstance(t, nn.Parameter) else empty
    return copy.deepcopy(model, memo)


def _first_shape(out) -> Optional[tuple]:
    tensors = [out] if isinstance(out, torch.Tensor) else _tensors(out)
    return tuple(tensors[0].shape) if tensors else None


@leaves_model_as_found
def _count(model: nn.Module, inputs: tuple, rules, kernels: bool = False) -> dict:
    """One forward pass of `model` in eval mode under the counter: every op's record, every module's output shape."""
    model.eval()
    with _Running(model) as running, torch.no_grad():
        mode = _CostMode(running, model, rules, meta=any(x.is_meta for x in inputs if isinstance(x, torch.Tensor)),
                         kernels=kernels)
        with mode, _AttentionMode(mode):
            model(*inputs)
    return {"records": mode.records, "shapes": running.shapes}


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
