"""What kind of kernel an aten op is, described by the few numbers its speed depends on.

    >>> describe(torch.ops.aten.convolution.default, args, kwargs, out, mem_bytes)
    Kernel(kind='conv', features=(4.0, 6.0, 6.0, 0.0, 3.17, 1.0, 9.6), work=...)

The calibrated latency predictor (`analysis.cost.predictor`) times microbenchmarks of every kind on a
machine and interpolates between them; this module is the one place that says which kind an op is and
which features describe it, so that a microbenchmark and a model's op are described alike.

Kinds and their features (sizes as log2, so that interpolation works on ratios):
gemm        mm / addmm / bmm / baddbmm: log2 (batch, M, N, K), whether N and K are multiples of 8;
            work = 2 * batch * M * N * K flops.
conv        a dense or grouped convolution: log2 (output pixels of the batch, Cin per group, Cout per
            group, groups, kernel area, stride), whether the input is channels-last, whether the channels
            per group are multiples of 8; work = 2 * macs.
dwconv      a depthwise convolution (groups = Cin > 1): log2 (output pixels of the batch, C, channel
            multiplier, kernel area, stride), channels-last, whether C is a multiple of 8; work = 2 * macs.
attention   a fused scaled-dot-product attention: log2 (batch * heads, Lq, Lk, head dim); work = its flops.
aten.<op>   anything that moves bytes (element-wise, activations, norms, softmax, copies, pooling,
            reductions): the op's own name (in-place variants are kinds of their own: no output to
            allocate); features log2 (bytes moved), log2 of its first input's contiguous inner run (at most
            `MAX_RUN` elements: 1 for a transposed input, the channels for a window partition), whether its
            output is contiguous, whether an input is broadcast, `fresh` (below), for softmax and layer
            norm log2 of the row they normalise (`ROW_OPS`), and for pooling log2 of the window area and
            stride; work = bytes moved.
aten.convolution  a transposed convolution, described as a bytes-moving op (so that machines calibrated
            before it was timed price it as they did, as a copy) plus log2 of its flops per byte moved: its
            rate in bytes/s falls as its arithmetic intensity rises, which is what the calibration learns.
`fresh`, in every kind: whether the output is large enough (`FRESH_BYTES`) for malloc to map it afresh on
every call, on the CPU, which costs a page fault per 4 KiB page, where malloc maps blocks at all (machines
calibrated before held-out set 4: `allocator.pin_malloc` no longer lets it). The kernel carries those bytes too
(`fresh_bytes`): the predictor prices them apart, at the machine's page-fault rate, since faulting pages in
costs time per byte of output, not a share of the kernel's work. Only machine descriptions calibrated before
held-out set 4 also took the flag as a feature of the rate (`CalibratedMachine.fresh_offset`).
free        an op that moves no bytes (views, metadata): only the per-op cost of dispatching it.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch

from .allocator import MMAP_THRESHOLD

from ..core.errors import not_a_command
from .op_rules import _tensors

__all__ = ["Kernel", "describe", "describe_attention", "GEMM_OPS", "POOLING_OPS", "ROW_OPS", "FRESH_BYTES", "MAX_RUN"]

FRESH_BYTES = MMAP_THRESHOLD   # outputs this large get fresh pages on every call (`allocator.pin_malloc`)
MAX_RUN = 1024   # a contiguous run this long copies at memcpy speed: longer ones are alike
GEMM_OPS = {"aten.mm", "aten.addmm", "aten.bmm", "aten.baddbmm"}
ROW_OPS = {"aten._softmax", "aten._safe_softmax", "aten._log_softmax", "aten.native_layer_norm"}
POOLING_OPS = {"aten.max_pool2d_with_indices", "aten.max_pool2d", "aten.avg_pool2d"}


class Kernel(NamedTuple):
    """An op as the predictor sees it: its kind, the features its speed depends on, and its work (flops for
    gemm, conv, dwconv and attention; bytes for the rest; 0 for free ops)."""

    kind: str
    features: tuple
    work: float
    fresh_bytes: float = 0.0   # output bytes mapped afresh (`fresh`): priced apart, at the page-fault rate


def _log2(x) -> float:
    return math.log2(max(float(x), 1.0))


def _aligned(*channels: int) -> float:
    """1.0 when every channel count is a multiple of 8 (a full SIMD register of fp32): kernels vectorise better."""
    return float(all(c % 8 == 0 for c in channels))


def _fresh_bytes(out, op: str = "") -> float:
    """The bytes of the op's output when it is at least `FRESH_BYTES` on the CPU and not written in place, else 0:
    glibc's malloc maps such a block afresh on every call, and the first touch of each of its pages faults."""
    t = next(iter(_tensors(out)), None)
    size = 0 if t is None else t.numel() * t.element_size()
    return float(size) if size >= FRESH_BYTES and t.device.type == "cpu" and not op.endswith("_") else 0.0


def _gemm(op: str, args, out) -> Kernel:
    a, b = (args[1], args[2]) if op in ("aten.addmm", "aten.baddbmm") else (args[0], args[1])
    batch = a.shape[0] if a.dim() == 3 else 1
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    fresh = _fresh_bytes(out)
    return Kernel("gemm", (_log2(batch), _log2(m), _log2(n), _log2(k), _aligned(n, k), float(fresh > 0)),
                  2.0 * batch * m * n * k, fresh)


def _conv(args, out: torch.Tensor) -> Kernel:
    x, w, stride, groups = args[0], args[1], args[3], args[8]
    cin, cout, cin_g = x.shape[1], w.shape[0], w.shape[1]
    area = math.prod(w.shape[2:])
    rows = out.shape[0] * math.prod(out.shape[2:])   # output pixels of the whole batch: a GEMM's M
    work = 2.0 * out.numel() * cin_g * area
    s = _log2(max(stride))
    last = float(x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last))
    fresh = _fresh_bytes(out)
    if groups == cin and groups > 1:
        return Kernel("dwconv", (_log2(rows), _log2(cin), _log2(cout // groups), _log2(area), s, last,
                                 _aligned(cin), float(fresh > 0)), work, fresh)
    return Kernel("conv", (_log2(rows), _log2(cin_g), _log2(cout // groups), _log2(groups), _log2(area), s, last,
                           _aligned(cin_g, cout // groups), float(fresh > 0)), work, fresh)


def _inner_run(t: torch.Tensor) -> int:
    """Elements of `t` that lie next to each other in memory in its logical (row-major) order: the product of
    its trailing sizes while they are laid out contiguously. All of them for a contiguous tensor; 1 for a
    transposed one; a window partition's channels."""
    run, expected = 1, 1
    for size, stride in zip(reversed(t.shape), reversed(t.stride())):
        if size == 1:
            continue
        if stride != expected:
            break
        run, expected = run * size, expected * size
    return run


def _pool_window(op: str, args) -> tuple:
    kernel = args[1] if len(args) > 1 else (1,)
    stride = args[2] if len(args) > 2 and args[2] else kernel
    return _log2(math.prod(kernel) if len(kernel) > 1 else kernel[0] ** 2), _log2(max(stride))


def describe(func, args: Sequence, kwargs: dict, out, mem_bytes: int) -> Kernel:
    """The `Kernel` of one aten op call (`func` an OpOverload), given the bytes the cost counter says it moves."""
    op = f"aten.{func.overloadpacket.__name__}"
    if op in GEMM_OPS:
        return _gemm(op, args, out)
    if op == "aten.convolution" and not args[6]:  # not transposed
        return _conv(args, out)
    if mem_bytes <= 0:
        return Kernel("free", (), 0.0)
    first, result = next(iter(_tensors(args)), None), next(iter(_tensors(out)), None)
    inputs = [a for a in args if isinstance(a, torch.Tensor)]
    broadcast = float(result is not None and any(1 < a.numel() < result.numel() for a in inputs))
    fresh = _fresh_bytes(out, op)
    features = (_log2(mem_bytes), _log2(min(_inner_run(first), MAX_RUN)) if first is not None else _log2(MAX_RUN),
                float(result is None or result.is_contiguous()), broadcast, float(fresh > 0))
    if op in ROW_OPS and first is not None and first.dim():
        features += (_log2(first.shape[-1]),)
    if op in POOLING_OPS:
        features += _pool_window(op, args)
    if op == "aten.convolution":   # transposed (a plain one is a conv kind above)
        features += (_log2(_transposed_conv_flops(args) / mem_bytes),)
    return Kernel(op, features, float(mem_bytes), fresh)


def _transposed_conv_flops(args) -> float:
    """2 x the MACs of a transposed convolution: every input pixel of every input channel meets the weight's
    (Cout / groups) x kernel area entries."""
    x, w = args[0], args[1]
    return 2.0 * x.shape[0] * math.prod(x.shape[2:]) * x.shape[1] * math.prod(w.shape[1:])


def describe_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args, **kwargs) -> Kernel:
    """The `Kernel` of one `F.scaled_dot_product_attention` call, from its arguments ([..., L, E] tensors)."""
    q, k, v = query, key, value
    batch = math.prod(q.shape[:-2])
    lq, e, lk, ev = q.shape[-2], q.shape[-1], k.shape[-2], v.shape[-1]
    size = batch * lq * ev * q.element_size()
    fresh = float(size) if q.device.type == "cpu" and size >= FRESH_BYTES else 0.0
    return Kernel("attention", (_log2(batch), _log2(lq), _log2(lk), _log2(e), float(fresh > 0)),
                  2.0 * batch * lq * lk * (e + ev), fresh)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
