"""Head ablation: nulling a head equals zeroing its value weights (independent path), remove-1 /
leave-1 tables and their summaries, hooks removed."""
import copy

import pytest
import timm
import torch

from analysis.core.errors import UserError
from analysis.heads.ablation import best_heads, extreme_heads, head_ablation, HeadMask


def micro_deit():
    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_patch16_224", img_size=64, patch_size=8, embed_dim=96, depth=6,
                              num_heads=3, num_classes=10).eval()
    with torch.no_grad():
        for p in model.parameters():  # larger weights: heads matter for the prediction
            p.mul_(3)
    return model


def _hooks(model):
    return sum(len(m._forward_pre_hooks) + len(m._forward_hooks) for m in model.modules())


def test_nulling_a_head_equals_zeroing_its_value_weights():
    model = micro_deit()
    x = torch.randn(2, 3, 64, 64)
    zeroed = copy.deepcopy(model)
    with torch.no_grad():  # v rows of head 1 in block 2: A @ v_1 = 0
        zeroed.blocks[2].attn.qkv.weight[2 * 96 + 32:2 * 96 + 64] = 0
        zeroed.blocks[2].attn.qkv.bias[2 * 96 + 32:2 * 96 + 64] = 0
        expected = zeroed(x)
        before = _hooks(model)
        with HeadMask(model, {"blocks.2.attn": [1]}):
            masked = model(x)
        assert _hooks(model) == before
        assert torch.allclose(masked, expected, atol=1e-5)
        assert not torch.allclose(masked, model(x), atol=1e-3)


def test_remove1_leave1_tables():
    model = micro_deit()
    torch.manual_seed(1)
    images = torch.randn(8, 3, 64, 64)
    with torch.no_grad():
        labels = model(images).argmax(-1)  # baseline top-1 = 100%
    batches = [(images[:5], labels[:5]), (images[5:], labels[5:])]
    df = head_ablation(model, iter(batches))  # a one-shot iterator is fine too
    assert len(df) == 6 * 2 * 3 and set(df["mode"]) == {"remove1", "leave1"}
    assert (df.baseline_top1 == 1.0).all() and (df.delta <= 0).all() and (df.num_images == 8).all()
    assert (df.delta < 0).any()
    # leave-1 with head h kept == remove the two others
    layer = "blocks.0.attn"
    with HeadMask(model, {layer: [1, 2]}), torch.no_grad():
        acc = (model(images).argmax(-1) == labels).float().mean().item()
    assert df[(df.layer == layer) & (df["mode"] == "leave1") & (df["head"] == 0)].top1.item() == pytest.approx(acc)

    best = best_heads(df)
    assert len(best) == 12
    for _, row in best.iterrows():
        rows = df[(df.layer == row.layer) & (df["mode"] == row["mode"])]
        assert row.best_delta == rows.delta.max() and row.best_head in set(rows[rows.delta == rows.delta.max()]["head"])
    ext = extreme_heads(df)
    assert len(ext) == 6 and (ext.important_delta <= ext.redundant_delta).all()


def test_efficientvit_cascade_heads_can_be_nulled():
    torch.manual_seed(0)
    model = timm.create_model("efficientvit_m0").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # proj BN starts at zero weight: make heads matter
        x = torch.randn(1, 3, 224, 224)
        ref = model(x)
        with HeadMask(model, {"stages.0.blocks.0.mixer.m.attn": [0]}):
            out = model(x)
    assert not torch.allclose(out, ref)


def test_bad_requests():
    model = micro_deit()
    with pytest.raises(UserError, match="has 3 heads"):
        HeadMask(model, {"blocks.0.attn": [3]})
    with pytest.raises(UserError, match="no attention layer named"):
        HeadMask(model, {"blocks.9.attn": [0]})
    with pytest.raises(UserError, match="single-head"):
        head_ablation(timm.create_model("shvit_s1").eval(), [(torch.randn(1, 3, 224, 224), torch.tensor([0]))])
