"""The calibration's microbenchmarks: kernels of every kind the latency predictor prices, at shapes drawn the
way vision models use them (`kernel_plan`, seeded: the same plan on every run).

GEMMs (linear layers; batched matmuls) with channel counts mostly multiples of 8; convolutions (dense, grouped,
stems with 3 input channels, patchify and downsampling with kernel = stride; 3 in 10 on channels-last inputs)
and depthwise convolutions; transposed convolutions that double the side; fused attention over sequence lengths,
head dims and shorter key sequences; and the bytes-moving ops (activations on contiguous and transposed inputs,
in place, element-wise and broadcast, norms and softmax over rows of several lengths, copies of contiguous,
permuted and window-partitioned maps, concatenation, padding, pooling, reductions, upsampling) at `BYTE_SIZES`,
the rarer ones at every other size.
Each entry builds its inputs only when called, so a plan costs no memory until it runs.
"""
from __future__ import annotations

from typing import Callable, Iterator, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..core.errors import not_a_command

__all__ = ["kernel_plan", "BYTE_SIZES", "MAX_MACS"]

# 4 KiB .. 128 MiB moved per call, densest where the working set leaves the cache and outputs get fresh pages.
# Calibrations until held-out set 6 also took 256 MiB: as fast per byte as 128 MiB (median log2 rate -0.005 over
# 15 kinds on the Intel host), but 50 of its 129 seconds.
BYTE_SIZES = [2 ** p for p in (12, 14, 16, 18, 20, 22, 24, 24.5, 25, 25.5, 26, 27)]
MAX_MACS = 3e9                                    # the largest shaped kernel: ~50 ms


def _log_uniform(rng, lo: float, hi: float) -> int:
    return int(round(float(np.exp(rng.uniform(np.log(lo), np.log(hi))))))


def _channels(rng, lo: float, hi: float) -> int:
    """A channel count: a multiple of 8 four times in five, as in most models, else any."""
    c = _log_uniform(rng, lo, hi)
    return max(8 * round(c / 8), 8) if rng.uniform() < 0.8 else c


def _gemm_cases(rng, n: int) -> Iterator[Callable]:
    for i in range(n):
        if i % 4 == 3:   # batched matmul: attention written out, heads folded into the batch
            b, m, k, nn_ = (_log_uniform(rng, 2, 512), _log_uniform(rng, 4, 2048), _channels(rng, 4, 512),
                            _log_uniform(rng, 4, 2048))
            if b * m * nn_ * k > 1e9 or b * m * max(k, nn_) > 2 ** 25:
                continue
            yield lambda b=b, m=m, k=k, n=nn_: _call(torch.bmm, _randn(b, m, k), _randn(b, k, n))
        else:            # a linear layer: x @ w.t() + bias
            m, k, nn_ = _log_uniform(rng, 1, 131072), _channels(rng, 4, 4096), _channels(rng, 4, 4096)
            if m * nn_ * k > MAX_MACS or m * max(k, nn_) > 2 ** 25:
                continue
            yield lambda m=m, k=k, n=nn_: _call(F.linear, _randn(m, k), _randn(n, k), _randn(n))


def _conv_shape(rng):
    """(cin per group, cout per group, groups, kernel, stride, output side) of one dense or grouped conv."""
    side = _log_uniform(rng, 1, 128)
    r = rng.uniform()
    if r < 0.12:                 # a stem: 3 input channels
        cin, k, s = 3, int(rng.choice([3, 4, 7, 8, 16])), int(rng.choice([1, 2, 4, 8, 16]))
    elif r < 0.22:               # patchify / downsampling: kernel = stride
        cin, k = _channels(rng, 8, 512), int(rng.choice([2, 4, 7, 8, 16]))
        s = k
    else:
        cin, k, s = _channels(rng, 4, 1024), int(rng.choice([1, 1, 1, 3, 3, 5, 7])), int(rng.choice([1, 1, 2]))
    groups = 1 if rng.uniform() < 0.8 or cin < 8 else int(2 ** rng.integers(1, 7))
    cout = _channels(rng, 8, 2048)
    return max(cin // groups, 1), max(cout // groups, 1), groups, k, s, side


def _conv_cases(rng, n: int) -> Iterator[Callable]:
    for _ in range(n):
        cin_g, cout_g, groups, k, s, side = _conv_shape(rng)
        batch = int(rng.choice([1, 8, 16, 16, 16, 32]))
        macs = batch * side * side * cout_g * groups * cin_g * k * k
        if macs > MAX_MACS or batch * max(cin_g * groups * s * s, cout_g * groups) * side * side > 2 ** 25:
            continue
        x = lambda b=batch, c=cin_g * groups, h=side * s, last=rng.uniform() < 0.3: _image(b, c, h, last)
        yield lambda x=x, w=(cout_g * groups, cin_g, k, k), s=s, g=groups, p=(k // 2 if k != s else 0): _call(
            F.conv2d, x(), _randn(w), _randn(w[0]), s, p, 1, g)


def _dwconv_cases(rng, n: int) -> Iterator[Callable]:
    for _ in range(n):
        c, k, s, side = _channels(rng, 8, 2048), int(rng.choice([3, 3, 5, 7])), int(rng.choice([1, 1, 2])), \
            _log_uniform(rng, 2, 128)
        batch = int(rng.choice([1, 16, 16, 32]))
        if batch * c * side * side * k * k > MAX_MACS / 10 or batch * c * (side * s) ** 2 > 2 ** 25:
            continue
        yield lambda b=batch, c=c, k=k, s=s, h=side * s, last=rng.uniform() < 0.3: _call(
            F.conv2d, _image(b, c, h, last), _randn(c, 1, k, k), _randn(c), s, k // 2, 1, c)


def _transposed_conv_cases(rng, n: int) -> Iterator[Callable]:
    """Transposed convolutions as decoders and attention upsamplers use them: stride 2, kernel 2, 3 or 4, each
    doubling the side."""
    for _ in range(n):
        cin, cout, side, k = _channels(rng, 8, 512), _channels(rng, 8, 512), _log_uniform(rng, 2, 64), \
            int(rng.choice([2, 3, 4]))
        batch = int(rng.choice([1, 16, 16]))
        if batch * side * side * cin * cout * k * k > MAX_MACS / 3 or batch * max(cin, cout) * (2 * side) ** 2 > 2 ** 25:
            continue
        padding, output_padding = {2: (0, 0), 3: (1, 1), 4: (1, 0)}[k]
        yield lambda b=batch, ci=cin, co=cout, h=side, k=k, p=padding, op=output_padding: _call(
            F.conv_transpose2d, _randn(b, ci, h, h), _randn(ci, co, k, k), _randn(co), 2, p, op)


def _attention_cases(rng, n: int) -> Iterator[Callable]:
    for _ in range(n):
        bh, lq, e = _log_uniform(rng, 4, 512), _log_uniform(rng, 16, 4096), int(rng.choice([16, 32, 48, 64, 128]))
        lk = lq if rng.uniform() < 0.7 else max(lq // int(rng.choice([4, 16, 64])), 1)
        if bh * lq * lk * e > 6e8:
            continue
        yield lambda bh=bh, lq=lq, lk=lk, e=e: _call(F.scaled_dot_product_attention, _randn(bh, lq, e),
                                                     _randn(bh, lk, e), _randn(bh, lk, e))


_UNARY = (torch.relu, F.gelu, F.hardswish, torch.sigmoid, F.silu)
_RARE_UNARY = (torch.tanh, F.hardsigmoid, torch.exp, lambda t: torch.clamp_min(t, 0.0))
_IN_PLACE = (torch.relu_, lambda t: F.hardswish(t, inplace=True), lambda t: F.silu(t, inplace=True),
             torch.sigmoid_, lambda t: t.add_(1.0))
_SHAPED = (torch.clone,
           lambda t: t.transpose(0, 1).contiguous(), lambda t: torch.cat([t, t], dim=-1),
           lambda t: t.mean(-1, keepdim=True))
_IMAGE = (lambda t: t.permute(0, 2, 3, 1).contiguous(), lambda t: t.mean((2, 3)), lambda t: F.max_pool2d(t, 3, 2, 1),
          lambda t: F.avg_pool2d(t, 3, 1, 1))
_RARE_IMAGE = (lambda t: F.pad(t, (1, 1, 1, 1)), lambda t: torch.roll(t, (3, 3), (2, 3)),
               lambda t: F.avg_pool2d(t, 2, 2), lambda t: F.adaptive_avg_pool2d(t, 1),
               lambda t: F.interpolate(t, scale_factor=2.0, mode="nearest"))


def _bytes_cases(byte_sizes: Sequence[float]) -> Iterator[Callable]:
    """Every common bytes-moving op at working sets from 4 KiB to 128 MiB: on contiguous and on permuted
    (transposed) inputs, in place, broadcast."""
    for i, size in enumerate(byte_sizes):
        n = max(int(size) // 8, 64)           # elements read + written by a unary op
        c = 64 if n < 2 ** 14 else 256
        x = lambda n=n, c=c: _randn(max(n // c, 1), c)
        img = lambda n=n: _randn(max(n // (64 * 196), 1), 64, 14, 14) if n >= 64 * 196 else \
            _randn(1, 16, 4, max(n // 64, 1))
        rare = i % 2 == 0   # the rarer ops at every other size
        for fn in _UNARY + (_RARE_UNARY if rare else ()):
            yield lambda fn=fn, x=x: _call(fn, x())
        for fn in _UNARY[:2] if rare else ():
            yield lambda fn=fn, x=x: _call(fn, x().t())
        for fn in _IN_PLACE + _SHAPED:
            yield lambda fn=fn, x=x: _call(fn, x())
        for fn in _IMAGE + (_RARE_IMAGE if rare else ()):
            yield lambda fn=fn, img=img: _call(fn, img())
        third = lambda n=n, c=c: _randn(max(n // (3 * c), 1), c)
        for fn in (torch.add, torch.mul) + ((torch.sub, torch.div) if rare else ()):
            yield lambda fn=fn, t=third: _call(fn, t(), t())
        yield lambda t=third: _call(torch.add, t().t(), t().t())
        yield lambda x=x, c=c: _call(torch.add, x(), _randn(c))
        yield lambda img=img: _bn_call(img())
        yield from [lambda img=img: _gn_call(img())] if rare else []
        yield lambda img=img: _se_call(img())
        for row in (16, 49, 196, 1024) if rare else (64, 256):   # softmax, layer norm: their speed depends on the row
            yield lambda n=n, row=row: _call(torch.softmax, _randn(max(n // row, 1), row), -1)
            yield lambda n=n, row=row: _ln_call(_randn(max(n // row, 1), row))
        yield lambda x=x: (lambda dst, src: _call(dst.copy_, src))(x(), x())
        for c in (16, 128) if rare else (96,):
            yield lambda n=n, c=c: _call(_window_partition, _randn(max(n // (2 * 64 * c), 1), 8, 8, c))
        yield lambda x=x: (lambda t, one: _call(t.mul_, one))(x(), torch.ones(1))


def _randn(*shape, device=None) -> torch.Tensor:
    """Standard normal values, filled in place (3x faster than torch.randn for the largest inputs)."""
    return torch.empty(*shape, device=device).normal_()


def _image(n: int, c: int, side: int, channels_last: bool) -> torch.Tensor:
    x = _randn(n, c, side, side)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _call(fn, *args):
    return lambda: fn(*args)


def _bn_call(t):
    c = t.shape[1]
    return _call(F.batch_norm, t, torch.zeros(c), torch.ones(c), torch.ones(c), torch.zeros(c))


def _ln_call(t):
    c = t.shape[-1]
    return _call(F.layer_norm, t, (c,), torch.ones(c), torch.zeros(c))


def _window_partition(t):
    """Swin's window partition of a [B, H, W, C] map into 4 x 4 windows: a copy in runs of C elements."""
    b, h, w, c = t.shape
    return t.view(b, h // 4, 4, w // 4, 4, c).permute(0, 1, 3, 2, 4, 5).contiguous()


def _se_call(t):
    """Squeeze-excitation's scaling: every channel of every image times its own factor."""
    return _call(torch.mul, t, torch.rand(t.shape[0], t.shape[1], 1, 1))


def _gn_call(t):
    c = t.shape[1]
    return _call(F.group_norm, t, 1, torch.ones(c), torch.zeros(c))


def kernel_plan(seed: int = 0, scale: float = 1.0, byte_sizes: Sequence[float] = BYTE_SIZES
                ) -> List[Callable[[], Callable]]:
    """The microbenchmarks, in a seeded order: each entry builds (on call) a zero-argument function that runs
    one kernel. `scale` multiplies the number of shaped kernels (GEMM, conv, depthwise, attention, transposed), and the
    bytes-moving ops run at `byte_sizes` (bytes moved per call; a quick plan for tests takes a few)."""
    rng = np.random.default_rng(seed)
    counts = {_gemm_cases: 320, _conv_cases: 640, _dwconv_cases: 180, _attention_cases: 100,
              _transposed_conv_cases: 60}   # drawn last: the kinds before keep the shapes they had before it
    plan = [case for fn, n in counts.items() for case in fn(rng, max(int(n * scale), 8))]
    return plan + list(_bytes_cases(byte_sizes))


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
