"""Building blocks of the SHViT design space.

timm's SHViT blocks (`Conv2dNorm`, `Residual`, `FFN`, `PatchMerging`, `SHSA`, `NormLinear`)
are reused as they are, so parameter names (and therefore checkpoints) match timm's
`shvit_s1..s4`. This module adds only what timm lacks: the multi-head and bottleneck
mixers of the paper's ablations, a stem of configurable stride, and a stage that takes
any mixer.
"""
from __future__ import annotations

from typing import Callable, Optional, Type

import torch
import torch.nn as nn
from timm.layers import GroupNorm1
from timm.models.shvit import FFN, SHSA, Conv2dNorm, NormLinear, PatchMerging, Residual

__all__ = [
    "Conv2dNorm", "Residual", "FFN", "PatchMerging", "SHSA", "NormLinear",
    "MHSA", "BottleneckSHSA", "Stem", "Block", "Stage", "make_mixer",
]


class MHSA(nn.Module):
    """Multi-head self-attention over all channels (the ablation's "single head -> MHSA").

    Layout (LeViT / EfficientViT style): `num_heads` heads, each with `qk_dim` query and
    key channels and `dim // num_heads` value channels; head outputs are concatenated in
    head order, then ReLU and a 1x1 conv-BN projection, as in SHSA.
    """

    def __init__(self, dim: int, qk_dim: int, num_heads: int,
                 norm_layer: Type[nn.Module] = GroupNorm1, act_layer: Type[nn.Module] = nn.ReLU):
        super().__init__()
        self.dim, self.qk_dim, self.num_heads = dim, qk_dim, num_heads
        self.v_dim = dim // num_heads
        self.scale = qk_dim ** -0.5
        self.pre_norm = norm_layer(dim)
        self.qkv = Conv2dNorm(dim, num_heads * (2 * qk_dim + self.v_dim))
        self.proj = nn.Sequential(act_layer(), Conv2dNorm(dim, dim, bn_weight_init=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        qkv = self.qkv(self.pre_norm(x)).view(B, self.num_heads, -1, H * W)
        q, k, v = qkv.split([self.qk_dim, self.qk_dim, self.v_dim], dim=2)
        attn = (q.transpose(-2, -1) @ k) * self.scale
        attn = attn.softmax(dim=-1)
        x = (v @ attn.transpose(-2, -1)).reshape(B, self.dim, H, W)
        return self.proj(x)


class BottleneckSHSA(nn.Module):
    """Single-head attention inside a ResNet-style bottleneck (SHViT Fig. 6, left).

    A 1x1 conv-BN + ReLU reduces `dim` to `pdim` channels, single-head attention mixes
    tokens there, and ReLU + 1x1 conv-BN expands back to `dim`.
    """

    def __init__(self, dim: int, qk_dim: int, pdim: int, act_layer: Type[nn.Module] = nn.ReLU):
        super().__init__()
        self.dim, self.qk_dim, self.pdim = dim, qk_dim, pdim
        self.scale = qk_dim ** -0.5
        self.reduce = nn.Sequential(Conv2dNorm(dim, pdim), act_layer())
        self.qkv = Conv2dNorm(pdim, 2 * qk_dim + pdim)
        self.proj = nn.Sequential(act_layer(), Conv2dNorm(pdim, dim, bn_weight_init=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        q, k, v = self.qkv(self.reduce(x)).flatten(2).split([self.qk_dim, self.qk_dim, self.pdim], dim=1)
        attn = (q.transpose(-2, -1) @ k) * self.scale
        attn = attn.softmax(dim=-1)
        x = (v @ attn.transpose(-2, -1)).reshape(B, self.pdim, H, W)
        return self.proj(x)


def make_mixer(kind: str, dim: int, qk_dim: int, pdim: int, num_heads: int) -> Optional[nn.Module]:
    """The token mixer of one block; None for `conv` (the block's DWConv is the mixer)."""
    if kind == "conv":
        return None
    if kind == "shsa":
        return SHSA(dim, qk_dim, pdim)
    if kind == "full":
        return SHSA(dim, qk_dim, dim)
    if kind == "mhsa":
        return MHSA(dim, qk_dim, num_heads)
    if kind == "bottleneck":
        return BottleneckSHSA(dim, qk_dim, pdim)
    raise ValueError(f"unknown mixer {kind!r}")


class Stem(nn.Sequential):
    """Overlapping patch embedding: log2(stride) stride-2 3x3 conv-BN layers with ReLU between.

    Channels double at each layer and end at `out_chs` (timm's SHViT stem is stride 16).
    """

    def __init__(self, in_chans: int, out_chs: int, stride: int, act_layer: Type[nn.Module] = nn.ReLU):
        levels = stride.bit_length() - 1
        chs = [out_chs // 2 ** (levels - 1 - i) for i in range(levels)]
        layers, prev = [], in_chans
        for i, c in enumerate(chs):
            if i:
                layers.append(act_layer())
            layers.append(Conv2dNorm(prev, c, 3, 2, 1))
            prev = c
        super().__init__(*layers)
        self.stride = stride


class Block(nn.Module):
    """SHViT block: residual 3x3 DWConv, residual token mixer, residual FFN."""

    def __init__(self, dim: int, mixer: Optional[nn.Module], ffn_ratio: float = 2.0):
        super().__init__()
        self.conv = Residual(Conv2dNorm(dim, dim, 3, 1, 1, groups=dim, bn_weight_init=0))
        self.mixer = Residual(mixer) if mixer is not None else nn.Identity()
        self.ffn = Residual(FFN(dim, int(dim * ffn_ratio)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.mixer(self.conv(x)))


class Stage(nn.Module):
    """Optional stride-2 downsampling (as timm's SHViT: DW+FFN, PatchMerging, DW+FFN), then blocks."""

    def __init__(self, in_dim: int, dim: int, depth: int, mixer_fn: Callable[[], Optional[nn.Module]],
                 ffn_ratio: float = 2.0, downsample: bool = True):
        super().__init__()
        self.downsample = nn.Sequential(
            Residual(Conv2dNorm(in_dim, in_dim, 3, 1, 1, groups=in_dim)),
            Residual(FFN(in_dim, int(in_dim * ffn_ratio))),
            PatchMerging(in_dim, dim),
            Residual(Conv2dNorm(dim, dim, 3, 1, 1, groups=dim)),
            Residual(FFN(dim, int(dim * ffn_ratio))),
        ) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[Block(dim, mixer_fn(), ffn_ratio) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))
