"""Attention families of timm's plain and pyramid ViTs beyond the papers' models (BEiT, EVA, CaiT, PVT-v2,
Twins, CrossViT, MViTv2, Hiera, SAM2 HieraDet, NesT, TNT, SAM ViT, VOLO, Gemma 4, ...), registered on import;
XCiT is refused (`families._REFUSED`).

DeiT3, ViTamin and PiT use `timm.layers.Attention` (the built-in ViT/DeiT family); CrossViT's blocks do
too, its cross-attention is `_ClassAttention` here. Token positions are cells of an even tiling of the
image (stride = image / grid, `families._sequence_positions`): within a stride of the receptive-field
centre of an overlapping patch embedding (PVT-v2, MViTv2, Hiera); NaN for class / register tokens.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import AttentionPoolLatent, AttentionRope
from timm.layers.diff_attention import DiffAttention
from timm.models import gemma4_vit, volo
from timm.models.beit import Attention as BeitAttention
from timm.models.cait import ClassAttn, TalkingHeadAttn
from timm.models.crossvit import CrossAttention
from timm.models.eva import EvaAttention
from timm.models.hiera import Hiera, MaskUnitAttention
from timm.models.hieradet_sam2 import MultiScaleAttention as HieraDetAttention
from timm.models.mvitv2 import MultiScaleAttention, MultiScaleAttentionPoolFirst
from timm.models.nest import Attention as NestAttention
from timm.models.pvt_v2 import Attention as PvtAttention
from timm.models.vision_transformer_sam import Attention as SamAttention
from timm.models.tnt import Attention as TntAttention
from timm.models.twins import GlobalSubSampleAttn, LocallyGroupedAttn
from timm.models.vision_transformer_relpos import RelPosAttention
from timm.models.vision_transformer import DiffParallelScalingBlock, ParallelScalingBlock
from timm.models.visformer import Attention as VisformerAttention
from timm.models.xcit import XCA

from ..core.errors import not_a_command
from .families import (_REFUSED, AttentionFamily, _ViT, _grid, _sequence_positions, _token_grid, _windows,
                       register_attention_family)

__all__: list[str] = []  # registers families; nothing to import by name

_REFUSED[XCA] = ("is cross-covariance attention (XCiT): its softmax runs over channels, a "
                 "(channels / heads)^2 map per head, not over tokens")
for _diff in (DiffAttention, DiffParallelScalingBlock):
    _REFUSED[_diff] = ("is differential attention: the weights applied to v are the difference of two softmaxes "
                       "(the second scaled by a learned lambda), no softmax map")


def _nan(n: int) -> torch.Tensor:
    return torch.full((1, n, 2), float("nan"))


def _feature_grid(n: int, image_hw) -> tuple[int, int]:
    """(h, w) of a feature map of `n` tokens with the image's aspect (the modules take it as an argument)."""
    found = _token_grid(n, image_hw)
    if found is None or found[0]:
        raise RuntimeError(f"{n} tokens are no grid of an image of {image_hw}")
    return found[1:]


def _pooled_centres(n_in: int, n_out: int, stride: float) -> torch.Tensor:
    """Centres (input pixels) of `AdaptiveAvgPool` bins n_in -> n_out over tokens of `stride` pixels."""
    i = torch.arange(n_out)
    start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
    return (start + end).float() / 2 * stride


class _Tokens(_ViT):
    """Self-attention over one token sequence [B, N, C]: prefix tokens, then the patch grid (the ViT
    family's positions), for modules without a `head_dim`."""

    def layout(self, m):
        return m.proj, -1, m.proj.in_features // self.num_heads(m)


@register_attention_family
class _ParallelBlock(_Tokens):
    """ViT parallel blocks (`vit_*_xp_*`, `vit_pwee_*`): attention and MLP share one block and one input
    projection; heads are the first channels of the (fused or attention-only) output projection's input."""

    key, name, types = "ViT parallel block", "ViT parallel block (timm vision_transformer.ParallelScalingBlock)", \
        (ParallelScalingBlock,)

    def layout(self, m):
        return (m.out_proj if m.out_proj is not None else m.attn_out_proj), -1, m.head_dim


@register_attention_family
class _Beit(_Tokens):
    key, name, types = "BEiT", "BEiT (timm beit.Attention)", (BeitAttention,)


@register_attention_family
class _Eva(_Tokens):
    """EVA / EVA-02 and timm's RoPE ViTs: rotary embeddings rotate q and k before the softmax."""

    key, name, types = "EVA", "EVA, EVA-02, RoPE ViT (timm eva.EvaAttention, layers.AttentionRope)", \
        (EvaAttention, AttentionRope)


@register_attention_family
class _Gemma4(_Tokens):
    """Gemma 4's vision encoder: RMS-normed q, k and v, 2-d RoPE, no scaling; grouped key heads are repeated to the
    query heads before the softmax, so each query head has its map. Positions: the patch grid (no prefix tokens)."""

    key, name, types = "Gemma 4 ViT", "Gemma 4 ViT (timm gemma4_vit.Gemma4Attention)", (gemma4_vit.Gemma4Attention,)

    def layout(self, m):
        return m.o_proj.linear, -1, m.head_dim  # inside the clippable projection, after its optional input clamp


@register_attention_family
class _RelPos(_Tokens):
    key, name, types = "ViT relpos", "ViT relpos (timm vision_transformer_relpos.RelPosAttention)", \
        (RelPosAttention,)


@register_attention_family
class _TalkingHeads(_Tokens):
    """CaiT's self-attention blocks (patch tokens only). Talking heads mix the heads before the softmax
    (`proj_l`) and after it (`proj_w`): the maps are the softmax's, so head h of a map is the h-th mixture
    of the logits, and the weights applied to v are `proj_w` mixtures of these maps (not a softmax); the
    ablation's head h is the h-th output of `proj_w`, not map h."""

    key, name, types = "CaiT talking heads", "CaiT talking heads (timm cait.TalkingHeadAttn)", (TalkingHeadAttn,)


@register_attention_family
class _ClassAttention(_Tokens):
    """One query, the class token, over [class token, patch tokens]: CaiT's class attention, and
    CrossViT's cross-attention (a branch's class token over the other branch's patch tokens)."""

    key, name = "class attention", "class attention (timm cait.ClassAttn, crossvit.CrossAttention, volo.ClassAttention)"
    types = (ClassAttn, CrossAttention, volo.ClassAttention)

    def positions(self, m, parent, x, image_hw, model):
        return _nan(1), _sequence_positions(x.shape[1], image_hw, model)


@register_attention_family
class _AttentionPool(_Tokens):
    """Attention pooling (`global_pool='map'`: SigLIP-style heads): learned latent queries, no position."""

    key, name, types = "attention pool", "attention pool (timm layers.AttentionPoolLatent)", (AttentionPoolLatent,)

    def positions(self, m, parent, x, image_hw, model):
        return _nan(m.latent_len), _sequence_positions(x.shape[1], image_hw, model)


@register_attention_family
class _Visformer(AttentionFamily):
    """Visformer's attention on [B, C, H, W] feature maps (1 x 1 conv projections)."""

    key, name, types = "Visformer", "Visformer (timm visformer.Attention)", (VisformerAttention,)

    def layout(self, m):
        return m.proj, 1, m.head_dim

    def positions(self, m, parent, x, image_hw, model):
        h, w = x.shape[-2:]
        pos = _grid(h, w, image_hw[0] / h, image_hw[1] / w).reshape(1, -1, 2)
        return pos, pos


@register_attention_family
class _Tnt(_Tokens):
    """TNT: the outer attention over patch tokens, the inner one over the pixel tokens of each patch
    (one window per patch, [B * patches, heads, pixels, pixels])."""

    key, name, types = "TNT", "TNT (timm tnt.Attention, inner and outer)", (TntAttention,)

    def positions(self, m, parent, x, image_hw, model):
        if m is not getattr(parent, "attn_in", None):
            return super().positions(m, parent, x, image_hw, model)
        (gh, gw), (ph, pw) = model.pixel_embed.grid_size, model.pixel_embed.new_patch_size
        pos = _windows(_grid(gh * ph, gw * pw, image_hw[0] / (gh * ph), image_hw[1] / (gw * pw)), (ph, pw))
        return pos, pos


class _SpatialReduction(_Tokens):
    """Queries on the stage's grid; keys and values from it reduced by a conv of kernel = stride = `sr`
    (a key sits at the centre of its sr x sr block) or, PVT-v2 `linear`, an adaptive 7 x 7 average pool."""

    def positions(self, m, parent, x, image_hw, model):
        h, w = _feature_grid(x.shape[1], image_hw)
        sy, sx = image_hw[0] / h, image_hw[1] / w
        q = _grid(h, w, sy, sx)
        if getattr(m, "pool", None) is not None:
            n = m.pool.output_size if isinstance(m.pool.output_size, int) else m.pool.output_size[0]
            ys, xs = _pooled_centres(h, n, sy), _pooled_centres(w, n, sx)
            k = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), -1)
        elif getattr(m, "sr", None) is not None:
            r = m.sr.stride[0]
            k = _grid(h // r, w // r, sy * r, sx * r)
        else:
            k = q
        return q.reshape(1, -1, 2), k.reshape(1, -1, 2)


@register_attention_family
class _Pvt(_SpatialReduction):
    key, name, types = "PVT-v2", "PVT-v2 (timm pvt_v2.Attention)", (PvtAttention,)


@register_attention_family
class _TwinsGlobal(_SpatialReduction):
    key, name, types = "Twins global", "Twins global sub-sampled (timm twins.GlobalSubSampleAttn)", \
        (GlobalSubSampleAttn,)


@register_attention_family
class _TwinsLocal(_Tokens):
    """Twins' locally grouped attention: ws x ws windows of the zero-padded grid; padded tokens take part
    in the softmax (timm pads without a mask) and have NaN positions."""

    key, name, types = "Twins local", "Twins locally grouped (timm twins.LocallyGroupedAttn)", (LocallyGroupedAttn,)

    def positions(self, m, parent, x, image_hw, model):
        h, w = _feature_grid(x.shape[1], image_hw)
        pos = _windows(_grid(h, w, image_hw[0] / h, image_hw[1] / w), m.ws)
        return pos, pos


def _stride(pool) -> int:
    if pool is None:
        return 1
    s = pool.stride
    return s if isinstance(s, int) else s[0]


@register_attention_family
class _MViT(_Tokens):
    """MViTv2: q and k/v pooled (odd kernel, padding kernel // 2, so a pooled token sits on the input token
    stride * i); the class token (`mvitv2_*_cls`) is kept apart from pooling."""

    key, name, types = "MViTv2", "MViTv2 (timm mvitv2.MultiScaleAttention, PoolFirst)", \
        (MultiScaleAttention, MultiScaleAttentionPoolFirst)

    def layout(self, m):
        return m.proj, -1, m.head_dim

    def positions(self, m, parent, x, image_hw, model):
        cls = int(m.has_cls_token)
        h, w = _feature_grid(x.shape[1] - cls, image_hw)
        g = _grid(h, w, image_hw[0] / h, image_hw[1] / w)
        sq, sk = _stride(m.pool_q), _stride(m.pool_k)
        q, k = g[::sq, ::sq].reshape(-1, 2), g[::sk, ::sk].reshape(-1, 2)
        return (torch.cat([_nan(cls)[0], q])[None], torch.cat([_nan(cls)[0], k])[None])


@register_attention_family
class _Hiera(_Tokens):
    """Hiera: tokens in Hiera's unrolled order; a max-pooled token (q pooling, stage transitions) sits at
    the centre of the tokens it pools. Mask-unit attention gives one map per mask unit (window)."""

    key, name, types = "Hiera", "Hiera (timm hiera.MaskUnitAttention)", (MaskUnitAttention,)
    window_dim = 2  # mask-unit maps are [B, heads, units, N, M]

    def num_heads(self, m):
        return m.heads

    def positions(self, m, parent, x, image_hw, model):
        if not isinstance(model, Hiera):
            raise RuntimeError("Hiera attention positions need the Hiera model")
        h, w = model.unroll.size
        pos = model.unroll(_grid(h, w, image_hw[0] / h, image_hw[1] / w).reshape(1, -1, 2))[0]
        while pos.shape[0] > x.shape[1]:  # the stage transitions before this block
            pos = pos.view(math.prod(model.q_stride), -1, 2).mean(0)
        units = x.shape[1] // (m.q_stride * m.window_size) if m.use_mask_unit_attn else 1
        k = pos.view(-1, units, 2).transpose(0, 1)  # token t of unit u is row t * units + u
        q = k.reshape(units, m.q_stride, -1, 2).mean(1)
        return q, k


@register_attention_family
class _Sam(AttentionFamily):
    """SAM ViT (ViTDet backbone, timm vision_transformer_sam) on [B, H, W, C]: global blocks, and window blocks
    whose windows tile the zero-padded map (padding takes part in the softmax unmasked: NaN positions);
    decomposed relative-position bias. Heads are folded into the batch ([B * windows * heads, N, N])."""

    key, name, types = "SAM ViT", "SAM ViT (timm vision_transformer_sam.Attention)", (SamAttention,)
    heads_in_batch = True

    def layout(self, m):
        return m.proj, -1, m.head_dim

    def positions(self, m, parent, x, image_hw, model):
        if not getattr(parent, "window_size", 0):  # a global block sees the whole map
            h, w = x.shape[1:3]
            pos = _grid(h, w, image_hw[0] / h, image_hw[1] / w).reshape(1, -1, 2)
            return pos, pos
        ph, pw = model.patch_embed.patch_size  # the block's input is partitioned: the map is the patch grid
        h, w = image_hw[0] // ph, image_hw[1] // pw
        pos = _windows(_grid(h, w, image_hw[0] / h, image_hw[1] / w), parent.window_size)
        return pos, pos


@register_attention_family
class _Nest(_Tokens):
    """NesT: attention within each block of the level's grid (blocks in raster order, [B, heads, blocks, N, N]).
    Its heads are interleaved at the projection input (channel d * heads + h), which a head slice cannot
    describe: the maps are read, head ablation is refused."""

    key, name, types = "NesT", "NesT (timm nest.Attention)", (NestAttention,)
    window_dim = 2
    unsliced_heads = "NesT interleaves its heads' channels at the projection input (channel d * heads + h)"

    def positions(self, m, parent, x, image_hw, model):
        blocks, n = x.shape[1:3]
        side, bs = math.isqrt(blocks) * math.isqrt(n), math.isqrt(n)
        pos = _windows(_grid(side, side, image_hw[0] / side, image_hw[1] / side), bs)
        return pos, pos


@register_attention_family
class _HieraDet(_Tokens):
    """SAM2's HieraDet on [B, H, W, C]: window blocks (zero-padded bottom/right, padding unmasked: NaN
    positions) and global blocks; a stage's first block max-pools its queries (q_stride), so a query sits at
    the centre of the tokens it pools. The block's map size follows from the patch embedding (4 px, padded
    conv: ceil) and the q-pooling blocks before it (floor)."""

    key, name, types = "HieraDet", "SAM2 HieraDet (timm hieradet_sam2.MultiScaleAttention)", (HieraDetAttention,)

    def positions(self, m, parent, x, image_hw, model):
        index = next(i for i, b in enumerate(model.blocks) if b is parent)
        r = model.feature_info[0]["reduction"]
        h, w = math.ceil(image_hw[0] / r), math.ceil(image_hw[1] / r)
        for b in list(model.blocks)[:index]:
            if b.q_stride:
                h, w = h // b.q_stride[0], w // b.q_stride[1]
        grid = _grid(h, w, image_hw[0] / h, image_hw[1] / w)
        ws = tuple(parent.window_size) if parent.is_windowed else (h, w)
        k = _windows(grid, ws)
        if not parent.q_stride:
            return k, k
        (sh, sw), (wh, ww) = parent.q_stride, ws
        q = k.view(-1, wh // sh, sh, ww // sw, sw, 2).mean((2, 4)).flatten(1, 2)
        return q, k


@register_attention_family
class _Volo(_Tokens):
    """VOLO: global attention on [B, H, W, C], and outlook attention, whose maps a linear layer predicts from each
    (pooled) position: k^2 x k^2 weights among the k x k tokens around it (one window per position, the map
    zero-padded: NaN positions), the outputs folded back (summed where windows overlap)."""

    key, name, types = "VOLO", "VOLO (timm volo.OutlookAttention, volo.Attention)", \
        (volo.OutlookAttention, volo.Attention)
    window_dim = 2  # outlook maps are [B, heads, positions, k^2, k^2]

    def positions(self, m, parent, x, image_hw, model):
        h, w = x.shape[1:3]
        grid = _grid(h, w, image_hw[0] / h, image_hw[1] / w).permute(2, 0, 1)
        if isinstance(m, volo.Attention):
            return (grid.flatten(1).T[None],) * 2
        k, p = m.kernel_size, m.padding
        padded = F.pad(grid, (p, p, p, p), value=float("nan"))[None]
        pos = F.unfold(padded, k, stride=m.stride).view(2, k * k, -1).permute(2, 1, 0)  # [positions, k^2, 2]
        return pos, pos


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
