"""Attention pooling families of timm (heads that pool a feature map or a token sequence with attention),
registered on import.

Read: CLIP-style `AttentionPool2d` / `RotAttentionPool2d` (ResNet CLIP heads: every token, the mean or class token
first, attends every token; the head keeps the first token's output), the PRR pool (`global_pool='prr'`:
parameter-free self-attention over the tokens before pooling) and SimPool (one query, the tokens' mean, per head).
Refused (`families._REFUSED`): GCNet's global context block, whose softmax over positions is one
query-independent weighting per image. `AttentionPoolLatent` (`global_pool='map'`) is read in `_families_vit`.
"""
from __future__ import annotations

import torch
from timm.layers import AttentionPool2d, AttentionPoolPrr, GlobalContext, RotAttentionPool2d, SimPool1d, SimPool2d

from ..core.errors import not_a_command
from ._families_vit import _nan, _Tokens
from .families import _REFUSED, AttentionFamily, _grid, _sequence_positions, register_attention_family

__all__: list[str] = []  # registers families; nothing to import by name

_REFUSED[GlobalContext] = ("is global context pooling (GCNet): one query-independent softmax over positions per "
                           "image (a 1x1 conv's score per token), no map per query")


def _map_positions(x: torch.Tensor, image_hw) -> torch.Tensor:
    """[1, H * W, 2] centres of the tokens of a [B, C, H, W] map spanning the image, raster order."""
    h, w = x.shape[-2:]
    return _grid(h, w, image_hw[0] / h, image_hw[1] / w).reshape(1, -1, 2)


@register_attention_family
class _ClipPool(AttentionFamily):
    """CLIP's attention pooling on [B, C, H, W] (learned or rotary position embeddings): the tokens' mean (or a class
    token) is prepended, and every token attends every token, [B, heads, 1 + HW, 1 + HW]; the first token has no
    position. Heads are the first channels of `proj`'s input (an identity where the head has no projection)."""

    key, name = "CLIP attention pool", "CLIP attention pool (timm layers.AttentionPool2d, RotAttentionPool2d)"
    types = (AttentionPool2d, RotAttentionPool2d)

    def layout(self, m):
        return m.proj, -1, m.head_dim

    def positions(self, m, parent, x, image_hw, model):
        pos = torch.cat([_nan(1), _map_positions(x, image_hw)], 1)
        return pos, pos


@register_attention_family
class _PrrPool(_Tokens):
    """PRR attention pool (Locality-Attending ViT): q = k = v = the tokens split into heads, no projections; heads are
    slices of the input of its `post_norm` (an identity, or a norm)."""

    key, name, types = "PRR pool", "PRR attention pool (timm layers.AttentionPoolPrr)", (AttentionPoolPrr,)

    def layout(self, m):
        return m.post_norm, -1, m.head_dim


@register_attention_family
class _SimPool(AttentionFamily):
    """SimPool: one query per head, projected from the mean of the tokens (no position), over every token, [B,
    heads, 1, N]. It has no output projection: the heads' outputs are its output."""

    key, name, types = "SimPool", "SimPool (timm layers.SimPool1d, SimPool2d)", (SimPool1d, SimPool2d)
    unsliced_heads = "SimPool has no output projection: its heads' outputs are its output, which none of its modules takes in"

    def layout(self, m):
        return m, -1, m.head_dim  # no module takes the heads' outputs; `unsliced_heads` keeps this unhooked

    def positions(self, m, parent, x, image_hw, model):
        if isinstance(m, SimPool2d):
            return _nan(1), _map_positions(x, image_hw)
        return _nan(1), _sequence_positions(x.shape[1], image_hw, model)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
