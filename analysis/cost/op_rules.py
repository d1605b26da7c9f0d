"""What one aten op costs: macs by rule, memory traffic by a fixed model, and never a silent zero.

Every op the cost counter meets falls in exactly one class (`classify`):

counted             a macs rule is registered for it (`register_macs`): torch's own flop
                    formulas (conv, mm, bmm, addmm, baddbmm, ...; flops / 2), and the rules
                    below (norms, upsampling, global pooling, every attention kernel); or one
                    analysis gives it a rule of its own (`CostAnalysis(..., rules={op: rule})`).
no arithmetic       views and metadata ops, copies, concatenation, padding, indexing and
                    tensor creation (`NO_ARITHMETIC_OPS`, or any op torch marks as a view).
zero by convention  element-wise ops, activations, softmax, reductions, pooling and dropout:
                    they do arithmetic but count 0 macs, as in fvcore and both papers
                    (ops torch tags `pointwise` or `reduction`, and `ZERO_MAC_OPS`).
unsupported         anything else: counted as 0 macs *and reported* by
                    `CostAnalysis.unsupported_ops()`, the CLIs and `--json`.

Attention is counted from the call's shapes, whichever kernel runs: the counter sees
`F.scaled_dot_product_attention` itself (see `analysis.cost`), and `sdpa_macs` /
`sdpa_mem_bytes` cost it as one kernel; the fused aten kernels met directly have the same rule.
"""
from __future__ import annotations

import math
from typing import Any, Callable, List, Mapping, Optional

import torch
import torch.nn as nn
from torch.utils.flop_counter import flop_registry

from ..core.errors import UserError, not_a_command

__all__ = ["register_macs", "unregister_macs", "macs_rules", "classify", "op_macs", "op_mem_bytes", "is_free",
           "sdpa_macs", "sdpa_mem_bytes", "NO_ARITHMETIC_OPS", "ZERO_MAC_OPS", "SDPA_KERNELS", "COUNTED",
           "NO_ARITHMETIC", "ZERO_BY_CONVENTION", "UNSUPPORTED"]

aten = torch.ops.aten

COUNTED, NO_ARITHMETIC, ZERO_BY_CONVENTION, UNSUPPORTED = "counted", "no arithmetic", "zero by convention", \
    "unsupported"

_MAC_RULES: dict = {}  # packet -> fn(*args, out=..., module=..., **kwargs) -> macs
_CLASS_CACHE: dict = {}  # op overload -> its class


def _packet(op) -> torch._ops.OpOverloadPacket:
    """The overload packet of an op given as a packet (`torch.ops.aten.foo`), an overload
    (`torch.ops.aten.foo.default`) or a name (`"aten.foo"`; an unknown one is a `UserError`)."""
    if isinstance(op, str):
        namespace, _, name = op.partition(".")
        packet = getattr(getattr(torch.ops, namespace, None), name, None) if name and "." not in name else None
        if packet is None:
            raise UserError(f"no op named {op!r} (expected 'namespace.op', e.g. 'aten.mm')")
        return packet
    packet = getattr(op, "overloadpacket", op)
    if not isinstance(packet, torch._ops.OpOverloadPacket):
        raise TypeError(f"expected an op (torch.ops.aten.foo, an overload of it, or 'aten.foo'), got {op!r}")
    return packet


def _packets_of(ops) -> list:
    return [_packet(op) for op in (ops if isinstance(ops, (tuple, list, frozenset, set)) else (ops,))]


Rule = Callable[..., int]  # fn(*args, out=..., module=..., **kwargs) -> macs


def register_macs(ops, rule: Optional[Rule] = None, *, replace: bool = False):
    """Register `rule(*args, out, module, **kwargs) -> int` as the macs of `ops` (one op or a tuple of them).

    `ops` are aten ops (`torch.ops.aten.foo`, an overload, or `"aten.foo"`); `args`/`kwargs` are the op's
    own arguments, `out` its output and `module` the innermost `nn.Module` running it. Without `rule`,
    a decorator: `@register_macs(aten.foo)`. An op that has a rule already is refused (`UserError`)
    unless `replace=True`, as `torch.utils.flop_counter.register_flop_formula` refuses a duplicate
    registration (`RuntimeError`). For one analysis only, pass `CostAnalysis(..., rules={op: rule})`
    (torch's `FlopCounterMode(custom_mapping=...)`, fvcore's `set_op_handle`): the registry is untouched.
    """
    if rule is None:
        return lambda fn: register_macs(ops, fn, replace=replace)
    if isinstance(rule, (torch._ops.OpOverloadPacket, torch._ops.OpOverload)) or not callable(rule):
        raise TypeError(f"the rule must be a function, got {rule!r}; pass several ops as a tuple")
    packets = _packets_of(ops)
    taken = [str(p) for p in packets if p in _MAC_RULES]
    if taken and not replace:
        raise UserError(f"a macs rule is already registered for {', '.join(taken)}; pass replace=True to replace it")
    for packet in packets:
        _MAC_RULES[packet] = rule
    _CLASS_CACHE.clear()
    return rule


def unregister_macs(op) -> Rule:
    """Remove the registered macs rule of `op` and return it (`UserError` if it has none): the op then
    counts as its class says without a rule (`classify`)."""
    packet = _packet(op)
    if packet not in _MAC_RULES:
        raise UserError(f"no macs rule is registered for {packet}")
    _CLASS_CACHE.clear()
    return _MAC_RULES.pop(packet)


def macs_rules(rules: Optional[Mapping[Any, Rule]]) -> dict:
    """`{op: rule}` (ops as `register_macs` takes them) keyed by overload packet: the rules of one
    analysis, which `classify` and `op_macs` consult before the registered ones."""
    out = {}
    for op, rule in (rules or {}).items():
        if not callable(rule):
            raise TypeError(f"the macs rule of {op} must be a function, got {rule!r}")
        out.update(dict.fromkeys(_packets_of(op), rule))
    return out


def _shapes(x):
    """Tensors replaced by their shapes, in nested tuples / lists (what torch's formulas take)."""
    if isinstance(x, torch.Tensor):
        return x.shape
    if isinstance(x, (tuple, list)):
        return type(x)(_shapes(v) for v in x)
    return x


def _torch_formula(formula: Callable) -> Callable:
    """torch's flop formula as a macs rule. torch wraps each formula to turn tensors into shapes with
    pytree (most of the cost of counting a conv); the raw formula gets shapes from `_shapes` instead."""
    raw = getattr(formula, "__wrapped__", None)

    def macs(*args, out=None, module=None, **kwargs) -> int:  # torch counts flops = 2 * macs
        if raw is None:
            return int(formula(*args, **kwargs, out_val=out)) // 2
        return int(raw(*_shapes(args), out_shape=_shapes(out), **{k: _shapes(v) for k, v in kwargs.items()})) // 2
    return macs


for _op, _formula in flop_registry.items():
    if isinstance(_op, torch._ops.OpOverloadPacket) and "backward" not in str(_op):
        register_macs(_op, _torch_formula(_formula))


# --------------------------------------------------------------------------- attention

def sdpa_macs(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, *args, **kwargs) -> int:
    """q k^T and attn v of scaled dot-product attention: B*Hq*L*S*(E+Ev) multiply-accumulates.

    Layout [..., heads, L, E] as `F.scaled_dot_product_attention` takes it; grouped-query
    attention (fewer key/value heads) counts the query heads, as the kernel computes them.
    Masks, scale, dropout and causality change no product (a causal kernel may skip half of
    them; the papers' convention, like torch's flop counter, counts the dense product).
    """
    return math.prod(query.shape[:-1]) * key.shape[-2] * (query.shape[-1] + value.shape[-1])


def sdpa_mem_bytes(args: tuple, kwargs: dict, out: Any) -> tuple:
    """(read, written) of attention as one kernel: q, k, v and the mask read, the output written."""
    first = out[0] if isinstance(out, (tuple, list)) else out
    return sum(_bytes(t) for t in _tensors((args, kwargs))), _bytes(first)


SDPA_KERNELS = tuple(getattr(aten, n) for n in (
    "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
    "_scaled_dot_product_fused_attention_overrideable") if hasattr(aten, n))
register_macs(SDPA_KERNELS, lambda q, k, v, *args, out=None, module=None, **kwargs: sdpa_macs(q, k, v),
              replace=True)  # torch's formulas for some of them: the same products, one rule for all


# --------------------------------------------------------------------------- other rules (fvcore's)

@register_macs(aten._native_batch_norm_legit_no_training)
def _bn_eval(x, weight=None, *args, out=None, module=None, **kwargs) -> int:
    return x.numel() * (2 if weight is not None else 1)


@register_macs((aten.native_batch_norm, aten._native_batch_norm_legit))
def _bn_any(x, weight=None, bias=None, running_mean=None, running_var=None, training=False, *args,
            out=None, module=None, **kwargs) -> int:
    if training:
        return x.numel() * (5 if weight is not None else 4)
    return x.numel() * (2 if weight is not None else 1)


@register_macs(aten.native_layer_norm)
def _layer_norm(x, normalized_shape, weight=None, *args, out=None, module=None, **kwargs) -> int:
    return x.numel() * (5 if weight is not None else 4)


@register_macs(aten.native_group_norm)
def _group_norm(x, weight=None, *args, out=None, module=None, **kwargs) -> int:
    return x.numel() * (5 if weight is not None else 4)


@register_macs(aten.mean)
def _global_pool(x, *args, out=None, module=None, **kwargs) -> int:
    # fvcore counts adaptive_avg_pool2d as one mac per input element and an explicit mean as 0.
    # adaptive_avg_pool2d(x, 1) reaches the dispatcher as mean(x, [-1, -2], keepdim=True), so a
    # mean counts only when the module running it is an adaptive average pool.
    return x.numel() if isinstance(module, nn.AdaptiveAvgPool2d) else 0


@register_macs(aten._adaptive_avg_pool2d)
def _adaptive_pool(x, *args, out=None, module=None, **kwargs) -> int:
    return x.numel()


def _out_numel(scale: int) -> Callable:
    def count(*args, out=None, module=None, **kwargs) -> int:
        return scale * (out.numel() if isinstance(out, torch.Tensor) else 0)
    return count


register_macs(aten.upsample_nearest2d, _out_numel(1))
register_macs((aten.upsample_bilinear2d, aten.grid_sampler_2d), _out_numel(4))
register_macs(aten.upsample_bicubic2d, _out_numel(16))  # 4 x 4 taps per output (fvcore has no rule; bilinear: 2 x 2)
register_macs(aten.upsample_linear1d, _out_numel(2))  # 2 taps per output (NaFlexViT resizes its position table)


@register_macs(aten.mkldnn_rnn_layer)
def _rnn_layer(x, w_ih, w_hh, *args, out=None, module=None, **kwargs) -> int:
    # one layer, one direction of an RNN / LSTM / GRU on CPU (Sequencer's LSTMs): every time step multiplies the
    # input by w_ih and the hidden state by w_hh, as the op-by-op cells (mm per step) count; gates count 0
    return x.numel() // x.shape[-1] * (w_ih.numel() + w_hh.numel())


# --------------------------------------------------------------------------- zero-mac classes

def _packets(*names: str) -> frozenset:
    return frozenset(getattr(aten, n) for n in names if hasattr(aten, n))


NO_ARITHMETIC_OPS = _packets(  # move, copy, index or create data; views are recognised by torch's schema
    "_unsafe_view", "_reshape_alias", "alias", "detach", "lift_fresh", "resize_", "set_", "clone", "copy_",
    "_to_copy", "contiguous", "cat", "stack", "constant_pad_nd", "reflection_pad2d", "replication_pad2d", "roll",
    "flip", "repeat", "index", "index_select", "gather", "scatter", "index_put_", "index_put", "slice_scatter",
    "select_scatter", "masked_select", "nonzero", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle",
    "native_channel_shuffle", "im2col", "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones",
    "ones_like", "full", "full_like", "new_empty", "new_zeros", "new_ones", "new_full", "scalar_tensor",
    "arange", "fill_", "zero_", "normal_", "uniform_", "split", "split_with_sizes", "unbind", "chunk",
    "as_strided_")

ZERO_MAC_OPS = _packets(  # fvcore's convention: arithmetic, but 0 macs (besides `pointwise` / `reduction` tags)
    "_softmax", "_safe_softmax", "_log_softmax", "softmax", "log_softmax", "max_pool2d_with_indices",
    "max_pool2d", "avg_pool2d", "native_dropout", "dropout", "topk", "sort", "cumsum", "argmax", "argmin",
    "hardswish", "hardswish_", "_prelu_kernel", "log_sigmoid_forward", "masked_fill_",  # untagged element-wise
    "col2im")  # sums overlapping patches back (VOLO's fold): additions only, as fvcore counts them

_FREE_OPS = _packets("_unsafe_view", "detach", "alias", "lift_fresh", "empty", "empty_like", "empty_strided",
                     "_reshape_alias", "resize_", "set_", "as_strided_")  # as_strided_: in place, metadata only
_WRITE_ONLY_SELF = _packets("copy_", "fill_", "zero_", "normal_", "uniform_")
_ZERO_TAGS = (torch.Tag.pointwise, torch.Tag.reduction)
_ONE_KERNEL_ATTENTION = frozenset(SDPA_KERNELS) | _packets("_flash_attention_forward", "_efficient_attention_forward")


def classify(func, rules: Optional[dict] = None) -> str:
    """`COUNTED`, `NO_ARITHMETIC`, `ZERO_BY_CONVENTION` or `UNSUPPORTED` for an aten op (overload);
    `rules` (`macs_rules`) are one analysis's own, an op with one of them is `COUNTED`."""
    if rules and func.overloadpacket in rules:
        return COUNTED
    cls = _CLASS_CACHE.get(func)
    if cls is None:
        packet = func.overloadpacket
        if packet in _MAC_RULES:
            cls = COUNTED
        elif func.is_view or packet in NO_ARITHMETIC_OPS:
            cls = NO_ARITHMETIC
        elif packet in ZERO_MAC_OPS or any(t in func.tags for t in _ZERO_TAGS):
            cls = ZERO_BY_CONVENTION
        else:
            cls = UNSUPPORTED
        _CLASS_CACHE[func] = cls
    return cls


def op_macs(func, args: tuple, kwargs: dict, out: Any, module: Optional[nn.Module] = None,
            rules: Optional[dict] = None) -> int:
    """Multiply-accumulates of one aten op call (0 unless a rule is registered, or given in `rules`, one
    analysis's own (`macs_rules`), which come first; see `classify`)."""
    rule = rules.get(func.overloadpacket) if rules else None
    if rule is None:
        rule = _MAC_RULES.get(func.overloadpacket)
    return 0 if rule is None else int(rule(*args, out=out, module=module, **kwargs))


# --------------------------------------------------------------------------- memory traffic

def _held_elements(t: torch.Tensor) -> int:
    """Elements a tensor really holds: a broadcast (stride-0) dimension counts once."""
    if t.numel() == 0:
        return 0
    return math.prod(s for s, st in zip(t.shape, t.stride()) if st != 0)


def _bytes(t: torch.Tensor) -> int:
    return _held_elements(t) * t.element_size()


def _tensors(tree) -> List[torch.Tensor]:
    """The distinct tensors in nested tuples / lists / dicts (aten's argument shapes), in order; a plain
    walk, several times faster than pytree's on the hot path of counting."""
    seen, out, stack = set(), [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, torch.Tensor):
            if id(node) not in seen:
                seen.add(id(node))
                out.append(node)
        elif isinstance(node, (tuple, list)):
            stack.extend(reversed(node))
        elif isinstance(node, dict):
            stack.extend(reversed(list(node.values())))
    return out


def is_free(func) -> bool:
    """View and metadata-only ops move no data."""
    return func.is_view or func.overloadpacket in _FREE_OPS


def op_mem_bytes(func, args: tuple, kwargs: dict, out: Any) -> tuple:
    """(bytes read, bytes written) of one aten op call; see `analysis.cost` for the traffic model."""
    if is_free(func):
        return 0, 0
    packet = func.overloadpacket
    if packet in _ONE_KERNEL_ATTENTION:
        return sdpa_mem_bytes(args, kwargs, out)
    inputs = _tensors((args, kwargs))
    if packet in _WRITE_ONLY_SELF and inputs:
        inputs = inputs[1:]
    return sum(_bytes(t) for t in inputs), sum(_bytes(t) for t in _tensors(out))


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
