"""AttentionCapture: maps equal an independent recomputation from each module's weights,
rows sum to 1, logits are bit-identical with the probe, and no hook is left behind."""
import contextlib

import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from timm.models.efficientvit_msra import CascadedGroupAttention
from timm.models.levit import Attention as LevitAttention
from timm.models.levit import AttentionDownsample
from timm.models.shvit import SHSA
from timm.models.swin_transformer import WindowAttention

import shvit  # noqa: F401
from analysis.heads._recorder import _cpu_flash_with_logsumexp, _sdpa_arguments, _sdpa_map
from analysis.heads.attention import AttentionCapture
from analysis.heads.families import (AttentionFamily, attention_family, register_attention_family,
                                     supported_families, unregister_attention_family)
from analysis.core.stages import stage_map
from analysis.heads.layers import UnsupportedModelError, attention_layers
from analysis.core.errors import UserError
from shvit.layers import MHSA, BottleneckSHSA
from tests.helpers import randomize_batchnorm


# ---------------------------------------------------------------- independent recomputations
# Each takes the module and the (args, kwargs) it was called with, and returns
# softmax(q k^T * scale + bias) as [B*, heads, N, M], written from the module's weights.

def _vit(m, args, kwargs):
    x = args[0]
    B, N, _ = x.shape
    w = m.qkv.weight.reshape(3, m.num_heads, m.head_dim, -1)
    b = m.qkv.bias if m.qkv.bias is not None else torch.zeros(3 * m.num_heads * m.head_dim)
    b = b.reshape(3, m.num_heads, m.head_dim)
    q = torch.einsum("bnc,hdc->bhnd", x, w[0]) + b[0][None, :, None]
    k = torch.einsum("bnc,hdc->bhnd", x, w[1]) + b[1][None, :, None]
    return torch.softmax(q @ k.transpose(-2, -1) * m.head_dim ** -0.5, -1)


def _swin(m, args, kwargs):
    x, mask = args[0], kwargs.get("mask", args[1] if len(args) > 1 else None)
    B_, N, _ = x.shape
    h = m.num_heads
    q, k, _ = nn.functional.linear(x, m.qkv.weight, m.qkv.bias).reshape(B_, N, 3, h, -1).permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5
    # relative position bias, indexed by hand from the table
    ws = m.window_size[0]
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]) + ws - 1
    idx = rel[0] * (2 * ws - 1) + rel[1]
    logits = logits + m.relative_position_bias_table[idx].permute(2, 0, 1)[None]
    if mask is not None:
        nw = mask.shape[0]
        logits = (logits.view(-1, nw, h, N, N) + mask[None, :, None]).view(B_, h, N, N)
    return logits.softmax(-1)


def _levit(m, args, kwargs):
    x = args[0]
    B, N, _ = x.shape
    bias = m.attention_biases[:, m.attention_bias_idxs]
    if isinstance(m, AttentionDownsample):
        k = m.kv(x).view(B, N, m.num_heads, -1)[..., :m.key_dim].permute(0, 2, 1, 3)
        q = m.q(x).view(B, -1, m.num_heads, m.key_dim).permute(0, 2, 1, 3)
    else:
        qkv = m.qkv(x).view(B, N, m.num_heads, -1)
        q, k = qkv[..., :m.key_dim].permute(0, 2, 1, 3), qkv[..., m.key_dim:2 * m.key_dim].permute(0, 2, 1, 3)
    return torch.softmax(q @ k.transpose(-2, -1) * m.key_dim ** -0.5 + bias, -1)


def _cga(m, args, kwargs):
    """Cascade: head j's input is its channel chunk plus head j-1's output."""
    x = args[0]
    B, C, H, W = x.shape
    chunks, maps, prev = x.chunk(m.num_heads, 1), [], None
    for j in range(m.num_heads):
        inp = chunks[j] if prev is None else chunks[j] + prev
        q, k, v = m.qkvs[j](inp).split([m.key_dim, m.key_dim, m.val_dim], 1)
        q = m.dws[j](q).flatten(2)
        a = torch.softmax(q.transpose(1, 2) @ k.flatten(2) * m.key_dim ** -0.5
                          + m.attention_biases[j][m.attention_bias_idxs], -1)
        maps.append(a)
        prev = (v.flatten(2) @ a.transpose(1, 2)).view(B, m.val_dim, H, W)
    return torch.stack(maps, 1)


def _conv_mixer(m, args, kwargs):
    x = args[0]
    if isinstance(m, MHSA):
        qkv = m.qkv(m.pre_norm(x)).flatten(2).view(x.shape[0], m.num_heads, -1, x.shape[2] * x.shape[3])
        q, k = qkv[:, :, :m.qk_dim], qkv[:, :, m.qk_dim:2 * m.qk_dim]
        return torch.softmax(q.transpose(-2, -1) @ k * m.qk_dim ** -0.5, -1)
    if isinstance(m, BottleneckSHSA):
        t = m.qkv(m.reduce(x)).flatten(2)
    else:  # SHSA: attention on the first pdim channels
        t = m.qkv(m.pre_norm(x[:, :m.pdim])).flatten(2)
    q, k = t[:, :m.qk_dim], t[:, m.qk_dim:2 * m.qk_dim]
    return torch.softmax(q.transpose(1, 2) @ k * m.qk_dim ** -0.5, -1)[:, None]


RECOMPUTE = [(SHSA, _conv_mixer), (MHSA, _conv_mixer), (BottleneckSHSA, _conv_mixer),
             (WindowAttention, _swin), (LevitAttention, _levit), (AttentionDownsample, _levit),
             (CascadedGroupAttention, _cga), (timm.layers.Attention, _vit)]

FAMILIES = [  # (model, kwargs, input side): native sizes, fewer blocks to keep the test fast
    ("deit_tiny_patch16_224", dict(depth=2), 224),
    ("swin_tiny_patch4_window7_224", dict(depths=(2, 2), num_heads=(3, 6)), 224),
    ("levit_128s", {}, 224),
    ("efficientvit_m0", {}, 224),
    ("shvit_s1", {}, 224),
    ("shvitlab_t6_mhsa", dict(depths=(1, 1, 2)), 160),
    ("shvitlab_fig6_full", dict(depths=(1, 1, 1)), 160),
    ("shvitlab_fig6_bottleneck", dict(depths=(1, 1, 1)), 160),
]


# every CPU backend of scaled_dot_product_attention, forced, so the tests prove the capture on any host
CPU_BACKENDS = {"auto": None, "math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION}
each_cpu_backend = pytest.mark.parametrize("backend", CPU_BACKENDS.values(), ids=CPU_BACKENDS.keys())


def forced(backend):
    return sdpa_kernel(backend) if backend is not None else contextlib.nullcontext()


def _build(name, kwargs):
    torch.manual_seed(0)
    model = randomize_batchnorm(timm.create_model(name, **kwargs)).eval()
    with torch.no_grad():  # non-trivial attention biases (timm initialises them to zero)
        for mod in model.modules():
            if hasattr(mod, "attention_biases"):
                mod.attention_biases.normal_(0, 1)
                if hasattr(mod, "attention_bias_cache"):
                    mod.attention_bias_cache = {}
    return model


def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def _with_and_without_probe(model, x, **capture):
    """(logits without the probe, logits with it, the capture, each attention layer's (args, kwargs)); asserts that
    the capture leaves no hook behind."""
    calls = {}
    handles = [layer.module.register_forward_pre_hook(
        lambda m, a, k, name=layer.name: calls.__setitem__(name, (a, k)), with_kwargs=True)
        for layer in attention_layers(model)]
    try:
        reference = model(x)
    finally:
        for h in handles:
            h.remove()
    before = _hook_count(model)
    with AttentionCapture(model, **capture) as cap:
        logits = model(x)
    assert _hook_count(model) == before  # removed on exit
    return reference, logits, cap, calls


def _capture(model, x, backend=None, **capture):
    """The capture of one forward pass of `x`, without gradients, under `backend` (None: the dispatcher's choice)."""
    with torch.no_grad(), forced(backend), AttentionCapture(model, **capture) as cap:
        model(x)
    return cap


def _assert_same_maps(maps, others):
    assert len(maps) == len(others) > 0
    for a, b in zip(maps, others):
        assert (a.attn - b.attn).abs().max() <= 1e-6, a.layer


SDPA_FAMILIES = {"deit_tiny_patch16_224"}  # the families whose attention runs through F.scaled_dot_product_attention
# Every family under every CPU backend; the backend can only matter where SDPA runs, so the other
# families' forced-backend runs are `slow` (in `make test`, out of the quick loop).
CAPTURE_CASES = [pytest.param(*family, backend, id=f"{family[0]}-{key}",
                              marks=() if key == "auto" or family[0] in SDPA_FAMILIES else pytest.mark.slow)
                 for family in FAMILIES for key, backend in CPU_BACKENDS.items()]


@pytest.mark.parametrize("name,kwargs,side,backend", CAPTURE_CASES)
def test_capture_matches_recomputation_and_keeps_logits(name, kwargs, side, backend):
    model = _build(name, kwargs)
    layers = attention_layers(model)
    with torch.no_grad(), forced(backend):
        reference, logits, cap, calls = _with_and_without_probe(model, torch.randn(1, 3, side, side))
    assert torch.equal(logits, reference)  # bit-identical
    assert [m.layer for m in cap.maps] == [layer.name for layer in layers] and len(layers) > 0
    for layer, rec in zip(layers, cap.maps):
        fn = next(f for t, f in RECOMPUTE if isinstance(layer.module, t))
        with torch.no_grad():
            expected = fn(layer.module, *calls[layer.name])
        assert rec.attn.shape == expected.shape
        assert rec.attn.shape[1] == layer.num_heads
        assert (rec.attn - expected).abs().max().item() <= 1e-6, layer.name
        assert torch.allclose(rec.attn.sum(-1), torch.ones(()), atol=1e-5)
        assert rec.attn.shape[0] == rec.batch_size * rec.windows


CUDA_BACKENDS = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
                 "efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


@pytest.mark.gpu
@pytest.mark.parametrize("backend", CUDA_BACKENDS.values(), ids=CUDA_BACKENDS.keys())
@pytest.mark.parametrize("amp", [None, torch.float16, torch.bfloat16], ids=["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("exact", [True, False], ids=["exact", "explicit"])
def test_cuda_capture_matches_recomputation_under_each_backend(backend, amp, exact):
    """fp32: maps within 1e-5 of the fp32 recomputation; autocast: within 2e-3 (q and k are fp16 /
    bf16 there, the map itself is recomputed in fp32); logits bit-identical with the probe, except
    where `exact_outputs=False` runs a plain fp32 call explicitly (then equal up to rounding)."""
    model = _build("deit_tiny_patch16_224", dict(depth=2)).cuda()
    x = torch.randn(2, 3, 224, 224, device="cuda")
    amp_ctx = torch.autocast("cuda", dtype=amp) if amp else contextlib.nullcontext()
    try:
        with torch.no_grad(), forced(backend), amp_ctx:
            reference, logits, cap, calls = _with_and_without_probe(model, x, exact_outputs=exact)
    except RuntimeError as e:  # e.g. flash has no fp32 kernel
        pytest.skip(f"{backend} cannot run here: {str(e).splitlines()[0]}")
    if exact or amp is not None:
        assert torch.equal(logits, reference)
    else:
        torch.testing.assert_close(logits, reference, rtol=1e-4, atol=1e-4)
    assert len(cap.maps) == 2
    tol = 1e-5 if amp is None else 2e-3
    for rec in cap.maps:
        with torch.no_grad():
            expected = _vit(dict(model.named_modules())[rec.layer], *calls[rec.layer])
        assert (rec.attn - expected.float()).abs().max().item() <= tol, rec.layer


@each_cpu_backend
def test_deit_fused_and_explicit_paths_agree(backend):
    model = _build("deit_tiny_patch16_224", dict(depth=2))
    assert model.blocks[0].attn.fused_attn  # timm default, left on
    x = torch.randn(2, 3, 224, 224)
    fused = _capture(model, x, backend)
    for blk in model.blocks:
        blk.attn.fused_attn = False
    _assert_same_maps(fused.maps, _capture(model, x).maps)


@pytest.mark.parametrize("name,kwargs,side", FAMILIES[:2], ids=[f[0] for f in FAMILIES[:2]])
def test_explicit_capture_records_the_weights_it_applies(name, kwargs, side):
    """`exact_outputs=False` (what head_similarity uses): a fused call runs as softmax(q k^T s + mask) @ v.
    The maps still equal the independent recomputation, the outputs differ from the fused kernel's only
    by rounding, `fused_attn` is left as it was, and no hook stays behind."""
    model = _build(name, kwargs)
    for layer in attention_layers(model):
        layer.module.fused_attn = True  # Swin ships without; its mask then rides in the fused call
    with torch.no_grad():
        reference, logits, cap, calls = _with_and_without_probe(model, torch.randn(2, 3, side, side),
                                                                exact_outputs=False)
    assert all(layer.module.fused_attn for layer in attention_layers(model))
    assert not torch.equal(logits, reference)  # the explicit path really ran (rounding differs) ...
    torch.testing.assert_close(logits, reference, rtol=1e-4, atol=1e-5)  # ... and computes the same thing
    recompute = _vit if name.startswith("deit") else _swin
    modules = dict(model.named_modules())
    assert [m.layer for m in cap.maps] == list(calls) and len(calls) > 0
    for rec in cap.maps:
        expected = recompute(modules[rec.layer], *calls[rec.layer])
        assert (rec.attn - expected).abs().max().item() <= 1e-6, rec.layer


def test_explicit_capture_leaves_the_fused_kernel_where_it_is_not_plain():
    """Only plain fp32 inference runs explicitly: with gradients (or autocast, or dropout) the
    fused kernel keeps its place, so the logits stay bit-identical even with `exact_outputs=False`."""
    model = _build("deit_tiny_patch16_224", dict(depth=2))
    x = torch.randn(1, 3, 224, 224)
    reference = model(x)  # parameters require grad: q, k, v do too
    with AttentionCapture(model, exact_outputs=False) as cap:
        logits = model(x)
    assert torch.equal(logits, reference)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        reference = model(x)
        with AttentionCapture(model, exact_outputs=False):
            assert torch.equal(model(x), reference)
    assert len(cap.maps) == 2 and all(torch.allclose(m.attn.sum(-1), torch.ones(())) for m in cap.maps)


def test_windows_and_positions():
    cap = _capture(_build(*FAMILIES[1][:2]), torch.randn(2, 3, 224, 224))
    first = cap.maps[0]
    assert (first.windows, first.batch_size, tuple(first.attn.shape)) == (64, 2, (128, 3, 49, 49))
    assert first.query_pos.shape == (64, 49, 2) and not first.query_pos.isnan().any()
    # non-shifted first window covers the top-left 7x7 tokens of stride 4 px
    assert first.query_pos[0, 0].tolist() == [2.0, 2.0] and first.query_pos[0, -1].tolist() == [26.0, 26.0]
    # the shifted block's windows are the cyclically shifted grid: masked pairs get ~0 attention
    shifted = cap.maps[1]
    far = torch.cdist(shifted.query_pos, shifted.key_pos) > 7 * 4 * 1.5
    assert far.any() and shifted.attn.view(2, 64, 3, 49, 49).masked_select(far[None, :, None]).max() < 1e-30


def test_streaming_callback_stores_nothing_and_layer_filter():
    model = _build("deit_tiny_patch16_224", dict(depth=4))
    seen = []
    cap = _capture(model, torch.randn(1, 3, 224, 224), callback=seen.append, layers=["blocks.3.attn"])
    assert cap.maps == [] and [m.layer for m in seen] == ["blocks.3.attn"]
    with pytest.raises(UserError, match="no attention layer named blocks.99"):
        AttentionCapture(model, layers=["blocks.99.attn"])


def test_hooks_removed_after_exception():
    model = _build("deit_tiny_patch16_224", dict(depth=4))
    before = _hook_count(model)
    with pytest.raises(RuntimeError):
        with AttentionCapture(model):
            model(torch.randn(1, 5, 224, 224))  # wrong channel count
    assert _hook_count(model) == before


def test_unsupported_architecture_lists_families():
    with pytest.raises(UnsupportedModelError, match="supported families: timm ViT/DeiT.*Swin.*LeViT.*EfficientViT"):
        AttentionCapture(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))
    assert issubclass(UnsupportedModelError, UserError)


def test_cpu_flash_path_runs_the_dispatchers_own_kernel():
    """Where `scaled_dot_product_attention` would run CPU flash attention, the probe runs that kernel
    itself for its logsumexp: the same output bits, and maps exp(q k^T s - lse) that equal the softmax
    recomputation; wherever SDPA would choose otherwise (or autocast, gradients, bool masks, causal),
    the probe declines and the module's own call runs."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 3, 17, 8).unbind(0)
    mask = torch.randn(2, 3, 17, 17)
    for m in (None, mask):
        with forced(SDPBackend.FLASH_ATTENTION):
            out, lse = _cpu_flash_with_logsumexp(_sdpa_arguments(q, k, v, m))
            assert torch.equal(out, F.scaled_dot_product_attention(q, k, v, m))
        fast, log_fast = _sdpa_map(q, k, m, logsumexp=lse, with_log=True)
        assert (fast - _sdpa_map(q, k, m)).abs().max() <= 1e-6
        assert torch.allclose(log_fast.exp(), fast) and (fast.sum(-1) - 1).abs().max() <= 1e-5
    with forced(SDPBackend.MATH):
        assert _cpu_flash_with_logsumexp(_sdpa_arguments(q, k, v)) is None
    with forced(SDPBackend.FLASH_ATTENTION):
        assert _cpu_flash_with_logsumexp(_sdpa_arguments(q, k, v)) is not None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert _cpu_flash_with_logsumexp(_sdpa_arguments(q, k, v)) is None
        assert _cpu_flash_with_logsumexp(_sdpa_arguments(q.clone().requires_grad_(), k, v)) is None
        assert _cpu_flash_with_logsumexp(_sdpa_arguments(q, k, v, mask > 0)) is None
        assert _cpu_flash_with_logsumexp(_sdpa_arguments(q, k, v, is_causal=True)) is None


@each_cpu_backend
def test_fused_swin_with_its_shift_mask_keeps_logits(backend):
    """Swin's fused path passes a float mask (relative position bias + shift mask): with the probe,
    the logits are still bit-identical, and the maps match the explicit path's."""
    model = _build(*FAMILIES[1][:2])
    x = torch.randn(2, 3, 224, 224)
    explicit = _capture(model, x)
    for layer in attention_layers(model):
        layer.module.fused_attn = True
    with torch.no_grad(), forced(backend):
        reference, logits, fused, _ = _with_and_without_probe(model, x, log_maps=True)
    assert torch.equal(logits, reference)
    _assert_same_maps(fused.maps, explicit.maps)
    for a in fused.maps:
        if a.log_attn is not None:  # the CPU flash path: log A comes with A
            assert torch.allclose(a.log_attn.exp(), a.attn)


@each_cpu_backend
@pytest.mark.parametrize("fused", [True, False])
def test_chunked_records_reassemble_the_whole_batch(fused, backend):
    """With `chunk_bytes`, a streaming consumer gets whole-image pieces whose maps and head
    outputs concatenate to the unchunked record of the explicit path (fused Swin: its
    per-window shift mask is sliced with the pieces)."""
    model = _build(*FAMILIES[1][:2])
    x = torch.randn(3, 3, 224, 224)
    whole = _capture(model, x, head_outputs=True)
    for layer in attention_layers(model):
        layer.module.fused_attn = fused
    pieces = []
    _capture(model, x, backend, callback=pieces.append, head_outputs=True, chunk_bytes=1)
    assert len(pieces) == 3 * len(whole.maps)  # 1 byte -> one image per piece
    for rec in whole.maps:
        parts = [p for p in pieces if p.layer == rec.layer]
        assert [p.batch_size for p in parts] == [1, 1, 1] and all(p.windows == rec.windows for p in parts)
        assert (torch.cat([p.attn for p in parts]) - rec.attn).abs().max() <= 1e-6
        assert torch.allclose(torch.cat([p.head_outputs for p in parts]), rec.head_outputs, atol=1e-5)


class ToyAttention(nn.Module):
    """An attention module no built-in family knows: 2 heads, explicit softmax, tokens-last."""

    def __init__(self, dim=8, num_heads=2):
        super().__init__()
        self.heads, self.qkv, self.out = num_heads, nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)).softmax(-1)
        return self.out((attn @ v).transpose(1, 2).reshape(B, N, C))


class Toy(AttentionFamily):
    """The family of ToyAttention, defined outside the package as a user would."""

    key, name, types = "toy", "toy (tests.ToyAttention)", (ToyAttention,)

    def num_heads(self, m):
        return m.heads

    def layout(self, m):
        return m.out, -1, m.qkv.in_features // m.heads

    def positions(self, m, parent, x, image_hw, model):
        pos = torch.stack([torch.arange(x.shape[1], dtype=torch.float32)] * 2, -1)[None]
        return pos, pos


class SingleHeadToy(Toy):
    """Another reading of ToyAttention under the same key: one head (for precedence and replacement)."""

    name = "toy, one head"

    def num_heads(self, m):
        return 1

    def layout(self, m):
        return m.out, -1, m.qkv.in_features


@pytest.fixture
def toy_family():
    """Register the toy family through the public API; unregistered after."""
    register_attention_family(Toy)
    yield Toy
    unregister_attention_family("toy")


def _toy_capture(**capture):
    """Two ToyAttention layers on 3 sequences of 5 tokens, captured with head outputs; checked against the softmax
    of the first layer's q k^T."""
    model = nn.Sequential(ToyAttention(), ToyAttention()).eval()
    x = torch.randn(3, 5, 8)
    cap = _capture(model, x, head_outputs=True, **capture)
    assert [(m.layer, m.num_heads, m.family) for m in cap.maps] == [("0", 2, "toy"), ("1", 2, "toy")]
    with torch.no_grad():
        q, k, _ = model[0].qkv(x).view(3, 5, 3, 2, -1).permute(2, 0, 3, 1, 4)
        expected = (q @ k.transpose(-2, -1)).softmax(-1)
    assert torch.equal(cap.maps[0].attn, expected)
    assert cap.maps[0].head_outputs.shape == (3 * 5, 2, 4)
    return model


def test_registered_family_is_captured(toy_family):
    assert supported_families()[-1] == toy_family.name and attention_family("toy").name == toy_family.name
    _toy_capture()


def test_scoped_family_reads_one_capture_and_leaves_the_registry_alone():
    before = supported_families()
    model = _toy_capture(families=[Toy()])
    assert [layer.family for layer in attention_layers(model, families=[Toy])] == ["toy", "toy"]
    assert supported_families() == before and "toy" not in [layer.family for layer in attention_layers(
        _build("deit_tiny_patch16_224", dict(depth=1)))]
    with pytest.raises(UnsupportedModelError):  # the next analysis without it: as before
        AttentionCapture(model)


def test_scoped_family_takes_precedence_over_the_registered_one(toy_family):
    model = nn.Sequential(ToyAttention()).eval()
    assert [layer.num_heads for layer in attention_layers(model)] == [2]
    assert [layer.num_heads for layer in attention_layers(model, families=[SingleHeadToy()])] == [1]
    assert [layer.num_heads for layer in attention_layers(model)] == [2]


def test_duplicate_key_is_refused_unless_replaced(toy_family):
    with pytest.raises(UserError, match="'toy' is already registered"):
        register_attention_family(SingleHeadToy())
    assert attention_family("toy").name == Toy.name
    register_attention_family(SingleHeadToy(), replace=True)
    assert attention_family("toy").name == SingleHeadToy.name and supported_families().count(SingleHeadToy.name) == 1
    assert [layer.num_heads for layer in attention_layers(nn.Sequential(ToyAttention()))] == [1]
    with pytest.raises(UserError, match="'timm ViT/DeiT' is already registered"):
        register_attention_family(type("Other", (Toy,), {"key": "timm ViT/DeiT"}))


def test_unknown_family_key_is_a_user_error():
    with pytest.raises(UserError, match="no attention family 'nope'; registered: timm ViT/DeiT, Swin"):
        unregister_attention_family("nope")
    with pytest.raises(UserError, match="no attention family 'nope'"):
        attention_family("nope")


def test_builtin_family_keys_are_the_layer_families():
    """A layer's `family` is its family's key: the short name the tables have always carried."""
    keys = ("timm ViT/DeiT", "Swin", "LeViT", "EfficientViT-M", "SHViT")
    assert supported_families()[:5] == tuple(attention_family(k).name for k in keys)
    assert all(attention_family(k).name.startswith(k + " (") for k in keys)
    assert {layer.family for layer in attention_layers(_build("deit_tiny_patch16_224", dict(depth=1)))} == {keys[0]}


def test_unregistered_module_is_not_a_family():
    with pytest.raises(UnsupportedModelError, match="ToyAttention|Sequential"):
        AttentionCapture(nn.Sequential(ToyAttention()))


class SigmoidAttention(ToyAttention):
    """Attention whose weights come from a sigmoid: nothing a capture can read as a map."""

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)).sigmoid()
        return self.out((attn @ v).transpose(1, 2).reshape(B, N, C))


def test_a_family_module_without_a_softmax_is_an_error_not_an_empty_table():
    """A registered family whose module computes no softmax / sdpa used to give an empty table and exit 0."""
    class SigmoidToy(Toy):
        key, name, types = "sigmoid-toy", "sigmoid toy", (SigmoidAttention,)

    model = nn.Sequential(SigmoidAttention()).eval()
    with pytest.raises(UserError, match=r"0 \(SigmoidAttention, family 'sigmoid-toy'\) ran without a softmax"):
        with torch.no_grad(), AttentionCapture(model, families=[SigmoidToy()]):
            model(torch.randn(2, 5, 8))


def test_stages_come_from_the_one_stage_map_whatever_the_container_is_called():
    """timm's NesT keeps its stages in `levels.N` (no `stages` / `layers` in the names): the head tables' stage
    is the stage map's (`core.stages`, which cost and latency read too), not 1 for every layer."""
    model = timm.create_model("nest_tiny")
    layers = attention_layers(model)
    stages = stage_map(model)
    assert sorted({layer.stage for layer in layers}) == [1, 2, 3]
    assert all(stages.stage_of(layer.name) == f"stage{layer.stage}" for layer in layers)
