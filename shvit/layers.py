"""Building blocks of the SHViT design space.

timm's SHViT blocks (`Conv2dNorm`, `Residual`, `FFN`, `PatchMerging`, `SHSA`, `NormLinear`)
are reused as they are, so parameter names (and therefore checkpoints) match timm's
`shvit_s1..s4`. This module adds only what timm lacks: the multi-head and bottleneck
mixers of the paper's ablations, a stem of configurable stride, and a stage that takes
any mixer. Annotations stay real objects (no `from __future__ import annotations`): TorchScript
reads them.
"""
from typing import Callable, Optional, Type

import torch
import torch.nn as nn
from timm.layers import GroupNorm1
from timm.models import checkpoint_seq
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
                 norm_layer: Type[nn.Module] = GroupNorm1, act_layer: Type[nn.Module] = nn.ReLU,
                 device=None, dtype=None):
        dd = {"device": device, "dtype": dtype}
        super().__init__()
        self.dim, self.qk_dim, self.num_heads = dim, qk_dim, num_heads
        self.v_dim = dim // num_heads
        self.scale = qk_dim ** -0.5
        self.pre_norm = norm_layer(dim, **dd)
        self.qkv = Conv2dNorm(dim, num_heads * (2 * qk_dim + self.v_dim), **dd)
        self.proj = nn.Sequential(act_layer(), Conv2dNorm(dim, dim, bn_weight_init=0, **dd))

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

    def __init__(self, dim: int, qk_dim: int, pdim: int, act_layer: Type[nn.Module] = nn.ReLU,
                 device=None, dtype=None):
        dd = {"device": device, "dtype": dtype}
        super().__init__()
        self.dim, self.qk_dim, self.pdim = dim, qk_dim, pdim
        self.scale = qk_dim ** -0.5
        self.reduce = nn.Sequential(Conv2dNorm(dim, pdim, **dd), act_layer())
        self.qkv = Conv2dNorm(pdim, 2 * qk_dim + pdim, **dd)
        self.proj = nn.Sequential(act_layer(), Conv2dNorm(pdim, dim, bn_weight_init=0, **dd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        q, k, v = self.qkv(self.reduce(x)).flatten(2).split([self.qk_dim, self.qk_dim, self.pdim], dim=1)
        attn = (q.transpose(-2, -1) @ k) * self.scale
        attn = attn.softmax(dim=-1)
        x = (v @ attn.transpose(-2, -1)).reshape(B, self.pdim, H, W)
        return self.proj(x)


def make_mixer(kind: str, dim: int, qk_dim: int, pdim: int, num_heads: int,
               device=None, dtype=None) -> Optional[nn.Module]:
    """The token mixer of one block; None for `conv` (the block's DWConv is the mixer)."""
    dd = {"device": device, "dtype": dtype}
    if kind == "conv":
        return None
    if kind == "shsa":
        return SHSA(dim, qk_dim, pdim, **dd)
    if kind == "full":
        return SHSA(dim, qk_dim, dim, **dd)
    if kind == "mhsa":
        return MHSA(dim, qk_dim, num_heads, **dd)
    if kind == "bottleneck":
        return BottleneckSHSA(dim, qk_dim, pdim, **dd)
    raise ValueError(f"unknown mixer {kind!r}")


class Stem(nn.Sequential):
    """Overlapping patch embedding: log2(stride) stride-2 3x3 conv-BN layers with ReLU between.

    Channels double at each layer and end at `out_chs` (timm's SHViT stem is stride 16).
    """

    def __init__(self, in_chans: int, out_chs: int, stride: int, act_layer: Type[nn.Module] = nn.ReLU,
                 device=None, dtype=None):
        dd = {"device": device, "dtype": dtype}
        levels = stride.bit_length() - 1
        chs = [out_chs // 2 ** (levels - 1 - i) for i in range(levels)]
        layers, prev = [], in_chans
        for i, c in enumerate(chs):
            if i:
                layers.append(act_layer())
            layers.append(Conv2dNorm(prev, c, 3, 2, 1, **dd))
            prev = c
        super().__init__(*layers)
        self.stride = stride


class Block(nn.Module):
    """SHViT block: residual 3x3 DWConv, residual token mixer, residual FFN."""

    def __init__(self, dim: int, mixer: Optional[nn.Module], ffn_ratio: float = 2.0, device=None, dtype=None):
        dd = {"device": device, "dtype": dtype}
        super().__init__()
        self.conv = Residual(Conv2dNorm(dim, dim, 3, 1, 1, groups=dim, bn_weight_init=0, **dd))
        self.mixer = Residual(mixer) if mixer is not None else nn.Identity()
        self.ffn = Residual(FFN(dim, int(dim * ffn_ratio), **dd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.mixer(self.conv(x)))


class Stage(nn.Module):
    """Optional stride-2 downsampling (as timm's SHViT: DW+FFN, PatchMerging, DW+FFN), then blocks.

    `mixer_fn(**dd)` builds one block's token mixer. With `grad_checkpointing` set, the blocks
    are recomputed in backward (as timm's `StageBlock`).
    """

    def __init__(self, in_dim: int, dim: int, depth: int, mixer_fn: Callable[..., Optional[nn.Module]],
                 ffn_ratio: float = 2.0, downsample: bool = True, device=None, dtype=None):
        dd = {"device": device, "dtype": dtype}
        super().__init__()
        self.grad_checkpointing = False
        self.downsample = nn.Sequential(
            Residual(Conv2dNorm(in_dim, in_dim, 3, 1, 1, groups=in_dim, **dd)),
            Residual(FFN(in_dim, int(in_dim * ffn_ratio), **dd)),
            PatchMerging(in_dim, dim, **dd),
            Residual(Conv2dNorm(dim, dim, 3, 1, 1, groups=dim, **dd)),
            Residual(FFN(dim, int(dim * ffn_ratio), **dd)),
        ) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[Block(dim, mixer_fn(**dd), ffn_ratio, **dd) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return x
