"""timm's hybrid and windowed attention families (analysis.heads._families_hierarchical): with fused attention
on, the capture's maps equal the explicit softmax that timm's `AttentionExtract` reads with fused attention
off (or a hand recomputation where FX cannot trace the block), logits stay bit-identical, positions are
the tokens each window really holds, and models whose attention is no softmax over tokens are refused."""
import functools
import math

import pytest
import timm
import torch
import torch.nn as nn
from timm.layers.attention2d import MultiQueryAttention2d
from timm.layers.bottleneck_attn import BottleneckAttn
from timm.layers.halo_attn import HaloAttn
from timm.models import lowformer, tiny_vit
from timm.models.iformer import SHMA as iformer_SHMA
from timm.utils import AttentionExtract

from analysis.heads.ablation import HeadMask
from analysis.heads.attention import AttentionCapture
from analysis.heads.layers import UnsupportedModelError, attention_layers
from analysis.heads.similarity import head_similarity
from tests.heads.test_attention import _hook_count, _vit
from tests.helpers import randomize_batchnorm


def _tiny_vit(m, args, kwargs):
    """TinyViT: LeViT-style bias on a window, q and k from the normalised tokens."""
    x = m.norm(args[0])
    B, N, _ = x.shape
    q, k, _ = m.qkv(x).view(B, N, m.num_heads, -1).split([m.key_dim, m.key_dim, m.val_dim], dim=3)
    bias = m.attention_biases[:, m.attention_bias_idxs]
    return torch.softmax(q.transpose(1, 2) @ k.permute(0, 2, 3, 1) * m.key_dim ** -0.5 + bias, -1)


def _lowformer(m, args, kwargs):
    """LowFormer: q, k from the strided depthwise conv and the pointwise projection, heads first."""
    xout = m.pwise(m.conv_proj(args[0]))
    q, k, _ = xout.reshape(xout.shape[0], m.num_heads, 3 * m.head_dim, -1).transpose(-1, -2).chunk(3, dim=-1)
    return torch.softmax(q @ k.transpose(-1, -2) * m.head_dim ** -0.5, -1)


# where FX cannot reach the softmax (TinyViT's and LowFormer's blocks are not traced; MobileViT's block unfolds
# in Python)
BY_HAND = {tiny_vit.Attention: _tiny_vit, timm.layers.Attention: _vit, lowformer.ConvAttention: _lowformer}

FAMILIES = {  # name: (family key, create_model kwargs, input side, quick): native sizes, fewer blocks
    "tiny_vit_5m_224": ("TinyViT", dict(depths=(1, 1, 1, 1)), 224, False),
    "efficientformer_l1": ("EfficientFormer", dict(depths=(1, 1, 1, 1)), 224, True),
    "efficientformerv2_s0": ("EfficientFormerV2", dict(depths=(1, 1, 2, 2)), 224, False),
    "fastvit_mci0": ("FastViT", dict(layers=(1, 1, 1, 1)), 128, True),
    "maxvit_pico_rw_256": ("MaxxViT", {}, 256, False),
    "coatnet_pico_rw_224": ("MaxxViT", {}, 224, False),
    "maxxvitv2_nano_rw_256": ("MaxxViT", {}, 256, False),
    "swinv2_tiny_window8_256": ("Swin v2", dict(depths=(2, 2), num_heads=(3, 6)), 256, False),
    "swinv2_cr_tiny_224": ("Swin v2", dict(depths=(2, 2), num_heads=(3, 6)), 224, False),
    "mobilevit_xxs": ("MobileViT", {}, 160, True),
    "nextvit_small": ("NextViT", dict(depths=(1, 1, 5, 1)), 224, False),
    "gcvit_xxtiny": ("GCViT", {}, 224, False),
    "davit_tiny": ("DaViT", dict(depths=(1, 1, 1, 1)), 224, False),
    "caformer_s18": ("CAFormer", {}, 224, False),
    "swin_tiny_patch4_window7_224": ("Swin", dict(depths=(2, 2), num_heads=(3, 6)), 224, True),  # v1 still read
    "botnet26t_256": ("BotNet", {}, 256, False),  # heads folded into the batch, no output projection
    "halonet26t": ("HaloNet", {}, 256, False),
    "iformer_t": ("iFormer", {}, 224, False),
    "mobilenetv4_hybrid_medium": ("MobileNetV4 attention", {}, 224, True),  # multi-query, keys at stride 2
    "lowformer_b0": ("LowFormer", {}, 224, True),
}
CASES = [pytest.param(name, id=name, marks=() if quick else pytest.mark.slow)
         for name, (_, _, _, quick) in FAMILIES.items()]


@functools.lru_cache(maxsize=None)
def _model(name):
    torch.manual_seed(0)
    model = randomize_batchnorm(timm.create_model(name, **FAMILIES[name][1])).eval()
    with torch.no_grad():  # non-trivial attention biases (timm initialises some to zero)
        for mod in model.modules():
            if hasattr(mod, "attention_biases"):
                mod.attention_biases.normal_(0, 1)
                mod.attention_bias_cache = {}
    return model


def _fused(model, on: bool):
    for mod in model.modules():
        if hasattr(mod, "fused_attn"):
            mod.fused_attn = on


@functools.lru_cache(maxsize=None)
def _captured(name):
    """(model, input, logits without the probe, logits with it, capture, each layer's (args, kwargs))."""
    model, side = _model(name), FAMILIES[name][2]
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(1))
    calls, layers = {}, attention_layers(model)
    handles = [layer.module.register_forward_pre_hook(
        lambda m, a, k, n=layer.name: calls.__setitem__(n, (a, k)), with_kwargs=True) for layer in layers]
    with torch.no_grad():
        reference = model(x)
        for h in handles:
            h.remove()
        before = _hook_count(model)
        with AttentionCapture(model) as cap:
            logits = model(x)
    assert _hook_count(model) == before
    return model, x, reference, logits, cap, calls


def _explicit_maps(model, x, cap, calls):
    """Each layer's map, read independently: timm's AttentionExtract (FX) with fused attention off, or by hand."""
    modules = dict(model.named_modules())
    by_hand = {rec.layer: fn for rec in cap.maps for t, fn in BY_HAND.items() if type(modules[rec.layer]) is t}
    if by_hand:
        with torch.no_grad():
            return {layer: fn(modules[layer], *calls[layer]) for layer, fn in by_hand.items()}
    _fused(model, False)
    try:
        with torch.no_grad():
            nodes = AttentionExtract(model, names=["*softmax*"], method="fx")(x)
    finally:
        _fused(model, True)
    return {rec.layer: _heads_unfolded(next(v for k, v in nodes.items() if k.startswith(rec.layer + ".")), rec)
            for rec in cap.maps}


def _heads_unfolded(ref, rec):
    """timm's maps with the heads in its batch (BotNet [B * heads, N, M], HaloNet [B * heads, blocks, N, M]) as
    the capture's [B * windows, heads, N, M], single-head maps (iFormer) with their head dim; others unchanged."""
    if rec.family == "iFormer":  # single head: [B * windows, N, M]
        return ref[:, None]
    if rec.family not in ("BotNet", "HaloNet"):
        return ref
    ref = ref.unflatten(0, (-1, rec.num_heads))
    return ref.movedim(2, 1).flatten(0, 1) if ref.dim() == 5 else ref


def _width(layer):
    """Channels of the projection input that the heads tile (BotNet / HaloNet: their output, the pool's input;
    LowFormer with the projection fused into its upsampling: the identity's input)."""
    p, m = layer.proj, layer.module
    if isinstance(p, (nn.Identity, nn.AvgPool2d)):
        return m.o_proj_inpdim if isinstance(m, lowformer.ConvAttention) else m.dim_out_v
    width = getattr(p, "in_features", None) or getattr(p, "in_channels", None)
    if width is None:  # conv + norm (`conv`; iFormer: `c`), MobileNetV4 multi-query's output (`proj`)
        width = next(getattr(p, a) for a in ("conv", "c", "proj") if hasattr(p, a)).in_channels
    return width


@pytest.mark.parametrize("name", CASES)
def test_capture_matches_explicit_softmax_and_keeps_logits(name):
    model, x, reference, logits, cap, calls = _captured(name)
    assert torch.equal(logits, reference)  # bit-identical with fused attention on
    layers = attention_layers(model)
    assert {layer.family for layer in layers} == {FAMILIES[name][0]}
    assert [m.layer for m in cap.maps] == [layer.name for layer in layers] and layers
    expected = _explicit_maps(model, x, cap, calls)
    for layer, rec in zip(layers, cap.maps):
        assert rec.attn.shape == expected[rec.layer].shape, rec.layer
        assert (rec.attn - expected[rec.layer]).abs().max().item() <= 1e-6, rec.layer
        assert torch.allclose(rec.attn.sum(-1), torch.ones(()), atol=1e-5)
        # heads enter the projection as contiguous slices of its input channels (what head ablation nulls)
        assert layer.num_heads * layer.head_dim == _width(layer) == rec.attn.shape[1] * layer.head_dim
        assert rec.batch_size == 2 and rec.attn.shape[0] == 2 * rec.windows
        assert rec.query_pos.shape == (rec.windows, rec.attn.shape[2], 2)
        assert rec.key_pos.shape == (rec.windows, rec.attn.shape[3], 2)


def _record(name, index=0):
    return _captured(name)[4].maps[index]


def _stride(name, rec):
    """Pixels between neighbouring feature tokens of this layer's feature map."""
    placed = rec.key_pos[~rec.key_pos.isnan().any(-1)]
    return placed[:, 1].unique().diff().min().item()


@pytest.mark.slow
def test_maxvit_grid_windows_hold_tokens_strided_across_the_map():
    """Block attention: window 0 is the top-left 8 x 8 tokens; grid attention: window 0 holds every
    (H / 8)-th token of the map, so its neighbours are H / 8 tokens apart (MaxViT's dilated global mixing)."""
    side = 256
    block, grid = _record("maxvit_pico_rw_256", 0), _record("maxvit_pico_rw_256", 1)
    s = side / 64  # stage 1: 64 x 64 tokens
    assert block.key_pos[0, :8, 1].tolist() == [(i + 0.5) * s for i in range(8)]
    assert grid.key_pos[0, :8, 1].tolist() == [(i * 8 + 0.5) * s for i in range(8)]
    assert grid.windows == block.windows == 64


@pytest.mark.slow
def test_gcvit_global_queries_are_the_pooled_map_and_keys_the_window():
    local, glob = _record("gcvit_xxtiny", 0), _record("gcvit_xxtiny", 1)
    assert torch.equal(local.query_pos, local.key_pos)
    assert (glob.query_pos == glob.query_pos[:1]).all()  # one global query set, shared by every window
    q, k = glob.query_pos[0], glob.key_pos[0]  # 56 x 56 tokens pooled to 7 x 7: every 8th token
    assert q[:7, 1].diff().unique().tolist() == [8 * 4.0] and k[:7, 1].diff().unique().tolist() == [4.0]


def test_mobilevit_windows_are_pixel_offsets_within_patches():
    """MobileViT attends among the patches that share an offset inside the 2 x 2 patch: one window per
    offset, neighbours one patch (two feature tokens) apart."""
    rec = _record("mobilevit_xxs")
    assert rec.windows == 4 and not rec.query_pos.isnan().any()
    s = _stride("mobilevit_xxs", rec)
    assert rec.key_pos[0, 1, 1] - rec.key_pos[0, 0, 1] == s * 2 and rec.key_pos[1, 0, 1] - rec.key_pos[0, 0, 1] == s
    assert rec.key_pos.reshape(-1, 2).unique(dim=0).shape[0] == rec.windows * rec.attn.shape[2]  # each token once


@pytest.mark.slow
def test_nextvit_keys_sit_at_the_centroid_of_the_tokens_they_pool():
    rec = _record("nextvit_small")
    pool = dict(_model("nextvit_small").named_modules())[rec.layer].sr_ratio ** 2
    assert (rec.attn.shape[2], rec.attn.shape[3], pool) == (784, 49, 16)  # 28 x 28 tokens, 4^2 per key
    assert torch.allclose(rec.key_pos[0], rec.query_pos[0].view(49, pool, 2).mean(1))
    assert rec.key_pos[0, 0].tolist() == [4.0, 64.0]  # the first 16 tokens of row 0: x = 4, 12, ..., 124 px


def test_tiny_vit_pads_its_last_windows_bottom_right():
    """At 160 px TinyViT's last stage is 5 x 5 tokens in a 7 x 7 window: the block pads 2 rows and 2 columns,
    and those padded tokens have no position."""
    model = timm.create_model("tiny_vit_5m_224", depths=(1, 1, 1, 1)).eval()
    with torch.no_grad(), AttentionCapture(model, layers=["stages.3.blocks.0.attn"]) as cap:
        model(torch.randn(1, 3, 160, 160))
    pos = cap.maps[0].key_pos.view(7, 7, 2)
    assert cap.maps[0].windows == 1 and pos[:5, :5].isfinite().all()
    assert pos[5:].isnan().all() and pos[:, 5:].isnan().all()
    assert pos[0, :5, 1].tolist() == [16.0, 48.0, 80.0, 112.0, 144.0]


def test_efficientformer_attends_the_last_stage_grid():
    rec = _record("efficientformer_l1")
    assert rec.attn.shape[-1] == 49 and rec.query_pos[0, 0].tolist() == [16.0, 16.0]


@pytest.mark.parametrize("name", [pytest.param(n, id=n, marks=() if FAMILIES[n][3] else pytest.mark.slow)
                                  for n in ("mobilevit_xxs", "fastvit_mci0", "tiny_vit_5m_224", "efficientformerv2_s0",
                                            "maxvit_pico_rw_256", "swinv2_cr_tiny_224", "nextvit_small", "gcvit_xxtiny",
                                            "davit_tiny", "efficientformer_l1", "botnet26t_256", "halonet26t",
                                            "mobilenetv4_hybrid_medium", "lowformer_b0")])
def test_head_similarity_runs_end_to_end(name):
    model, x = _captured(name)[:2]
    df = head_similarity(model, [x])
    layers = attention_layers(model)
    assert sorted(df.layer.unique()) == sorted(layer.name for layer in layers)
    sims = df[(df.metric == "mean_pairwise_cosine") & df["head"].isna() & df.applicable]
    assert len(sims) == sum(layer.num_heads > 1 for layer in layers) > 0
    assert sims.value.between(-1, 1).all()  # cosines are clamped to [-1, 1] where computed (rounding)
    dist = df[(df.metric == "mean_attention_distance") & df["head"].isna()]
    assert len(dist) == len(layers) and dist.value.notna().all() and (dist.value > 0).all()


FOLDED = {  # BotNet / HaloNet layers alone, on an 8 x 8 map of 4 px tokens: every query stride and pooling
    "halo": lambda: HaloAttn(16, 32, num_heads=4, block_size=4, halo_size=1),
    "halo_strided_queries": lambda: HaloAttn(16, 32, num_heads=4, block_size=4, halo_size=1, stride=2),
    "halo_pooled": lambda: HaloAttn(16, 32, num_heads=4, block_size=4, halo_size=1, stride=2, avg_down=True),
    "bottleneck": lambda: BottleneckAttn(16, 32, feat_size=(8, 8), num_heads=4),
    "bottleneck_pooled": lambda: BottleneckAttn(16, 32, feat_size=(8, 8), num_heads=4, stride=2),
}


def _folded(kind):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 4, 4), FOLDED[kind]()).eval()
    return model, torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind", FOLDED)
def test_folded_heads_match_timms_extractor_and_null_by_their_values(kind):
    """Maps equal timm's AttentionExtract (FX) in the capture's layout, outputs stay bit-identical, and nulling
    head h at the pool's input equals zeroing head h's value weights (the ablation removes that head)."""
    model, x = _folded(kind)
    with torch.no_grad():
        reference = model(x)
        with AttentionCapture(model) as cap:
            logits = model(x)
        (name, expected), = AttentionExtract(model, names=["*softmax*"], method="fx")(x).items()
        with HeadMask(model, {"1": [1]}):
            nulled = model(x)
    rec, layer, m = cap.maps[0], attention_layers(model)[0], model[1]
    assert torch.equal(logits, reference) and layer.num_heads * layer.head_dim == m.dim_out_v
    assert (rec.attn - _heads_unfolded(expected, rec)).abs().max() <= 1e-6 and rec.batch_size == 2
    assert rec.query_pos.shape == (rec.windows, rec.attn.shape[2], 2) and rec.key_pos.shape[1] == rec.attn.shape[3]
    conv, dv = (m.kv, m.dim_head_qk + m.dim_head_v) if isinstance(m, HaloAttn) else (m.qkv, None)
    v1 = (slice(dv + m.dim_head_qk, 2 * dv) if dv else
          slice(2 * m.dim_out_qk + m.dim_head_v, 2 * m.dim_out_qk + 2 * m.dim_head_v))
    with torch.no_grad():
        conv.weight[v1] = 0
        assert torch.allclose(model(x), nulled, atol=1e-6) and not torch.allclose(nulled, reference, atol=1e-3)


def test_halo_windows_are_blocks_with_their_halo():
    """8 x 8 tokens of 4 px, blocks of 4 x 4 with a halo of 1: block 1 (top right) attends tokens 3..8 of rows
    -1..4 (row -1 and column 8 are padding); with stride 2 its queries are every other token of the block."""
    rec = _record_of(*_folded("halo_strided_queries"))
    keys = rec.key_pos[1].view(6, 6, 2)
    assert rec.windows == 4 and tuple(rec.attn.shape) == (8, 4, 4, 36)
    assert keys[0].isnan().all() and keys[:, 5].isnan().all() and keys[1:, :5].isfinite().all()
    assert keys[1, :5, 1].tolist() == [14.0, 18.0, 22.0, 26.0, 30.0] and keys[1:, 0, 0].tolist()[:2] == [2.0, 6.0]
    assert rec.query_pos[1].tolist() == [[2.0, 18.0], [2.0, 26.0], [10.0, 18.0], [10.0, 26.0]]


def _record_of(model, x):
    with torch.no_grad(), AttentionCapture(model) as cap:
        model(x)
    return cap.maps[0]


def test_iformer_windows_tile_the_zero_padded_map():
    """iFormer's windowed SHMA on a 6 x 6 map with windows of 4: padded to 8 x 8, 4 windows, the last two rows
    and columns padding; maps equal timm's own explicit softmax (fused attention off)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 4, 4), iformer_SHMA(16, window_size=4)).eval()
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        rec = _record_of(model, x)
        model[1].fused_attn = False
        (_, expected), = AttentionExtract(model, names=["*attn_drop"], method="hook")(x).items()
    assert (rec.windows, tuple(rec.attn.shape)) == (4, (8, 1, 16, 16))
    assert (rec.attn[:, 0] - expected).abs().max() <= 1e-6
    pos = rec.key_pos[3].view(4, 4, 2)
    assert pos[:2, :2].isfinite().all() and pos[2:].isnan().all() and pos[:, 2:].isnan().all()
    assert pos[0, 0].tolist() == [18.0, 18.0]


def test_multi_query_attention_pools_queries_and_strides_keys():
    """MobileNetV4's multi-query attention with query_strides=2 and kv_stride=2 on 8 x 8 tokens of 4 px: a query
    is the average of a 2 x 2 block (its centre), a key every other token; maps equal timm's explicit softmax,
    one key head broadcast to the query heads."""
    torch.manual_seed(0)
    mqa = MultiQueryAttention2d(16, num_heads=2, key_dim=8, value_dim=8, query_strides=2, kv_stride=2)
    model = nn.Sequential(nn.Conv2d(3, 16, 4, 4), mqa).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        rec = _record_of(model, x)
        logits = model(x)
        mqa.fused_attn = False
        (_, expected), = AttentionExtract(model, names=["*softmax*"], method="fx")(x).items()
    assert torch.equal(logits, reference) and tuple(rec.attn.shape) == (2, 2, 16, 16)
    assert (rec.attn - expected).abs().max() <= 1e-6
    assert rec.query_pos[0, :2].tolist() == [[4.0, 4.0], [4.0, 12.0]]
    assert rec.key_pos[0, :2].tolist() == [[2.0, 2.0], [2.0, 10.0]]


REFUSED = {  # model: (kwargs, what the line must say)
    "efficientvit_b0": ({}, "ReLU linear attention"),
    "mobilevitv2_050": ({}, "separable linear attention"),
    "coat_lite_tiny": ({}, "factorized attention"),
    "edgenext_xx_small": ({}, "cross-covariance attention"),
    "swiftformer_xs": ({}, "additive attention"),
    "focalnet_tiny_srf": ({}, "focal modulation"),
    "efficientvim_m1": ({}, "hidden-state mixer"),
    "convit_tiny": ({}, "gated positional self-attention"),
}


@pytest.mark.parametrize("name", REFUSED, ids=list(REFUSED))
def test_attention_that_is_no_softmax_over_tokens_is_refused_in_one_line(name):
    kwargs, why = REFUSED[name]
    with pytest.raises(UnsupportedModelError, match=why) as err:
        AttentionCapture(timm.create_model(name, **kwargs))
    assert "\n" not in str(err.value) and "no head attention maps" in str(err.value)


def test_davit_channel_attention_is_left_out_not_refused():
    """DaViT alternates spatial window attention (read) and channel attention (a softmax over channels: not a
    token map, so not read); the spatial layers alone are analysed."""
    model = timm.create_model("davit_tiny", depths=(1, 1, 1, 1))
    layers = attention_layers(model)
    assert len(layers) == 4 and all(".0.attn" in layer.name for layer in layers)
    assert math.prod(layers[0].module.window_size) == 49
