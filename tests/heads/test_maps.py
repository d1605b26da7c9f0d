"""Per-image attention maps: query maps on the key grid (ViT, Swin windows), layer selection, and
attention rollout against known answers (uniform attention, identical heads), refused where the
token set changes between layers."""
import pytest
import timm
import torch

from analysis.core.errors import UserError
from analysis.heads.layers import attention_layers
from analysis.heads.maps import attention_rollout, query_attention, select_layer

pytestmark = pytest.mark.usefixtures("one_thread")  # a shared 2-core CPU: no thread contention


def small_vit(depth=3, **kwargs):
    torch.manual_seed(0)
    return timm.create_model("deit_tiny_patch16_224", img_size=64, depth=depth, **kwargs).eval()


def uniform(model):
    """Zero q and k projections: every logit 0, every attention row uniform over all tokens."""
    with torch.no_grad():
        for blk in model.blocks:
            dim = blk.attn.qkv.in_features
            blk.attn.qkv.weight[:2 * dim].zero_()
            blk.attn.qkv.bias[:2 * dim].zero_()
    return model


def test_query_attention_maps():
    model = small_vit(depth=5, patch_size=8, num_heads=3)
    x = torch.randn(2, 3, 64, 64)
    qm = query_attention(model, x, "blocks.4.attn", query_yx=(30, 30), heads=[0, 2])
    assert qm.maps.shape == (2, 2, 8, 8) and qm.query_yx == (28.0, 28.0)  # nearest token centre
    assert qm.ys.tolist() == [4.0 + 8 * i for i in range(8)]
    assert (qm.maps.sum((-2, -1)) <= 1 + 1e-6).all() and (qm.maps.sum((-2, -1)) > 0).all()

    torch.manual_seed(0)
    swin = timm.create_model("swin_tiny_patch4_window7_224", depths=(2, 2), num_heads=(3, 6)).eval()
    qm = query_attention(swin, torch.randn(1, 3, 224, 224), "layers.0.blocks.0.attn", query_yx=(2, 2))
    assert qm.maps.shape == (1, 3, 56, 56)
    assert torch.allclose(qm.maps.sum((-2, -1)), torch.ones(1, 3), atol=1e-5)
    assert qm.maps[..., 7:, :].abs().sum() == 0 and qm.maps[..., :, 7:].abs().sum() == 0  # inside its window


def test_select_layer_by_index_name_and_default():
    model = small_vit()
    names = [layer.name for layer in attention_layers(model)]
    assert select_layer(model).name == names[-1] == "blocks.2.attn"
    assert select_layer(model, 1).name == names[0] and select_layer(model, "3").name == names[2]
    assert select_layer(model, "-2").name == names[1] and select_layer(model, "blocks.1.attn").index == 1
    for bad in ("0", "4", "-4", "blocks.9.attn", "head"):
        with pytest.raises(UserError, match=r"no attention layer .* has 3 \(number 1..3 or -3..-1"):
            select_layer(model, bad)


def test_uniform_attention_gives_uniform_query_map_and_rollout():
    model = uniform(small_vit())
    x = torch.randn(1, 3, 64, 64)
    n = 1 + 4 * 4  # class token + 4x4 patches
    qm = query_attention(model, x, "blocks.1.attn", query_yx=(40, 20))
    assert qm.maps.shape == (1, 3, 4, 4) and qm.query_yx == (40.0, 24.0)
    assert torch.allclose(qm.maps, torch.full_like(qm.maps, 1 / n))
    ro = attention_rollout(model, x)
    # ((U + I) / 2)^L = I / 2^L + (1 - 2^-L) U for the uniform (idempotent) U
    expected = torch.eye(n) / 8 + (1 - 1 / 8) * torch.full((n, n), 1 / n)
    assert ro.source == "class token" and ro.layers == ["blocks.0.attn", "blocks.1.attn", "blocks.2.attn"]
    assert torch.allclose(ro.matrix[0], expected, atol=1e-6)
    assert torch.allclose(ro.maps, torch.full((1, 4, 4), (1 - 1 / 8) / n), atol=1e-6)


def test_identical_heads_give_identical_maps():
    model = small_vit()
    attn = model.blocks[1].attn
    d, hd = attn.qkv.in_features, attn.head_dim
    with torch.no_grad():
        for part in (0, d):  # q rows, then k rows: every head a copy of head 0
            for h in range(1, attn.num_heads):
                attn.qkv.weight[part + h * hd:part + (h + 1) * hd] = attn.qkv.weight[part:part + hd]
                attn.qkv.bias[part + h * hd:part + (h + 1) * hd] = attn.qkv.bias[part:part + hd]
    qm = query_attention(model, torch.randn(1, 3, 64, 64), "blocks.1.attn", query_yx=(8, 56))
    assert not torch.allclose(qm.maps[0, 0], qm.maps[0, 0].mean().expand(4, 4), atol=1e-4)  # not trivially flat
    for h in (1, 2):
        assert torch.allclose(qm.maps[0, h], qm.maps[0, 0], atol=1e-6)


def test_frames_hold_the_maps():
    model = small_vit()
    x = torch.randn(1, 3, 64, 64)
    qm = query_attention(model, x, "blocks.0.attn", query_yx=(32, 32))
    df = qm.to_frame()
    assert list(df.columns) == ["head", "row", "col", "weight"] and len(df) == 3 * 16
    for row in df.sample(6, random_state=0).itertuples():
        assert row.weight == pytest.approx(float(qm.maps[0, row.head, row.row, row.col]))
    ro = attention_rollout(model, x)
    df = ro.to_frame()
    assert list(df.columns) == ["row", "col", "weight"] and len(df) == 16
    assert df.weight.tolist() == pytest.approx(ro.maps[0].flatten().tolist())


def test_rollout_without_class_token_reads_the_mean_row():
    torch.manual_seed(0)
    model = uniform(timm.create_model("vit_tiny_patch16_224", img_size=64, depth=2, class_token=False,
                                      global_pool="avg").eval())
    ro = attention_rollout(model, torch.randn(1, 3, 64, 64))
    assert ro.source == "mean over tokens" and ro.maps.shape == (1, 4, 4)
    assert torch.allclose(ro.maps, torch.full((1, 4, 4), 1 / 16), atol=1e-6)  # rows of a stochastic matrix


@pytest.mark.parametrize("name,kwargs,needle", [
    ("swin_tiny_patch4_window7_224", dict(depths=(1, 1), num_heads=(3, 6)), "attends in windows"),
    ("efficientvit_m0", {}, "attends in windows"),
    ("levit_128s", {}, "token grid changes between layers"),
    ("shvit_s1", {}, "token grid changes between layers"),
])
def test_rollout_refuses_models_whose_tokens_change(name, kwargs, needle):
    torch.manual_seed(0)
    model = timm.create_model(name, **kwargs).eval()
    with pytest.raises(UserError, match=f"needs every attention layer on one token set.*{needle}"):
        attention_rollout(model, torch.randn(1, 3, 224, 224))
