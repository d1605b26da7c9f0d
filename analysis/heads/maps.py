"""Per-image attention maps: where one query token attends, head by head, and attention rollout.

    layer = select_layer(model, -1)                               # by index or name; default: the last
    qm = query_attention(model, images, layer.name, query_yx=(112, 112))
    qm.maps                                                       # [B, heads, gh, gw] on the key grid
    ro = attention_rollout(model, images)                         # Abnar & Zuidema 2020
    ro.maps                                                       # [B, gh, gw]: what the class token reads

Attention rollout (Abnar & Zuidema, "Quantifying attention flow in transformers", ACL 2020):
per layer, average the heads, add the identity (the residual path) and renormalise the rows,
then multiply the layers: R = A'_L ... A'_1. The rollout map is R's row of the class token (of
the mean over all tokens when the model has no class token, as average pooling reads them),
over the patch tokens. It needs every attention layer to mix one and the same token set, so it
is defined for isotropic ViT-like models (timm ViT / DeiT) only: windowed attention (Swin,
EfficientViT) or token grids that change between stages (LeViT, SHViT, Swin) are a
`UserError` that says so, rather than a product of matrices over different tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pandas as pd
import torch
import torch.nn as nn

from ..core.errors import UserError, not_a_command
from .attention import AttentionCapture, AttentionMaps
from .layers import AttentionLayer, attention_layers

__all__ = ["select_layer", "query_attention", "QueryMaps", "attention_rollout", "Rollout"]


def select_layer(model: nn.Module, layer: Optional[int | str] = None) -> AttentionLayer:
    """The attention layer `layer` of `model`: its number among the attention layers counted from 1 (the
    tables' `layer_index`; negative from the end), its name, or None for the last. An unknown one is a
    UserError naming the range."""
    layers = attention_layers(model)
    if layer is None:
        return layers[-1]
    text = str(layer).strip()
    if text.lstrip("-").isascii() and text.lstrip("-").isdigit():
        i = int(text)
        if 1 <= i <= len(layers):
            return layers[i - 1]
        if -len(layers) <= i <= -1:
            return layers[i]
    else:
        for candidate in layers:
            if candidate.name == text:
                return candidate
    raise UserError(f"no attention layer {text!r}: {type(model).__name__} has {len(layers)} (number 1..{len(layers)}"
                    f" or -{len(layers)}..-1; names {layers[0].name} ... {layers[-1].name})")


def _key_grid(pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ys, xs, valid) of key positions [..., 2]: the sorted distinct centres, and which tokens have one."""
    valid = ~pos.isnan().any(-1)
    return pos[..., 0][valid].unique(), pos[..., 1][valid].unique(), valid


@dataclass
class QueryMaps:
    """Attention of one query token over the layer's key grid.

    `maps` is [B, len(heads), len(ys), len(xs)]: the weight each key token (at pixel centre
    (ys[i], xs[j])) gets from the query token nearest to `query_yx`; keys without a position
    (class token) are left out, keys outside the query's window are 0.
    """

    layer: str
    heads: list[int]
    query_yx: tuple[float, float]
    maps: torch.Tensor
    ys: torch.Tensor
    xs: torch.Tensor

    def to_frame(self, image: int = 0) -> pd.DataFrame:
        """Tidy table of image `image`: one row per head x key token (head, row, col, weight)."""
        _, gh, gw = self.maps[image].shape
        rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        return pd.DataFrame({"head": [h for h in self.heads for _ in range(gh * gw)],
                             "row": rows.flatten().repeat(len(self.heads)).numpy(),
                             "col": cols.flatten().repeat(len(self.heads)).numpy(),
                             "weight": self.maps[image].flatten().numpy()})


@torch.inference_mode()
def query_attention(model: nn.Module, images: torch.Tensor, layer: str, query_yx: tuple[float, float],
                    heads: Optional[Sequence[int]] = None) -> QueryMaps:
    """Per-head attention of the token at pixel `query_yx` (y, x) of `images`, on the key grid."""
    with AttentionCapture(model, layers=[layer]) as cap:
        model(images)
    rec = cap.maps[0]
    heads = list(range(rec.num_heads)) if heads is None else list(heads)
    q, k = rec.query_pos.cpu(), rec.key_pos.cpu()
    target = torch.tensor(query_yx, dtype=torch.float32)
    dist = (q - target).norm(dim=-1).nan_to_num(float("inf"))   # [W, N]
    w, n = divmod(int(dist.argmin()), dist.shape[1])
    ys, xs, valid = _key_grid(k)
    kw, ok = k[w], valid[w]
    iy, ix = torch.searchsorted(ys, kw[ok, 0]), torch.searchsorted(xs, kw[ok, 1])
    attn = rec.attn.float().cpu().view(rec.batch_size, rec.windows, rec.num_heads, *rec.attn.shape[-2:])
    rows = attn[:, w][:, heads, n][..., ok]                      # [B, heads, valid keys]
    maps = torch.zeros(rec.batch_size, len(heads), len(ys), len(xs))
    maps[:, :, iy, ix] = rows
    return QueryMaps(layer=layer, heads=heads, query_yx=tuple(q[w, n].tolist()), maps=maps, ys=ys, xs=xs)


@dataclass
class Rollout:
    """Attention rollout of a batch (see the module docstring).

    `maps` is [B, len(ys), len(xs)]: the rolled-out weight of each patch token (pixel centre
    (ys[i], xs[j])) in the `source` row ("class token" or "mean over tokens"); `matrix` is the
    whole [B, N, N] product over `layers`, tokens in the model's order.
    """

    layers: list[str]
    source: str
    maps: torch.Tensor
    matrix: torch.Tensor
    ys: torch.Tensor
    xs: torch.Tensor

    def to_frame(self, image: int = 0) -> pd.DataFrame:
        """Tidy table of image `image`: one row per patch token (row, col, weight)."""
        gh, gw = self.maps[image].shape
        rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        return pd.DataFrame({"row": rows.flatten().numpy(), "col": cols.flatten().numpy(),
                             "weight": self.maps[image].flatten().numpy()})


def _check_one_token_set(model: nn.Module, records: list[AttentionMaps]) -> None:
    """UserError unless every layer attends over the same tokens, without windows."""
    name = type(model).__name__
    why = "attention rollout multiplies the layers' maps, so it needs every attention layer on one token set " \
          "(an isotropic ViT/DeiT)"
    for rec in records:
        if rec.windows > 1:
            raise UserError(f"{why}; {name} attends in windows ({rec.windows} per image in {rec.layer})")
    first = records[0]
    for rec in records:
        if (rec.attn.shape[-2:] != first.attn.shape[-2:] or rec.attn.shape[-2] != rec.attn.shape[-1]
                or not torch.equal(rec.key_pos.nan_to_num(-1), first.key_pos.nan_to_num(-1))):
            raise UserError(f"{why}; {name}'s token grid changes between layers ({first.layer}: "
                            f"{tuple(first.attn.shape[-2:])} query x key tokens, {rec.layer}: "
                            f"{tuple(rec.attn.shape[-2:])})")


@torch.inference_mode()
def attention_rollout(model: nn.Module, images: torch.Tensor) -> Rollout:
    """Attention rollout of `images` through every attention layer of `model` (see the module docstring)."""
    with AttentionCapture(model) as cap:
        model(images)
    records = cap.maps
    _check_one_token_set(model, records)
    n = records[0].attn.shape[-1]
    eye = torch.eye(n)
    matrix = eye.expand(records[0].batch_size, n, n)
    for rec in records:
        a = rec.attn.float().cpu().mean(1) + eye
        matrix = (a / a.sum(-1, keepdim=True)) @ matrix
    pos = records[0].key_pos[0].cpu()
    ys, xs, valid = _key_grid(pos)
    prefix = (~valid).nonzero().flatten()
    source, row = ("class token", matrix[:, prefix[0]]) if len(prefix) else ("mean over tokens", matrix.mean(1))
    maps = torch.zeros(matrix.shape[0], len(ys), len(xs))
    maps[:, torch.searchsorted(ys, pos[valid, 0]), torch.searchsorted(xs, pos[valid, 1])] = row[:, valid]
    return Rollout(layers=[r.layer for r in records], source=source, maps=maps, matrix=matrix, ys=ys, xs=xs)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
