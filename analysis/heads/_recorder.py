"""What the capture does inside one attention module: every op runs unchanged, and the maps are kept.

A softmax's output is the map itself. A fused `scaled_dot_product_attention` call is left to its kernel
and its maps are recomputed in fp32, lazily and piece by piece (`_FusedMaps`), from the very q, k, scale
and mask the kernel receives; where the dispatcher picks CPU flash attention, that kernel is called
here for its logsumexp too, which normalises the recomputed map without a softmax. See
`analysis.heads.attention` for the capture built on `_MapRecorder`.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend
from torch.overrides import TorchFunctionMode

from ..core.errors import not_a_command

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
    if q.device.type != "cpu" or q.dim() != 4 or not _plain_fp32(a):
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
    k = k.expand(*q.shape[:-2], *k.shape[-2:])  # one key head broadcast to every query head (multi-query)
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
    range of its leading (batch) dimension: a consumer can take them piece by piece. With `heads`
    (a module that folds its heads into the call's batch, [B * heads, N, M]: SAM, BotNet), a row
    is one instance's `heads` maps, [B, heads, N, M]."""

    def __init__(self, arguments: dict, logsumexp: Optional[torch.Tensor] = None, heads: int = 1):
        self.arguments, self.logsumexp, self.heads = arguments, logsumexp, heads
        q, k = arguments["query"], arguments["key"]
        self.shape = (q.shape[0] // heads, *((heads,) if heads > 1 else ()), *q.shape[1:-1], k.shape[-2])
        self.dtype = torch.float32

    def in_heads(self, heads: int) -> "_FusedMaps":
        """These maps with the call's batch read as [instances, `heads`] (see the class docstring)."""
        return _FusedMaps(self.arguments, self.logsumexp, heads)

    @property
    def has_log(self) -> bool:
        return self.logsumexp is not None

    def __getitem__(self, rows: slice) -> torch.Tensor:
        return self.maps(rows)

    def maps(self, rows: slice, with_log: bool = False):
        """The maps of `rows`; with `with_log` (only where `has_log`), (maps, log maps)."""
        a, h = self.arguments, self.heads
        start, stop, _ = rows.indices(self.shape[0])
        calls = slice(start * h, stop * h)  # rows of the call's batch
        mask, batch = a["attn_mask"], a["query"].shape[0]
        if isinstance(mask, torch.Tensor) and mask.dim() == a["query"].dim() and mask.shape[0] == batch > 1:
            mask = mask[calls]  # a per-instance mask; a broadcast one is kept whole
        with torch.no_grad():
            out = _sdpa_map(a["query"][calls], a["key"][calls], mask, a["is_causal"], a["scale"], a["enable_gqa"],
                            None if self.logsumexp is None else self.logsumexp[calls], with_log)
        if h == 1:
            return out
        return tuple(t.unflatten(0, (-1, h)) for t in out) if with_log else out.unflatten(0, (-1, h))


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


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
