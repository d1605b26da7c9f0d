"""Small random networks, built from the blocks vision models are built of, that teach the latency predictor what
an op costs inside a network rather than alone.

    >>> for build in network_plan(seed=0):
    ...     model, x = build()        # an eval-mode nn.Module with random weights, and a seeded input batch
    >>> measure_context(machine, "cpu", NETWORKS)   # {"factor": f, "networks": [[kernel_s, rest_s, measured_s], ...]}

A microbenchmark times a kernel repeated alone, with its inputs, weights and output hot in the caches. Inside a
network the op before has just evicted some of them, Python and module calls run between ops, and a norm or an
activation reads a map another kernel wrote in its own layout. Those costs are not shapes, so the calibration
measures them on networks: each plan entry is a stem, two to four stages of one block type each (a plain conv,
an inverted residual with optional squeeze-excitation, a ConvNeXt-style block, a transformer block with fused or
written-out attention, a ghost-style block that concatenates a cheap depthwise half), a downsampling conv between
stages, and a pooled linear head; widths, depths, kernel sizes, activations, resolution and batch are drawn at
random (seeded, so every run builds the same networks). No network is a model the predictor is scored on: the
blocks are written here, with plain torch modules, and their sizes drawn, not taken from any model.
"""
from __future__ import annotations

import sys
from typing import Callable, List, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from ..core.errors import not_a_command

__all__ = ["network_plan", "measure_context", "fit_context", "BLOCKS", "NETWORKS", "CONTEXT_BOUNDS"]

NETWORKS = 32             # networks per plan
MAX_NETWORK_MACS = 1.5e9  # per batch: a network takes tens of milliseconds on one CPU thread
CONTEXT_BOUNDS = (0.5, 3.0)   # a context factor outside them means the networks were not timed as they should be
MAX_TOKENS = 1024         # attention only on maps of at most 32 x 32 tokens, as hierarchical models place it
_ACTIVATIONS = (nn.ReLU, nn.GELU, nn.Hardswish, nn.SiLU)


def _act(rng) -> nn.Module:
    return _ACTIVATIONS[int(rng.integers(len(_ACTIVATIONS)))]()


class ConvBlock(nn.Module):
    """A k x k convolution (BN folded) and an activation, with a residual add when the shape allows."""

    def __init__(self, c: int, rng):
        super().__init__()
        k = int(rng.choice([1, 3, 3]))
        self.conv, self.act = nn.Conv2d(c, c, k, padding=k // 2), _act(rng)

    def forward(self, x):
        return x + self.act(self.conv(x))


class InvertedResidual(nn.Module):
    """MobileNet's block: 1x1 expansion, k x k depthwise, optional squeeze-excitation, 1x1 projection, residual."""

    def __init__(self, c: int, rng):
        super().__init__()
        h, k = c * int(rng.choice([2, 3, 4, 6])), int(rng.choice([3, 5, 7]))
        self.expand, self.act1 = nn.Conv2d(c, h, 1), _act(rng)
        self.dw, self.act2 = nn.Conv2d(h, h, k, padding=k // 2, groups=h), _act(rng)
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(h, max(h // 4, 8), 1), nn.ReLU(),
                                nn.Conv2d(max(h // 4, 8), h, 1), nn.Hardsigmoid() if rng.uniform() < 0.5
                                else nn.Sigmoid()) if rng.uniform() < 0.5 else None
        self.project = nn.Conv2d(h, c, 1)

    def forward(self, x):
        y = self.act2(self.dw(self.act1(self.expand(x))))
        if self.se is not None:
            y = y * self.se(y)
        return x + self.project(y)


class ConvNeXtBlock(nn.Module):
    """7x7 depthwise, then LayerNorm and an MLP on channels-last tokens, residual."""

    def __init__(self, c: int, rng):
        super().__init__()
        self.dw, self.norm = nn.Conv2d(c, c, 7, padding=3, groups=c), nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, 4 * c), nn.GELU(), nn.Linear(4 * c, c))

    def forward(self, x):
        y = self.dw(x).permute(0, 2, 3, 1)
        return x + self.mlp(self.norm(y)).permute(0, 3, 1, 2)


class TransformerBlock(nn.Module):
    """Pre-norm multi-head self-attention over the map's tokens (fused, or written out as matmul, softmax,
    matmul) and an MLP, each residual."""

    def __init__(self, c: int, rng):
        super().__init__()
        self.heads = max(c // int(rng.choice([16, 32, 64])), 1)
        while c % self.heads:
            self.heads -= 1
        self.fused = bool(rng.uniform() < 0.5)
        self.norm1, self.qkv, self.proj = nn.LayerNorm(c), nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.norm2 = nn.LayerNorm(c)
        self.mlp = nn.Sequential(nn.Linear(c, int(rng.choice([2, 4])) * c), _act(rng))
        self.mlp.append(nn.Linear(self.mlp[0].out_features, c))

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        q, k, v = self.qkv(self.norm1(t)).reshape(b, h * w, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        if self.fused:
            a = F.scaled_dot_product_attention(q, k, v)
        else:
            a = ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)).softmax(-1) @ v
        t = t + self.proj(a.transpose(1, 2).reshape(b, h * w, c))
        t = t + self.mlp(self.norm2(t))
        return t.transpose(1, 2).reshape(b, c, h, w)


class GhostBlock(nn.Module):
    """Half the channels from a 1x1 conv, the other half from a cheap depthwise conv of them, concatenated."""

    def __init__(self, c: int, rng):
        super().__init__()
        half = c // 2
        self.primary, self.act = nn.Conv2d(c, half, 1), _act(rng)
        self.cheap = nn.Conv2d(half, c - half, 3, padding=1, groups=half if (c - half) % half == 0 else 1)

    def forward(self, x):
        y = self.act(self.primary(x))
        return x + torch.cat([y, self.cheap(y)], dim=1)


BLOCKS = (ConvBlock, InvertedResidual, ConvNeXtBlock, TransformerBlock, GhostBlock)


class ContextNetwork(nn.Module):
    """Stem, stages of blocks with a downsampling conv before each but the first, pooled linear head."""

    def __init__(self, rng, side: int, width: float = 1.0):
        super().__init__()
        widths = [int(np.exp(rng.uniform(np.log(16), np.log(96))))]
        stages = int(rng.integers(2, 5))
        for _ in range(stages - 1):
            widths.append(widths[-1] * int(rng.choice([1, 2, 2])))
        widths = [max(8 * round(w * width / 8), 8) for w in widths]
        if rng.uniform() < 0.4:   # patchify stem
            self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 4, 4), _act(rng))
        else:                     # two stride-2 convs
            self.stem = nn.Sequential(nn.Conv2d(3, widths[0] // 2, 3, 2, 1), _act(rng),
                                      nn.Conv2d(widths[0] // 2, widths[0], 3, 2, 1), _act(rng))
        side //= 4
        layers = []
        for i, c in enumerate(widths):
            side = -(-side // 2) if i else side
            fits = [b for b in BLOCKS if b is not TransformerBlock or side * side <= MAX_TOKENS]
            block = fits[int(rng.integers(len(fits)))]
            down = [nn.Conv2d(widths[i - 1], c, 3, 2, 1)] if i else []
            layers.append(nn.Sequential(*down, *(block(c, rng) for _ in range(int(rng.integers(1, 4))))))
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-1], 1000)

    def forward(self, x):
        return self.head(self.stages(self.stem(x)).mean((2, 3)))


def _macs(state: int, side: int, width: float, batch: int) -> int:
    """MACs of the network drawn from `state`, counted on the meta device (nothing allocated or computed)."""
    from .counter import _count
    from .op_rules import macs_rules

    with torch.device("meta"):
        model = ContextNetwork(np.random.default_rng(state), side, width)
        return sum(r.macs for r in _count(model, (torch.empty(batch, 3, side, side),), macs_rules(None))["records"])


def network_plan(seed: int = 0, n: int = NETWORKS) -> List[Callable[[], Tuple[nn.Module, torch.Tensor]]]:
    """`n` seeded builders of (network, input batch) at the batch sizes and resolutions models are timed at: a draw
    whose MACs exceed `MAX_NETWORK_MACS` is built again with 3/4 of its widths until it fits."""
    rng = np.random.default_rng(seed)
    plan = []
    for i in range(n):
        state = int(rng.integers(2 ** 31))
        batch, side = int(rng.choice([8, 16, 16])), int(rng.choice([160, 192, 224, 224, 256]))
        plan.append(lambda state=state, batch=batch, side=side: _build(state, batch, side))
    return plan


def _build(state: int, batch: int, side: int) -> Tuple[nn.Module, torch.Tensor]:
    width = 1.0
    while width > 0.1 and _macs(state, side, width, batch) > MAX_NETWORK_MACS:
        width *= 0.75
    torch.manual_seed(state)
    model = ContextNetwork(np.random.default_rng(state), side, width).eval()
    return model, torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(state))


def fit_context(kernel_s, rest_s, measured_s) -> float:
    """The context factor f of measured = kernel x f + rest (kernel: the network's kernels priced alone; rest: its
    free ops and per-op overhead, not scaled), fitted by least squares on each network's relative error, within
    `CONTEXT_BOUNDS`."""
    from scipy.optimize import lsq_linear

    y = np.asarray(measured_s, dtype=float)
    a = (np.asarray(kernel_s, dtype=float) / y)[:, None]
    return round(float(lsq_linear(a, (y - np.asarray(rest_s, dtype=float)) / y, bounds=CONTEXT_BOUNDS).x[0]), 6)


def measure_context(machine, device, networks: int = NETWORKS, progress: bool = False) -> dict:
    """Time the first `networks` networks of `network_plan` whole on `device`, price their kernels alone on
    `machine` (a `calibration.CalibratedMachine`), and fit the context factor (`fit_context`)."""
    from .counter import _count
    from .latency import model_latency
    from .op_rules import macs_rules

    rows = []
    for build in tqdm(network_plan(n=networks), desc="networks", unit="network", file=sys.stderr,
                      disable=not progress):
        model, x = build()
        model, x = model.to(device), x.to(device)
        kernels = [r.kernel for r in _count(model, (x,), macs_rules(None), kernels=True)["records"]]
        priced = [(machine.seconds(k), k.kind != "free" and k.work > 0) for k in kernels]
        scaled = sum(s for s, moves in priced if moves)
        rest = sum(s for s, moves in priced if not moves) + len(kernels) * machine.overhead_s
        rows.append([round(v, 9) for v in (scaled, rest, model_latency(model, x, repeats=5, warmup=1) / 1e3)])
    return {"factor": fit_context(*np.asarray(rows).T), "networks": rows}


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
