"""Per-head post-softmax attention maps for every attention family in the lab.

`AttentionCapture(model)` is a context manager that records, for every attention layer,
the maps the layer really computed, without changing the model or its outputs:

    with AttentionCapture(model) as cap:
        logits = model(x)                 # bit-identical to model(x) without the probe
    for m in cap.maps:                    # one AttentionMaps per layer and forward pass
        m.layer, m.stage, m.num_heads, m.attn.shape   # [B * windows, heads, N, M]

How: a forward pre-hook on each attention module enters a `TorchFunctionMode` that lets
every op run unchanged and only *looks* at two of them: a softmax (the explicit path of
every module; its output is the map itself) and `scaled_dot_product_attention` (timm's
fused path, left ON: the map is recomputed in fp32 from the very q, k, scale and mask the
kernel receives, and the kernel's own output is what the model gets; where the dispatcher
picks CPU flash attention, the probe calls that same kernel itself for its logsumexp too, which
normalises the recomputed map without a softmax). The forward hook
leaves the mode and emits the record; with `chunk_bytes`, a streaming consumer gets it in
cache-sized pieces of whole images, and fused maps are only ever computed piece by piece.
No module is rebuilt, `fused_attn` is untouched, and leaving the context removes every hook.
A caller that discards the outputs (`head_similarity`) passes `exact_outputs=False`: a plain fp32
fused call then runs as softmax(q k^T * scale + mask) @ v and that softmax is the map, which is
cheaper than the fused kernel plus a recomputation (outputs change by rounding only).

Supported families (`supported_families()`; add one with `@register_attention_family`): timm ViT/DeiT `Attention`, Swin
`WindowAttention` (relative position bias and shift mask included), LeViT `Attention` /
`AttentionDownsample`, EfficientViT-M `CascadedGroupAttention` (one map per head per
window), timm SHViT `SHSA`, and the `shvit` mixers (`SHSA`, full = SHSA with pdim=dim,
`MHSA`, `BottleneckSHSA`). Windowed layers (Swin, EfficientViT) give one map per window:
`attn` is [B * windows, heads, N, N] with `windows` per image, batch-major.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Attention as TimmAttention
from timm.models.efficientvit_msra import CascadedGroupAttention, LocalWindowAttention
from timm.models.levit import Attention as LevitAttention
from timm.models.levit import AttentionDownsample as LevitAttentionDownsample
from timm.models.shvit import SHSA
from timm.models.swin_transformer import WindowAttention as SwinWindowAttention
from torch.nn.attention import SDPBackend
from torch.overrides import TorchFunctionMode

from shvit.layers import MHSA, BottleneckSHSA

from ..core.errors import UserError, not_a_command

__all__ = ["AttentionCapture", "AttentionMaps", "AttentionLayer", "ProjectionInputHooks", "attention_layers",
           "AttentionFamily",
           "register_attention_family", "supported_families", "UnsupportedModelError"]


class UnsupportedModelError(UserError):
    """The model has no attention layer of a family this module knows."""


@dataclass
class AttentionLayer:
    """One attention module and how its heads are laid out.

    Head `h`'s output occupies channels `[h * head_dim, (h + 1) * head_dim)` of the input of
    `proj` along `channel_dim` (-1: tokens-last [B, N, C]; 1: channels-first [B, C, H, W]);
    nulling that slice removes the head (see `analysis.head_ablation`).
    """

    name: str
    index: int
    stage: int
    family: str
    module: nn.Module
    num_heads: int
    proj: nn.Module
    channel_dim: int
    head_dim: int


class ProjectionInputHooks:
    """Base of the context managers that rewrite the input of some layers' output projection, where each
    head has its slice (`HeadMask` zeroes heads, `HeadGates` scales them): a subclass fills `self._plan`
    with (layer, argument) pairs and defines `_hook(layer, argument)`; leaving the context removes the hooks."""

    _plan: list

    def __enter__(self):
        self._handles = [layer.proj.register_forward_pre_hook(self._hook(layer, arg)) for layer, arg in self._plan]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    @staticmethod
    def _hook(layer: AttentionLayer, arg):
        raise NotImplementedError


@dataclass
class AttentionMaps:
    """The post-softmax maps of one layer for one forward pass.

    `attn` is [B * windows, heads, N, M] (fp32 unless the module's softmax ran in lower
    precision); rows sum to 1. `query_pos` / `key_pos` are [windows, N|M, 2] token centres
    (y, x) in input pixels, NaN for tokens without a position (class token, padding).
    `head_outputs` (multi-head layers, when requested) is [B * windows * tokens, heads,
    head_dim]: the per-head outputs that enter the output projection. `log_attn` (when requested,
    where the capture computes log A on the way to A: CPU flash attention) is log `attn`.
    """

    layer: str
    index: int
    stage: int
    family: str
    num_heads: int
    attn: torch.Tensor
    batch_size: int
    windows: int
    query_pos: Optional[torch.Tensor] = None
    key_pos: Optional[torch.Tensor] = None
    head_outputs: Optional[torch.Tensor] = field(default=None, repr=False)
    log_attn: Optional[torch.Tensor] = field(default=None, repr=False)


# --------------------------------------------------------------------------- families

def _grid(h: int, w: int, stride_y: float, stride_x: float, device=None) -> torch.Tensor:
    """[h, w, 2] token centres (y, x) in input pixels."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * stride_y
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * stride_x
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)


def _windows(grid: torch.Tensor, ws: int, shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Partition a [H, W, 2] position grid as Swin / EfficientViT partition features: cyclic
    shift, pad bottom/right (NaN positions), windows in raster order -> [nW, ws * ws, 2]."""
    if any(shift):
        grid = torch.roll(grid, shifts=(-shift[0], -shift[1]), dims=(0, 1))
    H, W, _ = grid.shape
    ph, pw = (ws - H % ws) % ws, (ws - W % ws) % ws
    if ph or pw:
        grid = F.pad(grid.permute(2, 0, 1), (0, pw, 0, ph), value=float("nan")).permute(1, 2, 0)
    Hp, Wp = H + ph, W + pw
    return grid.reshape(Hp // ws, ws, Wp // ws, ws, 2).transpose(1, 2).reshape(-1, ws * ws, 2)


class AttentionFamily:
    """How to read one attention module type: heads, head layout, token positions.

    A family's module must compute its maps with a softmax (`torch.softmax`, `Tensor.softmax`,
    `F.softmax`) or `F.scaled_dot_product_attention`: the capture records those. Register a
    subclass with `@register_attention_family`.
    """

    name: str = ""
    types: tuple = ()

    def num_heads(self, m: nn.Module) -> int:
        return m.num_heads

    def layout(self, m: nn.Module) -> tuple[nn.Module, int, int]:
        """(proj module, channel dim of its input, per-head value channels)."""
        raise NotImplementedError

    def positions(self, m: nn.Module, parent: Optional[nn.Module], x: torch.Tensor,
                  image_hw: tuple[int, int], model: nn.Module):
        """(query_pos, key_pos), each [windows, tokens, 2], for input `x` of the module."""
        raise NotImplementedError


_FAMILIES: list[AttentionFamily] = []


def register_attention_family(cls: type) -> type:
    """Class decorator: make `AttentionCapture` (and everything built on it) read `cls.types`
    modules the way `cls` says. A family registered later takes precedence for its types."""
    _FAMILIES.insert(0, cls())
    return cls


def supported_families() -> tuple[str, ...]:
    """Names of the registered families, in the order they were registered."""
    return tuple(f.name for f in reversed(_FAMILIES))


@register_attention_family
class _ViT(AttentionFamily):
    name, types = "timm ViT/DeiT (timm.layers.Attention)", (TimmAttention,)

    def layout(self, m):
        return m.proj, -1, m.head_dim

    def positions(self, m, parent, x, image_hw, model):
        n = x.shape[1]
        prefix = getattr(model, "num_prefix_tokens", 0)
        pe = getattr(model, "patch_embed", None)
        gh, gw = getattr(pe, "grid_size", None) or (int((n - prefix) ** 0.5),) * 2
        if gh * gw != n - prefix:  # dynamic image size: a square grid
            gh = gw = int(round((n - prefix) ** 0.5))
        pos = _grid(gh, gw, image_hw[0] / gh, image_hw[1] / gw).reshape(-1, 2)
        pos = torch.cat([torch.full((prefix, 2), float("nan")), pos])[None]
        return pos, pos


@register_attention_family
class _Swin(AttentionFamily):
    name, types = "Swin (timm swin_transformer.WindowAttention)", (SwinWindowAttention,)

    def layout(self, m):
        return m.proj, -1, m.qkv.out_features // (3 * m.num_heads)

    def positions(self, m, parent, x, image_hw, model):
        H, W = parent.input_resolution
        pos = _windows(_grid(H, W, image_hw[0] / H, image_hw[1] / W), m.window_size[0],
                       tuple(parent.shift_size))
        return pos, pos


@register_attention_family
class _Levit(AttentionFamily):
    name, types = "LeViT (timm levit.Attention, AttentionDownsample)", (LevitAttention, LevitAttentionDownsample)

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
    name, types = "EfficientViT-M (timm efficientvit_msra.CascadedGroupAttention)", (CascadedGroupAttention,)

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

    name, types = "SHViT (timm shvit.SHSA; shvit mixers SHSA, full, MHSA, BottleneckSHSA)", \
        (SHSA, MHSA, BottleneckSHSA)

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


_STAGE_RE = re.compile(r"(?:^|\.)(?:stages|layers)\.(\d+)(?:\.|$)")


def _family(m: nn.Module) -> Optional[AttentionFamily]:
    for fam in _FAMILIES:
        if isinstance(m, fam.types):
            return fam
    return None


def attention_layers(model: nn.Module) -> list[AttentionLayer]:
    """Every supported attention module of `model`, in module order.

    Raises `UnsupportedModelError` (a `UserError`) naming the supported families when there is none.
    """
    layers = []
    for name, m in model.named_modules():
        fam = _family(m)
        if fam is None:
            continue
        stage = _STAGE_RE.search(name)
        proj, channel_dim, head_dim = fam.layout(m)
        layers.append(AttentionLayer(name=name, index=len(layers), stage=int(stage.group(1)) if stage else 0,
                                     family=fam.name.split(" (")[0], module=m, num_heads=fam.num_heads(m),
                                     proj=proj, channel_dim=channel_dim, head_dim=head_dim))
    if not layers:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no supported attention layer; supported families: "
            + "; ".join(supported_families()))
    return layers


# --------------------------------------------------------------------------- capture

_SOFTMAX = {torch.Tensor.softmax, F.softmax, torch.softmax}
_FLASH = int(SDPBackend.FLASH_ATTENTION)


def _sdpa_arguments(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                    enable_gqa=False) -> dict:
    """`scaled_dot_product_attention`'s arguments by name, however the module passed them."""
    return dict(query=query, key=key, value=value, attn_mask=attn_mask, dropout_p=dropout_p,
                is_causal=is_causal, scale=scale, enable_gqa=enable_gqa)


def _plain_fp32(a: dict) -> bool:
    """Whether a `scaled_dot_product_attention` call is the plain case: fp32 q, k, v and (float)
    mask, no autocast, no gradient, no dropout, not causal, no GQA."""
    q, k, v, mask = a["query"], a["key"], a["value"], a["attn_mask"]
    return not (torch.is_autocast_enabled(q.device.type) or a["dropout_p"] or a["is_causal"] or a["enable_gqa"]
                or any(t.dtype != torch.float32 for t in (q, k, v))
                or (torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)))
                or (mask is not None and mask.dtype != torch.float32))


def _cpu_flash_with_logsumexp(a: dict) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """(output, logsumexp) of CPU flash attention, when `scaled_dot_product_attention` would run
    exactly that kernel on these arguments (the dispatcher's own choice); else None.

    The model then gets the very output it gets without the probe, and the maps need no
    softmax: A = exp(q k^T * scale + mask - logsumexp), one pass over the map instead of three.
    Only the plain case (`_plain_fp32`) on CPU.
    """
    q, k, v, mask = a["query"], a["key"], a["value"], a["attn_mask"]
    if q.device.type != "cpu" or not _plain_fp32(a):
        return None
    if torch._fused_sdp_choice(q, k, v, mask, 0.0, False, scale=a["scale"]) != _FLASH:
        return None
    return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False, attn_mask=mask,
                                                                      scale=a["scale"])


def _sdpa_map(query, key, attn_mask=None, is_causal=False, scale=None, enable_gqa=False,
              logsumexp=None, with_log=False):
    """softmax(q k^T * scale + mask) in fp32: the weights `scaled_dot_product_attention` applies to v.

    With the kernel's `logsumexp` (per query), exp(q k^T * scale + mask - logsumexp) instead: the
    normaliser is folded into the product (one batched GEMM) and the map is one exp; `with_log`
    then returns (A, log A).
    """
    q, k = query.float(), key.float()
    if enable_gqa and k.shape[-3] != q.shape[-3]:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    *batch, n, d = q.shape
    m = k.shape[-2]
    if logsumexp is not None:
        # [q * scale, -logsumexp] . [k, 1] = q k^T * scale - logsumexp: the normaliser rides in the
        # product as one more contraction index (no pass over the map to subtract it)
        qa = q.new_empty(*batch, n, d + 1)
        ka = k.new_empty(*batch, m, d + 1)
        torch.mul(q, scale, out=qa[..., :d])
        qa[..., d] = -logsumexp
        ka[..., :d] = k
        ka[..., d] = 1.0
        log_a = torch.bmm(qa.view(-1, n, d + 1), ka.view(-1, m, d + 1).transpose(1, 2)).view(*batch, n, m)
        if attn_mask is not None:
            log_a.add_(attn_mask.float())
        return (log_a.exp(), log_a) if with_log else log_a.exp_()
    # one contiguous copy each (a plain q * scale keeps q's strided layout and would be copied again)
    q3 = torch.mul(q, scale, out=torch.empty(q.shape, dtype=q.dtype, device=q.device)).view(-1, n, d)
    k3 = k.reshape(-1, m, d)
    logits = torch.bmm(q3, k3.transpose(1, 2)).view(*batch, n, m)
    if is_causal:
        attn_mask = torch.ones(n, m, dtype=torch.bool, device=q.device).tril()
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            logits.masked_fill_(~attn_mask, float("-inf"))
        else:
            logits.add_(attn_mask.float())
    return logits.softmax(dim=-1)


class _FusedMaps:
    """The maps behind one fused `scaled_dot_product_attention` call, computed on demand for a
    range of its leading (batch) dimension: a consumer can take them piece by piece."""

    def __init__(self, arguments: dict, logsumexp: Optional[torch.Tensor] = None):
        self.arguments, self.logsumexp = arguments, logsumexp
        q, k = arguments["query"], arguments["key"]
        self.shape = (*q.shape[:-1], k.shape[-2])
        self.dtype = torch.float32

    @property
    def has_log(self) -> bool:
        return self.logsumexp is not None

    def __getitem__(self, rows: slice) -> torch.Tensor:
        return self.maps(rows)

    def maps(self, rows: slice, with_log: bool = False):
        """The maps of `rows`; with `with_log` (only where `has_log`), (maps, log maps)."""
        a = self.arguments
        mask = a["attn_mask"]
        if isinstance(mask, torch.Tensor) and mask.dim() == len(self.shape) and mask.shape[0] == self.shape[0] > 1:
            mask = mask[rows]  # a per-instance mask; a broadcast one is kept whole
        with torch.no_grad():
            return _sdpa_map(a["query"][rows], a["key"][rows], mask, a["is_causal"], a["scale"], a["enable_gqa"],
                             None if self.logsumexp is None else self.logsumexp[rows], with_log)


class _MapRecorder(TorchFunctionMode):
    """Runs every op unchanged; keeps softmax outputs and the (lazy) maps behind fused attention.

    With `explicit`, a plain fp32 fused call (`_plain_fp32`) is run as its explicit equivalent
    instead, A = softmax(q k^T * scale + mask) in fp32 and A @ v, and A is kept: the maps are then the
    very weights applied to v, at the cost of an output that differs from the fused kernel's by rounding.
    """

    def __init__(self, explicit: bool = False):
        super().__init__()
        self.explicit = explicit
        self.maps: list = []  # tensors, or _FusedMaps; both sliced along dim 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            arguments = _sdpa_arguments(*args, **kwargs)
            if self.explicit and _plain_fp32(arguments):
                attn = _sdpa_map(arguments["query"], arguments["key"], arguments["attn_mask"], scale=arguments["scale"])
                self.maps.append(attn)
                return torch.matmul(attn, arguments["value"])
            flash = _cpu_flash_with_logsumexp(arguments)
            if flash is not None:
                self.maps.append(_FusedMaps(arguments, flash[1]))
                return flash[0]
            self.maps.append(_FusedMaps(arguments))
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        if func in _SOFTMAX:
            self.maps.append(out.detach())
        return out


class AttentionCapture:
    """Context manager recording every attention layer's maps (see the module docstring).

    Args:
        model: any model with supported attention layers (else `UnsupportedModelError`).
        callback: called with each `AttentionMaps` as soon as a layer has run; when given,
            nothing is stored (streaming: memory does not grow with the number of images).
            Otherwise records accumulate in `.maps` until `.clear()`.
        head_outputs: also record per-head outputs (the input slices of the output
            projection) for multi-head layers, e.g. for linear CKA.
        layers: restrict to these layer names.
        chunk_bytes: with a callback, hand each layer's maps over in pieces of whole images of
            about this many bytes (fused attention's maps are then computed piece by piece):
            a consumer that reads them several times does so from cache. None: one record
            per layer and forward pass.
        log_maps: also hand over log A (`AttentionMaps.log_attn`) where it comes for free (CPU
            flash attention), e.g. for entropies without taking a logarithm.
        exact_outputs: True (default) leaves fused attention to its kernel, so the model's outputs
            are bit-identical to running without the probe, and recomputes the maps behind it. False,
            for callers that discard the outputs (`head_similarity`): a plain fp32 fused call runs as
            softmax(q k^T * scale + mask) @ v and its softmax is the map, with no recomputation;
            outputs then differ from the fused kernel's by rounding (about 1e-6 on DeiT-T logits).
    """

    def __init__(self, model: nn.Module, callback: Optional[Callable[[AttentionMaps], None]] = None,
                 *, head_outputs: bool = False, layers: Optional[list[str]] = None,
                 chunk_bytes: Optional[int] = None, log_maps: bool = False, exact_outputs: bool = True):
        self.model = model
        self.exact_outputs = exact_outputs
        self.log_maps = log_maps
        self.callback = callback
        self.chunk_bytes = chunk_bytes
        self.head_outputs = head_outputs
        self.layers = attention_layers(model)
        if layers is not None:
            unknown = sorted(set(layers) - {layer.name for layer in self.layers})
            if unknown:
                raise UserError(f"no attention layer named {', '.join(unknown)}; "
                                f"layers: {', '.join(layer.name for layer in self.layers)}")
            self.layers = [layer for layer in self.layers if layer.name in layers]
        self.maps: list[AttentionMaps] = []
        self._handles: list = []
        self._image_hw: tuple[int, int] = (0, 0)
        modules = dict(model.named_modules())
        self._parents = {layer.name: modules.get(layer.name.rpartition(".")[0]) for layer in self.layers}
        self._pos_cache: dict = {}

    # -- lifecycle
    def __enter__(self) -> "AttentionCapture":
        self._handles.append(self.model.register_forward_pre_hook(self._on_model_input))
        for layer in self.layers:
            state: dict = {}
            self._handles += [
                layer.module.register_forward_pre_hook(self._enter_hook(layer, state)),
                layer.module.register_forward_hook(self._exit_hook(layer, state), always_call=True),
            ]
            if self.head_outputs and layer.num_heads > 1:
                self._handles.append(layer.proj.register_forward_pre_hook(self._proj_hook(layer, state)))
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this probe added (also done on leaving the `with` block)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def clear(self) -> None:
        self.maps.clear()

    # -- hooks
    def _on_model_input(self, module, args):
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and x.dim() == 4:
            self._image_hw = tuple(x.shape[-2:])

    def _enter_hook(self, layer: AttentionLayer, state: dict):
        def hook(module, args):
            state["x"] = args[0]
            state["out"] = None
            state["mode"] = _MapRecorder(explicit=not self.exact_outputs).__enter__()
        return hook

    def _proj_hook(self, layer: AttentionLayer, state: dict):
        def hook(module, args):
            if "mode" in state:  # only while the attention module runs
                state["out"] = args[0].detach()
        return hook

    def _exit_hook(self, layer: AttentionLayer, state: dict):
        def hook(module, args, output):
            mode = state.pop("mode", None)
            if mode is None:
                return
            mode.__exit__(None, None, None)
            x, out = state.pop("x"), state.pop("out", None)
            if mode.maps:
                self._emit(layer, x, mode.maps, out)
        return hook

    def _emit(self, layer: AttentionLayer, x: torch.Tensor, maps: list, out: Optional[torch.Tensor]) -> None:
        key = (layer.name, tuple(x.shape[1:]), self._image_hw)
        if key not in self._pos_cache:
            fam = _family(layer.module)
            q, k = fam.positions(layer.module, self._parents[layer.name], x, self._image_hw, self.model)
            self._pos_cache[key] = (q.to(x.device), k.to(x.device))
        qpos, kpos = self._pos_cache[key]
        windows, instances = qpos.shape[0], maps[0].shape[0]
        step = instances
        if self.callback is not None and self.chunk_bytes is not None:
            per_image = windows * sum(math.prod(m.shape[1:]) * m.dtype.itemsize for m in maps)
            step = windows * max(1, self.chunk_bytes // per_image)
        for start in range(0, instances, step):
            rows = slice(start, min(start + step, instances))
            log_attn = None
            if self.log_maps and len(maps) == 1 and isinstance(maps[0], _FusedMaps) and maps[0].has_log:
                attn, log_attn = maps[0].maps(rows, with_log=True)
            else:
                attn = _assemble(maps, rows)
            if attn.shape[1] != layer.num_heads:
                raise RuntimeError(f"{layer.name}: captured {attn.shape[1]} head maps, expected {layer.num_heads}")
            heads_out = None
            if out is not None:  # its leading dim is the maps' (B* instances) in every family
                # [B*, C, H, W] or [B*, T, C] -> [B* * T, heads, head_dim]
                t = out[rows].flatten(2).transpose(1, 2) if layer.channel_dim == 1 else out[rows]
                heads_out = t[..., :layer.num_heads * layer.head_dim].reshape(-1, layer.num_heads, layer.head_dim)
            rec = AttentionMaps(layer=layer.name, index=layer.index, stage=layer.stage, family=layer.family,
                                num_heads=layer.num_heads, attn=attn, batch_size=attn.shape[0] // windows,
                                windows=windows, query_pos=qpos, key_pos=kpos, head_outputs=heads_out,
                                log_attn=log_attn)
            if self.callback is not None:
                self.callback(rec)
            else:
                self.maps.append(rec)


def _assemble(maps: list, rows: slice) -> torch.Tensor:
    """[instances, heads, N, M] for `rows` from one layer's recorded maps: a single
    [.., heads, N, M] map, or one [.., N, M] / [.., h_i, N, M] map per head group (cascades)."""
    parts = [m[rows] for m in maps]
    if len(parts) == 1:
        return parts[0] if parts[0].dim() == 4 else parts[0][:, None]
    return torch.stack(parts, 1) if parts[0].dim() == 3 else torch.cat(parts, 1)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
