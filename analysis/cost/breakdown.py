"""Runtime breakdown by operator category (EfficientViT Fig. 2, SHViT Fig. 7).

    >>> df = runtime_breakdown(model, torch.randn(16, 3, 224, 224))   # one model, tidy
    >>> df = breakdown_table(["deit_tiny_patch16_224", "shvit_s4"])   # several, by name
    >>> fig = plot_breakdown(df)       # analysis.cost.plots: stacked bars, shares in %

How: `torch.profiler` records `repeats` forward passes of the BN-fused model (eval, no
grad) after `warmup` untimed ones. Every outermost aten op (what the model's Python code
called: `linear`, `layer_norm`, `reshape`, `scaled_dot_product_attention`, ...) is put in
one category, with its inclusive time: CPU time on CPU, the time of the CUDA kernels it
launched on CUDA. The same categories applied to `CostAnalysis` give each category's
macs, mem_bytes and arithmetic intensity, the evidence for the `memory_bound` mark.

Categories (`CATEGORIES`, in plotting order; memory-bound ones after the first):
conv/matmul (convolutions, linear, matmuls, attention kernels), reshape/copy (view,
reshape, permute, transpose, contiguous/clone/copy, cat, split, pad, roll, index,
slice), element-wise (add, mul, sub, div), normalisation (layer / group / batch norm),
softmax, activation (ReLU, GELU, Hardswish, sigmoid, ...), other (pooling, mean, ...).

CLI: `python -m analysis.breakdown --model deit_tiny_patch16_224 --model shvit_s4 --csv b.csv --figure b`.
"""
from __future__ import annotations

import copy
import sys
from collections import defaultdict
from typing import Iterable, Optional

import pandas as pd
import torch
import torch.nn as nn
from torch.profiler import ProfilerActivity, profile
from tqdm import tqdm

from ..core.errors import not_a_command
from ..core.models import create_model_at, fuse_model
from ..core.names import PAPER_MODELS
from ..core.runtime import MEASURED_ON, cpu_threads, with_measured_on
from .counter import CostAnalysis
from .timing import TIMING_ROUNDS

__all__ = ["CATEGORIES", "MEMORY_BOUND", "PAPER_MODELS", "MULTI_HEAD_MODELS", "memory_bound_rounds", "categorize",
           "category_times", "runtime_breakdown", "breakdown_table",
           "memory_bound_shares"]

MULTI_HEAD_MODELS = ("deit_tiny_patch16_224", "swin_tiny_patch4_window7_224")  # EfficientViT Fig. 2's profiles
CATEGORIES = ("conv/matmul", "reshape/copy", "element-wise", "normalisation", "softmax", "activation", "other")
MEMORY_BOUND = {"conv/matmul": False, "reshape/copy": True, "element-wise": True, "normalisation": True,
                "softmax": True, "activation": True, "other": False}

_OPS = {
    "conv/matmul": {"conv1d", "conv2d", "conv3d", "convolution", "_convolution", "mkldnn_convolution",
                    "conv_transpose2d", "linear", "addmm", "mm", "bmm", "baddbmm", "matmul", "einsum",
                    "scaled_dot_product_attention", "_scaled_dot_product_flash_attention",
                    "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_efficient_attention",
                    "_scaled_dot_product_cudnn_attention", "cudnn_convolution", "_slow_conv2d_forward"},
    "reshape/copy": {"view", "_unsafe_view", "reshape", "permute", "transpose", "t", "contiguous", "clone", "copy_",
                     "cat", "stack", "split", "split_with_sizes", "chunk", "unbind", "flatten", "unflatten",
                     "expand", "expand_as", "squeeze", "unsqueeze", "pad", "constant_pad_nd", "roll", "index",
                     "index_select", "gather", "slice", "select", "narrow", "as_strided", "view_as", "repeat",
                     "_reshape_alias", "alias", "detach", "to", "_to_copy", "pixel_shuffle", "movedim",
                     "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "fill_", "zero_"},
    "element-wise": {"add", "add_", "mul", "mul_", "sub", "sub_", "rsub", "div", "div_", "addcmul", "neg",
                     "sqrt", "rsqrt", "pow", "exp", "where", "masked_fill", "masked_fill_", "lerp"},
    "normalisation": {"layer_norm", "native_layer_norm", "group_norm", "native_group_norm", "batch_norm",
                      "native_batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
                      "instance_norm", "rms_norm", "_fused_rms_norm"},
    "softmax": {"softmax", "_softmax", "_safe_softmax", "log_softmax", "_log_softmax"},
    "activation": {"relu", "relu_", "clamp_min", "clamp_min_", "gelu", "gelu_", "hardswish", "hardswish_",
                   "hardsigmoid", "hardsigmoid_", "sigmoid", "sigmoid_", "silu", "silu_", "tanh", "tanh_",
                   "leaky_relu", "elu", "mish", "clamp", "hardtanh", "hardtanh_"},
}
_CATEGORY = {op: cat for cat, ops in _OPS.items() for op in ops}


def categorize(op: str) -> str:
    """Category of an aten op, given as `aten::linear`, `aten.linear` or `linear`."""
    name = op.replace("aten::", "").replace("aten.", "").split(".")[0]
    return _CATEGORY.get(name, "other")


def _profile_times(model: nn.Module, x: torch.Tensor, repeats: int, warmup: int) -> dict:
    cuda = x.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch.no_grad():
        for _ in range(warmup):
            model(x)
        if cuda:
            torch.cuda.synchronize()
        with profile(activities=activities) as prof:
            for _ in range(repeats):
                model(x)
            if cuda:
                torch.cuda.synchronize()
    times = defaultdict(float)
    for ev in prof.events():
        if ev.cpu_parent is None and ev.name.startswith("aten::"):  # outermost aten ops only
            times[categorize(ev.name)] += (ev.device_time_total if cuda else ev.cpu_time_total) / 1e3 / repeats
    return times


def _set_fused_attn(model: nn.Module, fused: bool) -> None:
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = fused


def _profiled_model(model: nn.Module, x: torch.Tensor, fuse: bool, fused_attn: Optional[bool]) -> nn.Module:
    """A copy of `model` as it is profiled: BN folded (`fuse`), attention path set, on `x`'s device."""
    net = fuse_model(model) if fuse else copy.deepcopy(model).eval()
    if fused_attn is not None:
        _set_fused_attn(net, fused_attn)
    return net.to(x.device)


def category_times(model: nn.Module, x: torch.Tensor, *, repeats: int = 3, warmup: int = 1, fuse: bool = True,
                   fused_attn: Optional[bool] = False) -> dict:
    """Milliseconds per forward pass of each category that ran (`runtime_breakdown`'s time_ms, without
    counting the model's macs and bytes)."""
    return dict(_profile_times(_profiled_model(model, x, fuse, fused_attn), x, repeats, warmup))


def runtime_breakdown(model: nn.Module, x: torch.Tensor, *, repeats: int = 3, warmup: int = 1,
                      fuse: bool = True, fused_attn: Optional[bool] = False) -> pd.DataFrame:
    """Share of runtime per category for one model on `x`'s device (see the module docstring).

    `fused_attn=False` (default) switches timm's attention to its explicit matmul-softmax-matmul
    path, as in the papers' measurements (inside a fused SDPA kernel softmax and the attention
    matrix's traffic are invisible and count as conv/matmul); None leaves each module as it is.
    Columns: category, memory_bound, time_ms (per forward), share (0..1), macs, mem_bytes, flops_per_byte.
    """
    net = _profiled_model(model, x, fuse, fused_attn)
    times = _profile_times(net, x, repeats, warmup)
    ops = CostAnalysis(net, x, fuse=False).ops()
    ops["category"] = ops["op"].map(categorize)
    cost = ops.groupby("category")[["macs", "mem_bytes"]].sum()
    total = sum(times.values()) or float("nan")
    rows = []
    for cat in CATEGORIES:
        macs = int(cost.loc[cat, "macs"]) if cat in cost.index else 0
        mem = int(cost.loc[cat, "mem_bytes"]) if cat in cost.index else 0
        rows.append({"category": cat, "memory_bound": MEMORY_BOUND[cat], "time_ms": times.get(cat, 0.0),
                     "share": times.get(cat, 0.0) / total, "macs": macs, "mem_bytes": mem,
                     "flops_per_byte": 2 * macs / mem if mem else float("nan")})
    return pd.DataFrame(rows)


def breakdown_table(names: Iterable[str] = PAPER_MODELS, *, device="cpu", batch_size: int = 16,
                    resolution: Optional[int] = None, repeats: int = 3, warmup: int = 1, seed: int = 0,
                    fused_attn: bool = False, progress: bool = True) -> pd.DataFrame:
    """`runtime_breakdown` of several models by name (random weights; each at its pretrained resolution
    unless `resolution` is given), stacked into one tidy table with model, device, batch_size, resolution."""
    frames = []
    for name in tqdm(list(names), desc="breakdown", disable=not progress, file=sys.stderr):
        model, (c, h, w) = create_model_at(name, resolution, seed=seed, batch_size=batch_size, device=device)
        x = torch.randn(batch_size, c, h, w, generator=torch.Generator().manual_seed(seed)).to(device)
        df = runtime_breakdown(model, x, repeats=repeats, warmup=warmup, fused_attn=fused_attn)
        df.insert(0, "resolution", h)
        df.insert(0, "batch_size", batch_size)
        df.insert(0, "device", str(torch.device(device).type))
        df.insert(0, "model", name)
        frames.append(with_measured_on(df, device))
    return pd.concat(frames, ignore_index=True)


def memory_bound_shares(df: pd.DataFrame) -> pd.DataFrame:
    """What the memory-bound categories take of each model's runtime and of its counted mem_bytes.

    `df`: a breakdown table of one device (`breakdown_table`). Returns one row per model (the index,
    in table order) with `runtime_share` and `mem_bytes_share` as fractions (0..1).
    """
    models = df["model"].unique()
    bound = df[df["memory_bound"].astype(bool)].groupby("model")[["share", "mem_bytes"]].sum()
    bound = bound.reindex(models, fill_value=0)
    total_bytes = df.groupby("model")["mem_bytes"].sum().reindex(models)
    return pd.DataFrame({"runtime_share": bound["share"], "mem_bytes_share": bound["mem_bytes"] / total_bytes})


def memory_bound_rounds(rounds: int = TIMING_ROUNDS, *, models=MULTI_HEAD_MODELS + ("efficientvit_m4",),
                        batch_size: int = 4) -> pd.DataFrame:
    """Share of CPU runtime (one thread, torch.profiler) in memory-bound operator categories
    (`cost.breakdown`), per model and interleaved round: the data of the `effvit_fig2_memory_bound` claim."""
    frames = []
    with cpu_threads(1):
        for r in range(rounds):
            shares = memory_bound_shares(breakdown_table(models, batch_size=batch_size, repeats=1, progress=False))
            frames.append(with_measured_on(shares.rename_axis("model").reset_index().assign(round=r, batch_size=batch_size)))
    return pd.concat(frames, ignore_index=True)[["round", "model", "runtime_share", "mem_bytes_share", "batch_size",
                                                 *MEASURED_ON]]


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
