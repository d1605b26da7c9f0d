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

Which modules are attention layers, and how to read them, the attention families say
(`analysis.heads.families`: `supported_families()`, `register_attention_family`, or
`AttentionCapture(model, families=[...])` for one capture only): timm ViT/DeiT `Attention`, Swin
`WindowAttention` (relative position bias and shift mask included), LeViT `Attention` /
`AttentionDownsample`, EfficientViT-M `CascadedGroupAttention` (one map per head per
window), timm SHViT `SHSA`, and the `shvit` mixers (`SHSA`, full = SHSA with pdim=dim,
`MHSA`, `BottleneckSHSA`). Windowed layers (Swin, EfficientViT) give one map per window:
`attn` is [B * windows, heads, N, N] with `windows` per image, batch-major. The layers themselves
are `analysis.heads.layers`; the op-level recording is `analysis.heads._recorder`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import torch
import torch.nn as nn

from ..core.errors import UserError, not_a_command
from ._recorder import _FusedMaps, _MapRecorder
from .families import FamilyLike, _ancestors, _family_of, _instance, _precedence
from .layers import AttentionLayer, attention_layers

__all__ = ["AttentionCapture", "AttentionMaps"]


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
        families: `AttentionFamily` instances (or subclasses) read by this capture only, before the
            registered ones; the registry (`analysis.heads.families`) is untouched.
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
                 chunk_bytes: Optional[int] = None, log_maps: bool = False, exact_outputs: bool = True,
                 families: Iterable[FamilyLike] = ()):
        self.model = model
        self.exact_outputs = exact_outputs
        self.log_maps = log_maps
        self.callback = callback
        self.chunk_bytes = chunk_bytes
        self.head_outputs = head_outputs
        families = tuple(_instance(f) for f in families)
        lookup = _precedence(families)
        self.layers = attention_layers(model, families)
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
        self._families = {layer.name: _family_of(layer.module, lookup, _ancestors(modules, layer.name))
                          for layer in self.layers}
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
            if self.head_outputs and layer.num_heads > 1 and not layer.unsliced_heads:  # else none (CKA n/a)
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
            if not mode.maps:
                raise UserError(f"{layer.name} ({type(module).__name__}, family {layer.family!r}) ran without a softmax "
                                "or scaled_dot_product_attention, so no attention map could be read; the family's "
                                "modules must compute their maps with one of those")
            self._emit(layer, x, mode.maps, out)
        return hook

    def _emit(self, layer: AttentionLayer, x: torch.Tensor, maps: list, out: Optional[torch.Tensor]) -> None:
        key, fam = (layer.name, tuple(x.shape[1:]), self._image_hw), self._families[layer.name]
        if fam.heads_in_batch:  # [B * heads, ...] -> [B, heads, ...], so rows (and chunks) are whole instances
            maps = [m.in_heads(layer.num_heads) if isinstance(m, _FusedMaps) else m.unflatten(0, (-1, layer.num_heads))
                    for m in maps]
        if fam.heads_dim != 1:  # softmax maps with the heads elsewhere: [B, heads, N, M]
            maps = [m.movedim(fam.heads_dim, 1) for m in maps]
        if key not in self._pos_cache:
            q, k = fam.positions(layer.module, self._parents[layer.name], x, self._image_hw, self.model)
            self._pos_cache[key] = (q.to(x.device), k.to(x.device))
        qpos, kpos = self._pos_cache[key]
        windows, instances = qpos.shape[0], maps[0].shape[0]
        per_row = 1 if len(maps[0].shape) == 5 else windows  # 5-d maps: one row per image, windows inside
        step = instances
        if self.callback is not None and self.chunk_bytes is not None:
            per_image = per_row * sum(math.prod(m.shape[1:]) * m.dtype.itemsize for m in maps)
            step = per_row * max(1, self.chunk_bytes // per_image)
        for start in range(0, instances, step):
            rows = slice(start, min(start + step, instances))
            log_attn = None
            if self.log_maps and len(maps) == 1 and isinstance(maps[0], _FusedMaps) and maps[0].has_log:
                attn, log_attn = maps[0].maps(rows, with_log=True)
            else:
                attn = _assemble(maps, rows)
            if attn.dim() == 5:  # [B, windows, heads, N, M] (or windows in `window_dim`) -> [B * windows, ...]
                attn = attn.movedim(fam.window_dim, 1).flatten(0, 1)
            if attn.shape[1] != layer.num_heads:
                raise RuntimeError(f"{layer.name}: captured {attn.shape[1]} head maps, expected {layer.num_heads}")
            heads_out = None
            if out is not None:  # its leading dim is the maps' rows (B* instances, or B for 5-d maps)
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
    [.., heads, N, M] map (or a 5-d one with windows, which `_emit` flattens), or one [.., N, M] /
    [.., h_i, N, M] map per head group (cascades)."""
    parts = [m[rows] for m in maps]
    if len(parts) == 1:
        return parts[0][:, None] if parts[0].dim() == 3 else parts[0]
    return torch.stack(parts, 1) if parts[0].dim() == 3 else torch.cat(parts, 1)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
