"""timm's attention pooling families (analysis.heads._families_pooling): with fused attention on, the capture's maps
equal timm's `AttentionExtract` with fused attention off, logits stay bit-identical, the pooled query (mean or
class token) has no position while the keys sit on the map, SimPool's heads (no output projection) are not ablated,
and GCNet's global context block is refused in one line saying why."""
import pytest
import timm
import torch
import torch.nn as nn
from timm.layers import AttentionPool2d, RotAttentionPool2d, SimPool1d, SimPool2d
from timm.utils import AttentionExtract

from analysis.core.errors import UserError
from analysis.heads.ablation import HeadMask
from analysis.heads.attention import AttentionCapture
from analysis.heads.layers import UnsupportedModelError, attention_layers
from tests.helpers import randomize_batchnorm


class Tokens(nn.Module):
    """[B, C, H, W] -> [B, H * W, C], for the modules that take a token sequence."""

    def forward(self, x):
        return x.flatten(2).transpose(1, 2)


def _set_fused(model, on):
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = on


def captured_and_extracted(model, x, heads_dim=1, names=("*softmax*",), method="fx"):
    """(capture with fused attention on, timm's maps with it off (`names`: the softmax nodes, or modules after it),
    moved to [B, heads, N, M]); the logits with the probe are asserted bit-identical to those without it."""
    model = randomize_batchnorm(model).eval()
    _set_fused(model, True)
    with torch.no_grad():
        reference = model(x)
        with AttentionCapture(model) as cap:
            logits = model(x)
        _set_fused(model, False)
        expected = AttentionExtract(model, names=list(names), method=method)(x)
    assert torch.equal(logits, reference)
    expected = {k.rpartition(".")[0]: v[:, None] if v.dim() == 3 else v.movedim(heads_dim, 1)
                for k, v in expected.items()}
    assert [m.layer for m in cap.maps] == [layer.name for layer in attention_layers(model)] == list(expected)
    for rec in cap.maps:
        assert rec.attn.shape == expected[rec.layer].shape, rec.layer
        assert (rec.attn - expected[rec.layer]).abs().max() <= 1e-6, rec.layer
        assert torch.allclose(rec.attn.sum(-1), torch.ones(()), atol=1e-5) and rec.batch_size == 2
        assert rec.query_pos.shape == (rec.windows, rec.attn.shape[2], 2)
        assert rec.key_pos.shape == (rec.windows, rec.attn.shape[3], 2)
    return cap, expected


def assert_nulling_equals_zeroed_values(model, x, head, zero_values):
    """Nulling `head` of layer "1" at its projection input changes the output, and equals `zero_values()` (zeroing
    that head's value weights): the ablation removes that head."""
    with torch.no_grad():
        reference = model(x)
        with HeadMask(model, {"1": [head]}):
            nulled = model(x)
        zero_values()
        assert torch.allclose(model(x), nulled, atol=1e-6) and not torch.allclose(nulled, reference, atol=1e-3)


def assert_ablation_refused(model, x, why):
    """Nulling a head of layer "1" is refused in one line matching `why`."""
    with pytest.raises(UserError, match=why) as e, HeadMask(model, {"1": [0]}):
        model(x)
    assert "\n" not in str(e.value)


POOLS = {  # name: a pooling layer on an 8 x 8 map of 4 px tokens (16 channels)
    "clip": lambda: AttentionPool2d(16, feat_size=8, embed_dim=32, num_heads=4),
    "clip_class_token_no_proj": lambda: AttentionPool2d(16, feat_size=8, num_heads=4, out_features=0, class_token=True),
    "clip_rotary": lambda: RotAttentionPool2d(16, embed_dim=32, num_heads=4, ref_feat_size=8),
    "simpool2d": lambda: SimPool2d(16, num_heads=4),
    "simpool2d_gamma": lambda: SimPool2d(16, num_heads=4, gamma=2.0),
    "simpool1d": lambda: nn.Sequential(Tokens(), SimPool1d(16, num_heads=4)),
}


def _pool(kind):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 4, 4), POOLS[kind]()), torch.randn(2, 3, 32, 32)


@pytest.mark.parametrize("kind", POOLS)
def test_pools_match_timms_extractor_and_keep_logits(kind):
    model, x = _pool(kind)
    cap, _ = captured_and_extracted(model, x)
    rec, layer = cap.maps[0], attention_layers(model)[0]
    assert rec.num_heads == layer.num_heads == 4
    if kind.startswith("clip"):  # every token attends every token: the pooled one first, then the 8 x 8 map
        assert tuple(rec.attn.shape) == (2, 4, 65, 65) and layer.num_heads * layer.head_dim == model[1].embed_dim
    else:  # one query per head, the tokens' mean
        assert tuple(rec.attn.shape) == (2, 4, 1, 64) and layer.unsliced_heads


def test_the_pooled_token_has_no_position_and_the_keys_tile_the_map():
    """CLIP pool: token 0 (the mean) unplaced, then 8 x 8 tokens of 4 px in raster order; SimPool: one unplaced query."""
    clip = _record_of(*_pool("clip"))
    assert clip.query_pos[0, 0].isnan().all() and torch.allclose(clip.query_pos, clip.key_pos, equal_nan=True)
    assert clip.key_pos[0, 1:3].tolist() == [[2.0, 2.0], [2.0, 6.0]] and clip.key_pos[0, -1].tolist() == [30.0, 30.0]
    for kind in ("simpool2d", "simpool1d"):
        rec = _record_of(*_pool(kind))
        assert rec.query_pos.shape == (1, 1, 2) and rec.query_pos.isnan().all()
        assert rec.key_pos[0, 1].tolist() == [2.0, 6.0] and not rec.key_pos.isnan().any()


def _record_of(model, x):
    with torch.no_grad(), AttentionCapture(model) as cap:
        model.eval()(x)
    return cap.maps[0]


def test_clip_pool_heads_null_by_their_values():
    """Nulling head 1 at the projection input equals zeroing head 1's value weights (timm's fused qkv)."""
    model, x = _pool("clip")
    v1 = slice(2 * 32 + 8, 2 * 32 + 16)  # q, k, then v: head 1's 8 channels
    assert_nulling_equals_zeroed_values(model, x, 1, lambda: (model[1].qkv.weight[v1].zero_(),
                                                              model[1].qkv.bias[v1].zero_()))


def test_simpool_heads_are_not_ablated_and_have_no_head_outputs():
    model, x = _pool("simpool2d")
    assert_ablation_refused(model, x, "SimPool has no output projection")
    with torch.no_grad(), AttentionCapture(model, head_outputs=True) as cap:
        model(x)
    assert cap.maps[0].head_outputs is None


def test_prr_pool_matches_timms_extractor_over_every_token():
    """`global_pool='prr'`: parameter-free self-attention over the class token and the 14 x 14 patches."""
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", depth=1, global_pool="prr")
    cap, _ = captured_and_extracted(model, torch.randn(2, 3, 224, 224))
    prr = attention_layers(model)[-1]
    assert (prr.family, prr.proj) == ("PRR pool", model.attn_pool.post_norm) and prr.num_heads * prr.head_dim == 192
    rec = cap.maps[-1]
    assert tuple(rec.attn.shape) == (2, 3, 197, 197) and rec.key_pos[0, 0].isnan().all()
    assert rec.key_pos[0, 1].tolist() == [8.0, 8.0]


def test_global_context_is_refused_in_one_line_saying_why():
    with pytest.raises(UnsupportedModelError, match=r"\(GlobalContext\) is global context pooling \(GCNet\)") as e:
        attention_layers(timm.create_model("gcresnext26ts"))
    assert "\n" not in str(e.value) and "no map per query" in str(e.value)
