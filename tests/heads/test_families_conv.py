"""Attention inside timm's convolutional models (analysis.heads._families_conv): CPUBone's strided attention equals a
hand recomputation (FX does not reach its softmax) with keys where its 2 x 2 kernels centre; the non-local block and
MultiQueryAttentionV2 equal timm's `AttentionExtract`; logits stay bit-identical with fused attention on; BAT,
SKNet and ResNeSt attention are refused in one line, and CSATv2's spatial transformer (a softmax over the batch) is
left out while its ViT blocks are read."""
import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import MultiQueryAttentionV2, NonLocalAttn
from timm.models.cpubone import ConvAttention
from timm.models.csatv2 import SpatialTransformerBlock
from timm.utils import AttentionExtract

from analysis.heads.attention import AttentionCapture
from analysis.heads.layers import UnsupportedModelError, attention_layers
from tests.heads.test_families_pooling import (assert_ablation_refused, assert_nulling_equals_zeroed_values,
                                               captured_and_extracted)
from tests.helpers import randomize_batchnorm


def _cpubone(m, x):
    """CPUBone's maps by hand: the input padded as its forward pads it, the strided depthwise conv, the pointwise
    projection, heads first, softmax(q k^T / sqrt(d))."""
    if m.small_kernels and m.att_stride > 1:
        x = F.pad(x, (0, (-x.shape[-1]) % m.att_stride, 0, (-x.shape[-2]) % m.att_stride))
    xout = m.pwise(m.conv_proj(x))
    q, k, _ = xout.reshape(xout.shape[0], m.num_heads, 3 * m.head_dim, -1).transpose(-1, -2).chunk(3, dim=-1)
    return torch.softmax(q @ k.transpose(-1, -2) * m.head_dim ** -0.5, -1)


def _with_inputs(model, x):
    """(logits without the probe, logits with it, capture, each attention module's input)."""
    inputs = {}
    handles = [layer.module.register_forward_pre_hook(lambda m, a, n=layer.name: inputs.__setitem__(n, a[0]))
               for layer in attention_layers(model)]
    with torch.no_grad():
        reference = model(x)
        for h in handles:
            h.remove()
        with AttentionCapture(model) as cap:
            logits = model(x)
    return reference, logits, cap, inputs


def test_cpubone_matches_a_hand_recomputation_and_keeps_logits():
    """cpubone_nano at 224 px: stage 3 (14 x 14 tokens of 16 px) attends through a 2 x 2 stride-2 kernel, a key at the
    centre of its 2 x 2 block; stage 4 (7 x 7 of 32 px) through a 2 x 2 stride-1 kernel after a one-token pad top/left,
    a key half a token up and left of its token."""
    torch.manual_seed(0)
    model = randomize_batchnorm(timm.create_model("cpubone_nano")).eval()
    reference, logits, cap, inputs = _with_inputs(model, torch.randn(2, 3, 224, 224))
    assert torch.equal(logits, reference) and {m.family for m in cap.maps} == {"CPUBone"} and len(cap.maps) == 3
    modules = dict(model.named_modules())
    for rec in cap.maps:
        m = modules[rec.layer]
        with torch.no_grad():
            expected = _cpubone(m, inputs[rec.layer])
        assert rec.attn.shape == expected.shape and (rec.attn - expected).abs().max() <= 1e-6, rec.layer
        layer = next(la for la in attention_layers(model) if la.name == rec.layer)
        assert layer.num_heads * layer.head_dim == m.o_proj_inpdim
    stage3, stage4 = cap.maps[0], cap.maps[1]
    assert stage3.key_pos[0, :2].tolist() == [[16.0, 16.0], [16.0, 48.0]] and stage3.key_pos.shape == (1, 49, 2)
    assert stage4.key_pos[0, :2].tolist() == [[0.0, 0.0], [0.0, 32.0]] and stage4.key_pos.shape == (1, 49, 2)


def test_cpubone_pads_an_odd_map_to_the_stride():
    """A 7 x 7 map of 4 px with a 2 x 2 stride-2 kernel: padded to 8 x 8, 4 x 4 keys, the last centred on the pad."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 32, 4, 4), ConvAttention(32, att_stride=2, small_kernels=True)).eval()
    reference, logits, cap, inputs = _with_inputs(model, torch.randn(2, 3, 28, 28))
    with torch.no_grad():
        expected = _cpubone(model[1], inputs["1"])
    rec = cap.maps[0]
    assert torch.equal(logits, reference) and tuple(rec.attn.shape) == (2, 1, 16, 16)
    assert (rec.attn - expected).abs().max() <= 1e-6
    assert rec.key_pos[0, :4, 1].tolist() == [4.0, 12.0, 20.0, 28.0]


LAYERS = {  # a layer on an 8 x 8 map of 4 px tokens (16 channels): (layer, heads dim of timm's softmax)
    "non_local": (lambda: NonLocalAttn(16), 1),
    "multi_query_v2": (lambda: MultiQueryAttentionV2(16, num_heads=4, key_dim=8, value_dim=8), 2),
}


def _layer(kind):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 4, 4), LAYERS[kind][0]()), torch.randn(2, 3, 32, 32)


@pytest.mark.parametrize("kind", LAYERS)
def test_layers_match_timms_extractor(kind):
    """Self-attention over the 64 tokens: non-local one head, MultiQueryAttentionV2 four query heads ([B, N, heads, M]
    in timm, moved to [B, heads, N, M])."""
    cap, _ = captured_and_extracted(*_layer(kind), heads_dim=LAYERS[kind][1])
    rec = cap.maps[0]
    assert tuple(rec.attn.shape) == (2, 1 if kind == "non_local" else 4, 64, 64)
    assert rec.key_pos[0, 1].tolist() == [2.0, 6.0] and torch.equal(rec.query_pos, rec.key_pos)


def test_non_local_head_nulls_by_its_values():
    """Nulling the one head at `z`'s input equals zeroing the value conv `g` (weights and bias)."""
    model, x = _layer("non_local")
    model = randomize_batchnorm(model).eval()
    assert_nulling_equals_zeroed_values(model, x, 0, lambda: (model[1].g.weight.zero_(), model[1].g.bias.zero_()))


def test_multi_query_v2_heads_are_not_ablated():
    assert_ablation_refused(*_layer("multi_query_v2"), "bare parameter")


REFUSED = {  # model: what the line must say
    "bat_resnext26ts": r"\(BatNonLocalAttn\) is a bilinear attention transform",
    "skresnet18": r"\(SelectiveKernelAttn\) is selective-kernel attention",
    "resnest14d": r"\(SplitAttn\) is split attention",
}


@pytest.mark.parametrize("name", REFUSED)
def test_channel_and_sigmoid_attention_is_refused_in_one_line_saying_why(name):
    with pytest.raises(UnsupportedModelError, match=REFUSED[name]) as e:
        attention_layers(timm.create_model(name))
    assert "\n" not in str(e.value)


def test_csatv2_spatial_transformer_softmaxes_over_the_batch_and_is_left_out():
    """Its scalar q k^T is [B, B]: for 3 images of 7 x 7 tokens timm's own softmax is 3 x 3, no map over the 49 tokens.
    CSATv2's ViT blocks are read, and their maps equal timm's with fused attention off."""
    (_, inner), = AttentionExtract(SpatialTransformerBlock().eval(), names=["*softmax*"], method="fx")(
        torch.randn(3, 1, 7, 7)).items()
    assert tuple(inner.shape) == (3, 3)
    model = randomize_batchnorm(timm.create_model("csatv2", depths=(1, 1, 2, 2), transformer_depths=(0, 0, 1, 1)))
    layers = attention_layers(model.eval())
    assert [la.name for la in layers] == ["stages.2.2.attn", "stages.3.2.attn"]
    assert {la.family for la in layers} == {"timm ViT/DeiT"}
    captured_and_extracted(model, torch.randn(2, 3, 224, 224), names=["*attn_drop"], method="hook")
