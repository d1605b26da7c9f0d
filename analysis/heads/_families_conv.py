"""Attention families inside timm's convolutional models, registered on import.

Read: CPUBone's strided `ConvAttention` (LowFormer's, with 2 x 2 kernels in some models), the non-local block
(`NonLocalAttn`, one head over every position) and the accelerator-friendly multi-query attention
(`MultiQueryAttentionV2`). Refused (`families._REFUSED`): the bilinear attention transform (`BatNonLocalAttn`), whose
block-mixing matrices come from a sigmoid, and SKNet's and ResNeSt's channel attention (softmaxes over kernel branches
or radix splits). GCNet's global context block is refused in `_families_pooling`.

Left out, neither read nor refused: CSATv2's `SpatialTransformerBlock`. Its scalar q and k are [B, N] each, so
`q @ k.transpose(-1, -2)` is [B, B] (timm 1.0.31): the softmax runs over the images of the batch, not over tokens.
CSATv2's `TransformerBlock`s use timm's `Attention` and are read by the ViT family (as DaViT's spatial attention is
read and its channel attention left out).
"""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import BatNonLocalAttn, MultiQueryAttentionV2, NonLocalAttn, SplitAttn
from timm.layers.selective_kernel import SelectiveKernelAttn
from timm.models.cpubone import ConvAttention as CPUBoneAttention

from ..core.errors import not_a_command
from ._families_hierarchical import _LowFormer, _flat
from ._families_pooling import _map_positions
from .families import _REFUSED, AttentionFamily, register_attention_family

__all__: list[str] = []  # registers families; nothing to import by name

_REFUSED.update({
    BatNonLocalAttn: "is a bilinear attention transform (BAT): block-mixing matrices from a sigmoid, no softmax map "
                     "over tokens",
    SelectiveKernelAttn: "is selective-kernel attention (SKNet): a softmax over kernel branches per channel of the "
                         "pooled map, not over tokens",
    SplitAttn: "is split attention (ResNeSt): a softmax over radix splits per channel of the pooled map, not over tokens",
})


def _conv_axis(n: int, conv: nn.Conv2d, before: int, after: int, px: float) -> torch.Tensor:
    """Pixel centres of the outputs of `conv` along an axis of `n` tokens of `px` pixels, padded by `before` and
    `after` tokens besides the conv's own padding: output i centres on input token i * stride - pad + (k - 1) / 2."""
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    i = torch.arange((n + before + after + 2 * p - k) // s + 1, dtype=torch.float32)
    return (i * s - before - p + (k - 1) / 2 + 0.5) * px


@register_attention_family
class _CPUBone(_LowFormer):
    """CPUBone's `ConvAttention`: LowFormer's, whose strided depthwise conv may have a 2 x 2 kernel (stride 2, the map
    first padded bottom/right to even sides; or stride 1 after a one-token pad top/left): a token then sits at
    the centre of the 2 x 2 tokens its kernel covers."""

    key, name, types = "CPUBone", "CPUBone (timm cpubone.ConvAttention)", (CPUBoneAttention,)

    def positions(self, m, parent, x, image_hw, model):
        (H, W), conv, s = x.shape[-2:], m.conv_proj.conv, m.att_stride
        before = 0
        if isinstance(conv, nn.Sequential):  # ZeroPad2d((1, 0, 1, 0)), then the conv
            before, conv = 1, conv[1]
        padded = m.small_kernels and s > 1  # its forward pads the map bottom/right to a multiple of the stride
        ys = _conv_axis(H, conv, before, (-H) % s if padded else 0, image_hw[0] / H)
        xs = _conv_axis(W, conv, before, (-W) % s if padded else 0, image_hw[1] / W)
        pos = _flat(torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1))
        return pos, pos


@register_attention_family
class _MultiQueryV2(AttentionFamily):
    """`MultiQueryAttentionV2` on [B, C, H, W] (self-attention: no memory input): one key head shared by every query
    head, maps [B, N, heads, M] moved to [B, heads, N, M]. Its output projection is a bare parameter (an einsum), so
    no module takes the heads' outputs: maps are read, head ablation and head outputs are refused (`unsliced_heads`)."""

    key, name, types = "MultiQueryAttentionV2", "multi-query attention v2 (timm layers.MultiQueryAttentionV2)", \
        (MultiQueryAttentionV2,)
    heads_dim = 2
    unsliced_heads = "MultiQueryAttentionV2 projects its heads' outputs with a bare parameter, in no module"

    def layout(self, m):
        return m, 1, m.value_dim  # the module itself: never hooked, as `unsliced_heads` refuses that

    def positions(self, m, parent, x, image_hw, model):
        pos = _map_positions(x, image_hw)
        return pos, pos


@register_attention_family
class _NonLocal(AttentionFamily):
    """The non-local block (`NonLocalAttn`): one head, every position attends every position of the map; the head's
    output enters the 1x1 conv `z`."""

    key, name, types = "non-local", "non-local block (timm layers.NonLocalAttn)", (NonLocalAttn,)

    def num_heads(self, m):
        return 1

    def layout(self, m):
        return m.z, 1, m.z.in_channels

    def positions(self, m, parent, x, image_hw, model):
        pos = _map_positions(x, image_hw)
        return pos, pos


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
