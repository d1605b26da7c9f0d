"""Attention families: how to read one attention module type (heads, head layout, token positions),
and the registry that `attention_layers` / `AttentionCapture` consult.

A family has a stable `key` (a short identifier: the `family` of every layer and map it reads) and
a display `name`. The registry maps keys to families, as torch's `flop_registry` maps ops to formulas:

    register_attention_family(MyFamily())                # or @register_attention_family on the class
    register_attention_family(MyFamily(), replace=True)  # a key already registered is refused without it
    unregister_attention_family("my-key")
    AttentionCapture(model, families=[MyFamily()])       # this analysis only; the registry is untouched

Built in: timm ViT/DeiT `Attention`, Swin `WindowAttention`, LeViT `Attention` / `AttentionDownsample`,
EfficientViT-M `CascadedGroupAttention`, timm SHViT `SHSA` and the `shvit` mixers; timm's other families
register on import from `_families_vit` (plain and pyramid ViTs), `_families_hierarchical` (hybrid and windowed
models), `_families_conv` (attention inside convolutional models) and `_families_pooling` (attention pooling).
"""
from __future__ import annotations

from typing import Iterable, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Attention as TimmAttention
from timm.models.efficientvit_msra import CascadedGroupAttention, LocalWindowAttention
from timm.models.levit import Attention as LevitAttention
from timm.models.levit import AttentionDownsample as LevitAttentionDownsample
from timm.models.shvit import SHSA
from timm.models.swin_transformer import WindowAttention as SwinWindowAttention

from shvit.layers import MHSA, BottleneckSHSA

from ..core.errors import UserError, not_a_command

__all__ = ["AttentionFamily", "register_attention_family", "unregister_attention_family", "attention_family",
           "supported_families"]


class AttentionFamily:
    """How to read one attention module type: heads, head layout, token positions.

    `key` is the family's stable identifier (the registry's key, and the `family` of its layers and
    maps); `name` is for display. A family's module must compute its maps with a softmax
    (`torch.softmax`, `Tensor.softmax`, `F.softmax`) or `F.scaled_dot_product_attention`: the capture
    records those. Register an instance (or decorate the subclass) with `register_attention_family`,
    or pass it to one analysis: `AttentionCapture(model, families=[...])`. A family that reads only some
    modules of its types (timm's `Attention` inside MobileViT blocks) narrows `reads`.
    """

    key: str = ""
    name: str = ""
    types: tuple = ()
    # a module whose maps are 5-d (one batch of windows per image: Twins, Hiera) has its windows in this dim
    # ([B, windows, heads, N, M] by default; 2: [B, heads, windows, N, M]); the capture moves them into dim 0
    window_dim: int = 1
    # a module that folds its heads into the batch dim (maps [B * heads, N, M] or [B * heads, windows, N, M]:
    # SAM, BotNet, HaloNet) sets this; the capture first views its maps as [B, heads, ...]
    heads_in_batch: bool = False
    # the dim of the heads in a module's 4-d softmax maps where it is not 1 (MultiQueryAttentionV2: [B, N, heads, M]);
    # the capture moves them into dim 1
    heads_dim: int = 1
    # why the heads have no contiguous slice at the projection input (NesT interleaves them), if so: the maps
    # are read, while head ablation and head outputs are refused, saying this
    unsliced_heads: str = ""

    def reads(self, m: nn.Module, ancestors: tuple[nn.Module, ...]) -> bool:
        """Whether this family reads module `m`, given the modules enclosing it (outermost first)."""
        return isinstance(m, self.types)

    def num_heads(self, m: nn.Module) -> int:
        return m.num_heads

    def layout(self, m: nn.Module) -> tuple[nn.Module, int, int]:
        """(proj module, channel dim of its input, per-head value channels)."""
        raise NotImplementedError

    def positions(self, m: nn.Module, parent: Optional[nn.Module], x: torch.Tensor,
                  image_hw: tuple[int, int], model: nn.Module):
        """(query_pos, key_pos), each [windows, tokens, 2], for input `x` of the module."""
        raise NotImplementedError


FamilyLike = Union[AttentionFamily, type]
_REGISTRY: dict[str, AttentionFamily] = {}  # key -> family, in registration order
# module type -> why its weights are no softmax map over tokens (linear, cross-covariance attention):
# `attention_layers` refuses a model holding one that no family reads, in one line saying why
_REFUSED: dict[type, str] = {}


def _instance(family: FamilyLike) -> AttentionFamily:
    """An `AttentionFamily` instance (a subclass is instantiated) with a key and module types."""
    fam = family() if isinstance(family, type) else family
    if not isinstance(fam, AttentionFamily):
        raise TypeError(f"expected an AttentionFamily (instance or subclass), got {family!r}")
    if not (isinstance(fam.key, str) and fam.key) or not fam.types:
        raise ValueError(f"{type(fam).__name__} needs a non-empty `key` and `types`")
    return fam


def register_attention_family(family: Optional[FamilyLike] = None, *, replace: bool = False):
    """Make `AttentionCapture` (and everything built on it) read `family.types` modules the way `family` says.

    `family` is an `AttentionFamily` instance or subclass (instantiated); the argument is returned, so
    `@register_attention_family` decorates a subclass and `@register_attention_family(replace=True)` too.
    A key already registered raises `UserError` unless `replace=True`. A family registered later takes
    precedence for its types; a replaced one counts as registered now.
    """
    if family is None:
        return lambda f: register_attention_family(f, replace=replace)
    fam = _instance(family)
    if fam.key in _REGISTRY and not replace:
        raise UserError(f"attention family {fam.key!r} is already registered ({_REGISTRY[fam.key].name}); "
                        "pass replace=True to replace it")
    _REGISTRY.pop(fam.key, None)
    _REGISTRY[fam.key] = fam
    return family


def attention_family(key: str) -> AttentionFamily:
    """The registered family of `key`; `UserError` naming the registered keys for an unknown one."""
    if key not in _REGISTRY:
        raise UserError(f"no attention family {key!r}; registered: {', '.join(_REGISTRY)}")
    return _REGISTRY[key]


def unregister_attention_family(key: str) -> AttentionFamily:
    """Remove the family of `key` from the registry and return it (`UserError` for an unknown key)."""
    fam = attention_family(key)
    del _REGISTRY[key]
    return fam


def supported_families() -> tuple[str, ...]:
    """Display names of the registered families, in the order they were registered."""
    return tuple(f.name for f in _REGISTRY.values())


def _precedence(families: Iterable[FamilyLike] = ()) -> tuple[AttentionFamily, ...]:
    """The families to consult, first match wins: `families` (this analysis only; later ones first),
    then the registered ones (later ones first)."""
    return tuple(reversed([_instance(f) for f in families])) + tuple(reversed(_REGISTRY.values()))


def _family_of(m: nn.Module, families: tuple[AttentionFamily, ...],
               ancestors: tuple[nn.Module, ...] = ()) -> Optional[AttentionFamily]:
    """The first of `families` (see `_precedence`) that reads module `m` (enclosed by `ancestors`), else None."""
    for fam in families:
        if fam.reads(m, ancestors):
            return fam
    return None


def _ancestors(modules: dict[str, nn.Module], name: str) -> tuple[nn.Module, ...]:
    """The modules enclosing module `name` (keys of `modules`, from `named_modules()`), outermost first."""
    parts = name.split(".") if name else []
    return tuple(modules[".".join(parts[:i])] for i in range(len(parts)))


# --------------------------------------------------------------------------- token positions

def _grid(h: int, w: int, stride_y: float, stride_x: float, device=None) -> torch.Tensor:
    """[h, w, 2] token centres (y, x) in input pixels."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * stride_y
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * stride_x
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)


def _windows(grid: torch.Tensor, ws, shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Partition a [H, W, 2] position grid as Swin / EfficientViT partition features: cyclic
    shift, pad bottom/right (NaN positions), windows in raster order -> [nW, wh * ww, 2];
    `ws` is a side or a (wh, ww) pair."""
    wh, ww = (ws, ws) if isinstance(ws, int) else ws
    if any(shift):
        grid = torch.roll(grid, shifts=(-shift[0], -shift[1]), dims=(0, 1))
    H, W, _ = grid.shape
    ph, pw = (wh - H % wh) % wh, (ww - W % ww) % ww
    if ph or pw:
        grid = F.pad(grid.permute(2, 0, 1), (0, pw, 0, ph), value=float("nan")).permute(1, 2, 0)
    Hp, Wp = H + ph, W + pw
    return grid.reshape(Hp // wh, wh, Wp // ww, ww, 2).transpose(1, 2).reshape(-1, wh * ww, 2)


def _token_grid(n: int, image_hw: tuple[int, int], grid=None) -> Optional[tuple[int, int, int]]:
    """(prefix, gh, gw): `n` tokens as `prefix` tokens then a gh x gw raster grid, the fewest prefix tokens
    (at most 16: class, distillation, register tokens) for which `grid` (the patch embedding's), else a grid
    of the image's aspect, fits; None when nothing fits."""
    H, W = image_hw
    for p in range(min(n, 17)):
        if grid is not None and grid[0] * grid[1] == n - p:
            return p, grid[0], grid[1]
    for p in range(min(n, 17)):
        gh = max(1, round(((n - p) * H / max(W, 1)) ** 0.5))
        if gh * ((n - p) // gh) == n - p:
            return p, gh, (n - p) // gh
    return None


def _sequence_positions(n: int, image_hw: tuple[int, int], model: nn.Module) -> torch.Tensor:
    """[1, n, 2] positions of a ViT token sequence: prefix tokens (NaN) then a grid tiling the image
    (`_token_grid`; the model's `patch_embed.grid_size` where it fits, e.g. not after PiT's pooling). Cells of
    an even tiling (stride = image / grid), so within a stride of an overlapping embedding's receptive-field
    centre; all NaN (unknown, never guessed) where no grid fits."""
    found = _token_grid(n, image_hw, getattr(getattr(model, "patch_embed", None), "grid_size", None))
    if found is None:
        return torch.full((1, n, 2), float("nan"))
    p, gh, gw = found
    pos = _grid(gh, gw, image_hw[0] / gh, image_hw[1] / gw).reshape(-1, 2)
    return torch.cat([torch.full((p, 2), float("nan")), pos])[None]


# --------------------------------------------------------------------------- built-in families

@register_attention_family
class _ViT(AttentionFamily):
    key, name, types = "timm ViT/DeiT", "timm ViT/DeiT (timm.layers.Attention)", (TimmAttention,)

    def layout(self, m):
        return m.proj, -1, m.head_dim

    def positions(self, m, parent, x, image_hw, model):
        pos = _sequence_positions(x.shape[1], image_hw, model)
        return pos, pos


@register_attention_family
class _Swin(AttentionFamily):
    key, name, types = "Swin", "Swin (timm swin_transformer.WindowAttention)", (SwinWindowAttention,)

    def layout(self, m):
        return m.proj, -1, m.qkv.out_features // (3 * m.num_heads)

    def positions(self, m, parent, x, image_hw, model):
        H, W = parent.input_resolution
        pos = _windows(_grid(H, W, image_hw[0] / H, image_hw[1] / W), m.window_size[0],
                       tuple(parent.shift_size))
        return pos, pos


@register_attention_family
class _Levit(AttentionFamily):
    key, name = "LeViT", "LeViT (timm levit.Attention, AttentionDownsample)"
    types = (LevitAttention, LevitAttentionDownsample)

    def layout(self, m):
        return m.proj, 1 if m.use_conv else -1, m.val_dim

    def positions(self, m, parent, x, image_hw, model):
        rh, rw = m.resolution
        sy, sx = image_hw[0] / rh, image_hw[1] / rw
        k = _grid(rh, rw, sy, sx)
        q = k[::m.stride, ::m.stride] if isinstance(m, LevitAttentionDownsample) else k
        return q.reshape(1, -1, 2), k.reshape(1, -1, 2)


@register_attention_family
class _EfficientViT(AttentionFamily):
    key, name = "EfficientViT-M", "EfficientViT-M (timm efficientvit_msra.CascadedGroupAttention)"
    types = (CascadedGroupAttention,)

    def layout(self, m):
        return m.proj, 1, m.val_dim

    def positions(self, m, parent, x, image_hw, model):
        res = parent.resolution if isinstance(parent, LocalWindowAttention) else m.resolution
        pos = _windows(_grid(res, res, image_hw[0] / res, image_hw[1] / res), m.resolution)
        return pos, pos


@register_attention_family
class _ConvAttention(AttentionFamily):
    """SHViT-style mixers on [B, C, H, W]: timm's SHSA (single head, first pdim channels),
    and the `shvit` design-space MHSA and BottleneckSHSA."""

    key, name = "SHViT", "SHViT (timm shvit.SHSA; shvit mixers SHSA, full, MHSA, BottleneckSHSA)"
    types = (SHSA, MHSA, BottleneckSHSA)

    def num_heads(self, m):
        return m.num_heads if isinstance(m, MHSA) else 1

    def layout(self, m):
        if isinstance(m, MHSA):
            return m.proj, 1, m.v_dim
        return m.proj, 1, m.pdim

    def positions(self, m, parent, x, image_hw, model):
        H, W = x.shape[-2:]
        pos = _grid(H, W, image_hw[0] / H, image_hw[1] / W).reshape(1, -1, 2)
        return pos, pos


# The other timm families register themselves on import (after the built-ins above, which they use).
from . import _families_conv, _families_hierarchical, _families_pooling, _families_vit  # noqa: E402,F401

if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
