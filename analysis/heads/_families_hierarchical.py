"""Attention families of timm's hybrid and windowed models beyond the papers' models, registered on import.

Read: TinyViT, EfficientFormer v1 / v2, FastViT, MaxViT / MaxxViT / CoAtNet, Swin v2 (and Swin v2 CR),
MobileViT (v1), NextViT, GCViT, DaViT (its spatial window attention), CAFormer, BotNet's bottleneck
attention, HaloNet's halo attention, iFormer's single-head modulation attention, LowFormer's strided attention
and MobileNetV4 / V5 hybrids' multi-query and multi-head 2-d attention. Refused (`families._REFUSED`), as
their weights are no softmax map over tokens: EfficientViT-MIT's ReLU linear attention, MobileViTv2's
separable linear attention, CoaT's factorized attention, EdgeNeXt's cross-covariance attention,
SwiftFormer's additive attention, FocalNet's focal modulation, the lambda layer, EfficientViM's
hidden-state mixer and ConViT's gated positional self-attention (two softmaxes mixed).

Token positions are rebuilt by running the model's own partition (shift, pad, windows, grid, unfold) on
the grid of token centres, so each window's positions are the tokens that window really holds; padding
is NaN. A windowed layer's feature map size is the image over the reduction of the timm feature stage
(`feature_info`) holding it, where its input is already partitioned.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Attention as TimmAttention
from timm.layers.attention2d import Attention2d, MultiQueryAttention2d
from timm.layers.bottleneck_attn import BottleneckAttn
from timm.layers.halo_attn import HaloAttn
from timm.layers.lambda_layer import LambdaLayer
from timm.models import (coat, convit, davit, edgenext, efficientformer, efficientformer_v2, efficientvim,
                         efficientvit_mit, fastvit, focalnet, gcvit, iformer, lowformer, maxxvit, metaformer, mobilevit,
                         nextvit,
                         swiftformer, swin_transformer_v2, swin_transformer_v2_cr, tiny_vit)

from ..core.errors import not_a_command
from .families import _REFUSED, AttentionFamily, _grid, _windows, register_attention_family

__all__: list[str] = []  # registers families; nothing to import by name

_REFUSED.update({
    efficientvit_mit.LiteMLA: "is ReLU linear attention (EfficientViT-MIT): relu(q) (relu(k)^T v) forms no N x N map",
    mobilevit.LinearSelfAttention: "is separable linear attention (MobileViTv2): one softmax context score per "
                                   "token, no map per query",
    coat.FactorAttnConvRelPosEnc: "is factorized attention (CoaT): q (softmax_tokens(k)^T v), a softmax over "
                                  "tokens per key channel, no map per query",
    edgenext.CrossCovarianceAttn: "is cross-covariance attention (EdgeNeXt): a softmax over channels, not tokens",
    swiftformer.EfficientAdditiveAttention: "is additive attention (SwiftFormer): one global query, no map per query",
    focalnet.FocalModulation: "is focal modulation (FocalNet): gated depthwise convolutions, no attention map",
    LambdaLayer: "is a lambda layer: keys softmaxed over positions into a linear content lambda, no map per query",
    efficientvim.HSMSSD: "is a hidden-state mixer (EfficientViM): tokens softmaxed into a few states, no map per query",
    convit.GPSA: "is gated positional self-attention (ConViT): a learned per-head gate mixes a content softmax and a "
                 "positional softmax, so the weights applied to v are no softmax the capture records",
})


def _centres(h: int, w: int, image_hw) -> torch.Tensor:
    """[h, w, 2] centres (y, x) of an h x w token grid spanning the image."""
    return _grid(h, w, image_hw[0] / h, image_hw[1] / w)


def _flat(grid: torch.Tensor) -> torch.Tensor:
    """[1, tokens, 2]: one window of the whole grid, raster order."""
    return grid.reshape(1, -1, 2)


def _feature_hw(model: nn.Module, m: nn.Module, image_hw) -> tuple[int, int]:
    """(H, W) of the feature map at module `m`: the image over the reduction of the timm feature stage
    (`feature_info`) that holds `m` (its stages downsample first, so every block sees that reduction)."""
    name = next(n for n, mod in model.named_modules() if mod is m)
    stages = [f for f in getattr(model, "feature_info", []) if name.startswith(f["module"] + ".")]
    if not stages:
        raise RuntimeError(f"{name}: no timm feature stage holds it, so its feature map size is unknown")
    r = stages[-1]["reduction"]
    return math.ceil(image_hw[0] / r), math.ceil(image_hw[1] / r)


def _stage_centres(model: nn.Module, m: nn.Module, image_hw) -> torch.Tensor:
    """[H, W, 2] token centres of the feature map at module `m` (its size from `_feature_hw`)."""
    return _centres(*_feature_hw(model, m, image_hw), image_hw)


def _partitioned(grid: torch.Tensor, partition, size) -> torch.Tensor:
    """[windows, tokens, 2]: a [H, W, 2] grid through a timm channels-last partition function."""
    return partition(grid[None], list(size)).reshape(-1, size[0] * size[1], 2)


class _ValDim(AttentionFamily):
    """LeViT-style attention on tokens ([B, N, C]): `val_dim` value channels per head at the projection input."""

    def layout(self, m):
        return m.proj, -1, m.val_dim


@register_attention_family
class _TinyViT(_ValDim):
    """TinyViT's windowed attention (LeViT-style bias); windows padded bottom/right as the block pads them."""

    key, name, types = "TinyViT", "TinyViT (timm tiny_vit.Attention)", (tiny_vit.Attention,)

    def positions(self, m, parent, x, image_hw, model):
        pos = _windows(_stage_centres(model, parent, image_hw), parent.window_size)
        return pos, pos


@register_attention_family
class _EfficientFormer(_ValDim):
    """EfficientFormer v1: global attention on the flattened last stage (image / 32)."""

    key, name, types = "EfficientFormer", "EfficientFormer (timm efficientformer.Attention)", (efficientformer.Attention,)

    def positions(self, m, parent, x, image_hw, model):
        grid = _stage_centres(model, m, image_hw)
        H, W = grid.shape[:2]
        if H * W != x.shape[1]:
            raise RuntimeError(f"{self.key}: {x.shape[1]} tokens at a {H} x {W} feature map")
        return _flat(grid), _flat(grid)


@register_attention_family
class _CAFormer(_EfficientFormer):
    """MetaFormer's `Attention` (CAFormer): global attention on each attention stage's flattened map."""

    key, name, types = "CAFormer", "CAFormer (timm metaformer.Attention)", (metaformer.Attention,)

    def layout(self, m):
        return m.proj, -1, m.head_dim


@register_attention_family
class _EfficientFormerV2(AttentionFamily):
    """EfficientFormer v2 `Attention2d` / `Attention2dDownsample` on [B, C, H, W].

    The maps are the softmax outputs; the module then mixes them across heads (`talking_head2`, a 1x1
    convolution) before applying them to v, so head h's output draws on every head's map; its slice at the
    projection input also holds its channels of the local value branch (`v_local`). Strided queries
    / keys (a stride-2 3x3 convolution or pooling) sit at the input token their kernel centres on."""

    key, name = "EfficientFormerV2", "EfficientFormer v2 (timm efficientformer_v2.Attention2d, Attention2dDownsample)"
    types = (efficientformer_v2.Attention2d, efficientformer_v2.Attention2dDownsample)

    def layout(self, m):
        return m.proj, 1, m.d

    def positions(self, m, parent, x, image_hw, model):
        grid = _centres(*x.shape[-2:], image_hw)
        if isinstance(m, efficientformer_v2.Attention2dDownsample):
            return _flat(grid[::2, ::2]), _flat(grid)
        if m.stride_conv is not None:
            s = m.stride_conv.conv.stride[0]
            grid = grid[::s, ::s]
        return _flat(grid), _flat(grid)


@register_attention_family
class _FastViT(AttentionFamily):
    """FastViT's global attention stages (`fastvit.Attention` on [B, C, H, W], projection on tokens)."""

    key, name, types = "FastViT", "FastViT (timm fastvit.Attention)", (fastvit.Attention,)

    def layout(self, m):
        return m.proj, -1, m.head_dim

    def positions(self, m, parent, x, image_hw, model):
        pos = _flat(_centres(*x.shape[-2:], image_hw))
        return pos, pos


@register_attention_family
class _MaxxViT(AttentionFamily):
    """MaxViT / MaxxViT / CoAtNet (timm maxxvit): block (window) and grid partition attention, channels-last
    (`AttentionCl`) or channels-first (`Attention2d`), and CoAtNet's global `Attention2d`. A grid window
    holds tokens strided across the whole feature map."""

    key, name = "MaxxViT", "MaxViT/MaxxViT/CoAtNet (timm maxxvit.AttentionCl, Attention2d)"
    types = (maxxvit.AttentionCl, maxxvit.Attention2d)

    def layout(self, m):
        return m.proj, -1 if isinstance(m, maxxvit.AttentionCl) else 1, m.dim_head

    def positions(self, m, parent, x, image_hw, model):
        if isinstance(parent, maxxvit.TransformerBlock2d):  # global attention on [B, C, H, W]
            pos = _flat(_centres(*x.shape[-2:], image_hw))
            return pos, pos
        grid = _stage_centres(model, parent, image_hw)
        if isinstance(parent, maxxvit.ParallelPartitionAttention):
            block = m is parent.attn_block
        else:
            block = parent.partition_block
        pos = _partitioned(grid, maxxvit.window_partition if block else maxxvit.grid_partition, parent.partition_size)
        return pos, pos


@register_attention_family
class _SwinV2(AttentionFamily):
    """Swin v2 (cosine attention, continuous position bias) and Swin v2 CR: shifted windows as in Swin."""

    key, name = "Swin v2", "Swin v2 (timm swin_transformer_v2.WindowAttention, swin_transformer_v2_cr)"
    types = (swin_transformer_v2.WindowAttention, swin_transformer_v2_cr.WindowMultiHeadAttention)

    def layout(self, m):
        return m.proj, -1, m.proj.in_features // m.num_heads

    def positions(self, m, parent, x, image_hw, model):
        pos = _windows(_stage_centres(model, parent, image_hw), tuple(parent.window_size), tuple(parent.shift_size))
        return pos, pos


@register_attention_family
class _MobileViT(AttentionFamily):
    """MobileViT (v1): timm's `Attention` inside a `MobileVitBlock`, over the patches that share a pixel
    offset: one window per offset (patch_h * patch_w windows per image). A feature map whose side is no
    multiple of the patch is resized to one by the block (bilinear): positions are then the resized grid's."""

    key, name, types = "MobileViT", "MobileViT (timm Attention in mobilevit.MobileVitBlock)", (TimmAttention,)

    def reads(self, m, ancestors):
        return isinstance(m, self.types) and any(isinstance(a, mobilevit.MobileVitBlock) for a in ancestors)

    def layout(self, m):
        return m.proj, -1, m.head_dim

    def positions(self, m, parent, x, image_hw, model):
        block = next(b for b in model.modules()
                     if isinstance(b, mobilevit.MobileVitBlock) and any(a is m for a in b.modules()))
        (ph, pw), n = block.patch_size, x.shape[1]
        # the patch grid: the image over a power-of-two reduction, in patches, that holds n patches
        grids = [(math.ceil(math.ceil(image_hw[0] / 2 ** i) / ph), math.ceil(math.ceil(image_hw[1] / 2 ** i) / pw))
                 for i in range(8)]
        nh, nw = next((g for g in grids if g[0] * g[1] == n), (0, 0))
        if nh == 0:  # no grid of the image's aspect holds n patches: unplaced
            return (torch.full((ph * pw, n, 2), float("nan")),) * 2
        grid = _centres(nh * ph, nw * pw, image_hw)  # as the block unfolds: [P, N] with P the offset in a patch
        pos = grid.reshape(nh, ph, nw, pw, 2).permute(1, 3, 0, 2, 4).reshape(ph * pw, nh * nw, 2)
        return pos, pos


@register_attention_family
class _NextViT(AttentionFamily):
    """NextViT's `EfficientAttention`: keys and values average sr^2 consecutive tokens of the raster order
    (1-d pooling, which can span rows); a key sits at the centroid of the tokens it averages."""

    key, name, types = "NextViT", "NextViT (timm nextvit.EfficientAttention)", (nextvit.EfficientAttention,)

    def layout(self, m):
        return m.proj, -1, m.head_dim

    def positions(self, m, parent, x, image_hw, model):
        H, W = _feature_hw(model, m, image_hw)
        q = _flat(_centres(H, W, image_hw))
        if q.shape[1] != x.shape[1]:
            raise RuntimeError(f"NextViT: {x.shape[1]} tokens at a {H} x {W} feature map")
        k = m.sr(q.transpose(1, 2)).transpose(1, 2) if m.sr is not None else q
        return q, k


@register_attention_family
class _GCViT(AttentionFamily):
    """GCViT: local window attention, and global blocks whose queries come from the whole feature map pooled
    to one window (stride-2 pools: a global query sits at the feature token its pooling centres on)."""

    key, name, types = "GCViT", "GCViT (timm gcvit.WindowAttentionGlobal)", (gcvit.WindowAttentionGlobal,)

    def layout(self, m):
        return m.proj, -1, m.head_dim

    def positions(self, m, parent, x, image_hw, model):
        H, W = _feature_hw(model, parent, image_hw)
        grid = _centres(H, W, image_hw)
        k = _partitioned(grid, gcvit.window_partition, m.window_size)
        if not m.use_global:
            return k, k
        q = _flat(grid[::H // m.window_size[0], ::W // m.window_size[1]]).expand(k.shape[0], -1, -1)
        return q, k


@register_attention_family
class _DaViT(AttentionFamily):
    """DaViT's spatial window attention (windows padded bottom/right). Its channel attention blocks (a
    softmax over channels) are no token maps and are not read."""

    key, name, types = "DaViT", "DaViT (timm davit.WindowAttention)", (davit.WindowAttention,)

    def layout(self, m):
        return m.proj, -1, m.dim // m.num_heads

    def positions(self, m, parent, x, image_hw, model):
        pos = _windows(_stage_centres(model, parent, image_hw), tuple(parent.window_size))
        return pos, pos


class _FoldedHeads(AttentionFamily):
    """timm's ByobNet self-attention layers on [B, C, H, W] (BotNet, HaloNet): heads folded into the batch,
    2-d relative-position logits, and no output projection. Head h's output is channels
    [h * dim_head_v, (h + 1) * dim_head_v) of the module's output, the input of its `pool` (identity, or the
    stride-2 average pool of a downsampling block; per channel, so it keeps the slices): head ablation hooks it."""

    heads_in_batch = True

    def layout(self, m):
        return m.pool, 1, m.dim_head_v


@register_attention_family
class _BotNet(_FoldedHeads):
    """BotNet: global attention over the block's feature map (a stride-2 block pools its output, not q)."""

    key, name, types = "BotNet", "BotNet (timm layers.BottleneckAttn)", (BottleneckAttn,)

    def positions(self, m, parent, x, image_hw, model):
        pos = _flat(_centres(*x.shape[-2:], image_hw))
        return pos, pos


@register_attention_family
class _HaloNet(_FoldedHeads):
    """HaloNet: each block of block_size^2 queries attends the (block_size + 2 * halo)^2 window around it, of
    the zero-padded map (padding takes part in the softmax unmasked: NaN positions); one window per block. A
    stride-2 layer takes every other token as a query (a 1 x 1 conv of stride 2), or pools its output."""

    key, name, types = "HaloNet", "HaloNet (timm layers.HaloAttn)", (HaloAttn,)
    window_dim = 2  # maps are [B, heads, blocks, N, M]

    def positions(self, m, parent, x, image_hw, model):
        grid = _centres(*x.shape[-2:], image_hw)
        s, halo, win = m.block_stride, m.halo_size, m.win_size
        q = _windows(grid[::s, ::s], m.block_size_ds)
        padded = F.pad(grid.permute(2, 0, 1), (halo,) * 4, value=float("nan"))
        k = padded.unfold(1, win, m.block_size).unfold(2, win, m.block_size)  # as the module unfolds k and v
        return q, k.permute(1, 2, 3, 4, 0).reshape(-1, win * win, 2)


@register_attention_family
class _IFormer(AttentionFamily):
    """iFormer's single-head modulation attention on [B, C, H, W]: global, or in windows of the map zero-padded
    bottom/right (padding unmasked: NaN positions); its output is gated before the projection."""

    key, name, types = "iFormer", "iFormer (timm iformer.SHMA)", (iformer.SHMA,)

    def num_heads(self, m):
        return 1

    def layout(self, m):
        return m.proj, 1, m.proj.c.in_channels

    def positions(self, m, parent, x, image_hw, model):
        grid = _centres(*x.shape[-2:], image_hw)
        pos = _windows(grid, m.window_size) if m.window_size else _flat(grid)
        return pos, pos


def _strided(grid: torch.Tensor, s: int, pooled: bool) -> torch.Tensor:
    """Tokens of a stride-`s` reduction of a [H, W, 2] grid: at every s-th token (a padded k x k conv centred on
    it), or at the centre of each s x s block (`pooled`: average pooling of kernel s)."""
    if s == 1:
        return grid
    if not pooled:
        return grid[::s, ::s]
    h, w = grid.shape[0] // s, grid.shape[1] // s
    return grid[:h * s, :w * s].reshape(h, s, w, s, 2).mean((1, 3))


@register_attention_family
class _MobileAttention(AttentionFamily):
    """MobileNetV4 / V5 hybrids (timm layers.attention2d): multi-query attention, one key and value head shared by
    every query head, keys and values from a depthwise stride-`kv_stride` conv (at every kv_stride-th token),
    queries optionally average-pooled (and the output upsampled back); and plain multi-head `Attention2d`."""

    key, name = "MobileNetV4 attention", "MobileNetV4/V5 attention (timm layers.MultiQueryAttention2d, Attention2d)"
    types = (MultiQueryAttention2d, Attention2d)

    def layout(self, m):
        if isinstance(m, Attention2d):
            return m.proj, 1, m.dim_head
        return m.output, 1, m.value_dim  # before the upsampling (per channel) and the projection

    def positions(self, m, parent, x, image_hw, model):
        grid = _centres(*x.shape[-2:], image_hw)
        if isinstance(m, Attention2d):
            return _flat(grid), _flat(grid)
        return _flat(_strided(grid, m.query_strides[0], True)), _flat(_strided(grid, m.kv_stride, False))


@register_attention_family
class _LowFormer(AttentionFamily):
    """LowFormer's `ConvAttention`: q, k and v from a depthwise stride-`att_stride` conv (padded, so a token sits
    at every att_stride-th input token), attention on that reduced map, output upsampled back."""

    key, name, types = "LowFormer", "LowFormer (timm lowformer.ConvAttention)", (lowformer.ConvAttention,)

    def layout(self, m):
        return m.o_proj, 1, m.head_dim

    def positions(self, m, parent, x, image_hw, model):
        pos = _flat(_strided(_centres(*x.shape[-2:], image_hw), m.att_stride, False))
        return pos, pos


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
