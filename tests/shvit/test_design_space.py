"""Every knob of the design space builds, runs at 224 px, and has the shapes its config says."""
import itertools

import pytest
import torch

import shvit
from shvit import SHViTConfig, SHViTNet
from shvit.layers import MHSA, SHSA, BottleneckSHSA

SMALL = dict(embed_dims=(32, 48, 64), depths=(1, 1, 1), partial_dims=(8, 12, 16), num_classes=7)


def stage_shapes(model, side=224):
    shapes = []
    hooks = [s.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape))) for s in model.stages]
    with torch.no_grad():
        logits = model.eval()(torch.randn(1, 3, side, side))
    for h in hooks:
        h.remove()
    return shapes, logits


def expected_shapes(cfg, side=224):
    return [(1, d, r, r) for d, r in zip(cfg.embed_dims, cfg.stage_resolutions(side))]


@pytest.mark.parametrize("stem, stages, mixer", list(itertools.product(
    shvit.STEM_STRIDES, (3, 4), shvit.MIXERS)))
def test_knobs_build_and_shapes(stem, stages, mixer):
    dims = SMALL["embed_dims"] + ((80,) if stages == 4 else ())
    cfg = SHViTConfig(embed_dims=dims, depths=(1,) * stages, mixers=("conv",) + (mixer,) * (stages - 1),
                      partial_ratio=0.25, num_heads=4, stem_stride=stem, num_classes=7)
    model = SHViTNet(cfg)
    shapes, logits = stage_shapes(model)
    assert shapes == expected_shapes(cfg)
    assert shapes[0][-1] == 224 // stem
    assert logits.shape == (1, 7)
    assert len([m for m in model.patch_embed if isinstance(m, torch.nn.Sequential)]) == stem.bit_length() - 1


@pytest.mark.parametrize("name", sorted(shvit.VARIANTS))
def test_named_variants_run_at_224(name):
    cfg = shvit.get_config(name)
    model = SHViTNet(cfg, num_classes=5)
    shapes, logits = stage_shapes(model, 224)
    assert shapes == expected_shapes(cfg, 224)
    assert torch.isfinite(logits).all()


def _mixers(model, kind):
    return [m for m in model.modules() if type(m) is kind]


def test_mixer_layouts():
    mhsa = SHViTNet(SHViTConfig(**SMALL, mixers=("conv", "mhsa", "mhsa"), num_heads=(1, 4, 8), qk_dim=8))
    heads = _mixers(mhsa, MHSA)
    assert [(m.num_heads, m.v_dim) for m in heads] == [(4, 12), (8, 8)]
    assert heads[0].qkv.c.out_channels == 4 * (2 * 8 + 12)

    full = SHViTNet(SHViTConfig(**SMALL, mixers=("conv", "full", "full")))
    assert [m.pdim for m in _mixers(full, SHSA)] == [48, 64]

    ratio = SHViTNet(SHViTConfig(**SMALL, mixers=("shsa",) * 3, partial_ratio=0.5))
    assert [m.pdim for m in _mixers(ratio, SHSA)] == [16, 24, 32]

    bottleneck = SHViTNet(SHViTConfig(**SMALL, mixers=("conv", "bottleneck", "conv")))
    (b,) = _mixers(bottleneck, BottleneckSHSA)
    assert (b.reduce[0].c.in_channels, b.reduce[0].c.out_channels, b.proj[1].c.out_channels) == (48, 12, 48)

    conv_only = SHViTNet(SHViTConfig(**SMALL, mixers=("conv",) * 3))
    assert not _mixers(conv_only, SHSA) and all(
        isinstance(blk.mixer, torch.nn.Identity) for s in conv_only.stages for blk in s.blocks)


def test_named_ablation_rows_differ_only_where_the_paper_says():
    s3 = shvit.get_config("s3")
    assert shvit.get_config("t6_ratio8").stage_partial_dims == (24, 44, 56)
    assert shvit.get_config("t6_ratio2").stage_partial_dims == (96, 176, 224)
    assert shvit.get_config("t6_mhsa").replace(mixers=s3.mixers, num_heads=s3.num_heads) == s3
    assert shvit.get_config("fig2_b256").img_size == 256
    assert shvit.get_config("fig2_b_attn1").mixers == ("shsa", "shsa", "shsa")
    a = shvit.get_config("fig2_a")
    assert (a.stem_stride, a.num_stages, a.stage_strides[-1]) == (4, 4, 32)
    assert [shvit.get_config(f"stem{s}").stem_stride for s in (4, 8, 16, 32)] == [4, 8, 16, 32]


@pytest.mark.parametrize("changes, message", [
    (dict(stem_stride=6), "stem_stride must be one of"),
    (dict(mixers=("conv", "bogus", "shsa")), "unknown mixer"),
    (dict(embed_dims=(32,) * 5, depths=(1,) * 5, mixers=("conv",) * 5), "3 or 4 stages"),
    (dict(mixers=("conv", "mhsa", "mhsa"), num_heads=5), "not divisible by num_heads"),
    (dict(depths=(1, 1)), "depths has 2 entries"),
    (dict(partial_dims=(8, 12, 100)), "partial dim 100"),
])
def test_invalid_configs_explain_themselves(changes, message):
    with pytest.raises(ValueError, match=message):
        SHViTConfig(**{**SMALL, **changes})
