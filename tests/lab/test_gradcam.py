"""Grad-CAM maps (shape, cross-checks with a hand-written Grad-CAM on channels-first, channels-last
and token layers), Grad-CAM++ against its closed form, rollout as a CAM, and the pointing game."""
import pytest
import timm
import torch
import torch.nn as nn

import shvit
from analysis.core.errors import UserError
from analysis.heads.maps import attention_rollout
from analysis.lab.datasets import ClutteredDigits, DigitsConfig
from analysis.lab.gradcam import (CAM_METHODS, GradCAM, GradCAMPlusPlus, RolloutCAM, cam_target, last_stage,
                                  localisation, pointing_game)
from tests.helpers import randomize_batchnorm

pytestmark = pytest.mark.usefixtures("one_thread")  # a shared 2-core CPU: no thread contention


def _model():
    m = shvit.create("fig2_b", embed_dims=(16, 32, 48), depths=(1, 1, 1), partial_dims=(4, 8, 12),
                     stem_stride=8, num_classes=10, img_size=32)
    return randomize_batchnorm(m).eval()


def test_map_shape_and_manual_gradcam_agree():
    model = _model()
    x, target = torch.randn(3, 3, 32, 32), torch.tensor([1, 4, 7])
    maps = GradCAM(model).attribute(x, target=target)
    assert maps.shape == (3, 32, 32) and (maps >= 0).all()
    # independent Grad-CAM: hook the last stage, weights = spatial mean of gradients
    name, layer = last_stage(model)
    assert name == "stages.2"
    feats = {}
    h = layer.register_forward_hook(lambda m, i, o: feats.setdefault("a", o))
    out = model(x)
    h.remove()
    a = feats["a"]
    grad, = torch.autograd.grad(out.gather(1, target[:, None]).sum(), a)
    cam = torch.relu((grad.mean((2, 3), keepdim=True) * a).sum(1))
    coarse = GradCAM(model).attribute(x, target=target, upsample=False)
    assert torch.allclose(coarse, cam.detach(), atol=1e-5, rtol=1e-4)


def test_pointing_game_hand_built():
    maps = torch.zeros(4, 10, 10)
    maps[0, 2, 3] = 1.0   # (y=2, x=3): inside box 0
    maps[1, 5, 9] = 1.0   # x=9 equals x1 (end-exclusive): outside
    maps[2, 0, 0] = 1.0   # corner (0, 0) of box (0, 0, 1, 1): inside
    maps[3, 7, 1] = 1.0   # y=7 outside box rows 0..6
    boxes = torch.tensor([[3, 2, 4, 3], [0, 0, 9, 10], [0, 0, 1, 1], [0, 0, 10, 7]])
    assert pointing_game(maps, boxes).tolist() == [True, False, True, False]


def test_localisation_over_a_dataset():
    ds = ClutteredDigits("val", DigitsConfig(resolution=32, num_train=1, num_val=12, digit_size=(16, 24)))
    model = _model()
    layer = model.stages[0]  # 4x4 map at 32 px (the last stage is 1x1 there)
    df = localisation(model, ds, batch_size=5, layer=layer)
    row = df.iloc[0]
    assert row["images"] == 12 and 0 <= row["pointing_game"] <= 100 and 0 < row["box_area"] < 100
    # the same score counted directly from one batch of maps
    x = torch.stack([ds[i][0] for i in range(12)])
    hits = pointing_game(GradCAM(model, layer).attribute(x, target=ds.labels), ds.boxes).sum().item() * 100 / 12
    assert row["pointing_game"] == pytest.approx(hits, abs=1e-9)


def _manual_gradcam(model, layer, x, target, to_grid):
    """Grad-CAM by hand: the layer's output laid on its grid by `to_grid`, weights = mean gradient."""
    feats = {}
    h = layer.register_forward_hook(lambda m, i, o: feats.setdefault("a", o))
    out = model(x)
    h.remove()
    grad, = torch.autograd.grad(out.gather(1, target[:, None]).sum(), feats["a"])
    a, g = to_grid(feats["a"]), to_grid(grad)
    return torch.relu((g.mean((2, 3), keepdim=True) * a).sum(1)).detach()


def test_vit_tokens_are_read_on_the_patch_grid_without_the_class_token():
    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_patch16_224", img_size=64, depth=2).eval()
    x, target = torch.randn(2, 3, 64, 64), torch.tensor([3, 7])
    name, layer = cam_target(model)
    assert name == "blocks.1.norm1"  # the last block's own patch tokens never reach the class-token head
    cam = GradCAM(model)
    coarse = cam.attribute(x, target=target, upsample=False)
    assert coarse.shape == (2, 4, 4) and cam.layer_name == name and coarse.max() > 0
    manual = _manual_gradcam(model, layer, x, target, lambda t: t[:, 1:].reshape(2, 4, 4, -1).permute(0, 3, 1, 2))
    assert torch.allclose(coarse, manual, atol=1e-6, rtol=1e-4)
    assert cam.attribute(x, target=target).shape == (2, 64, 64)


def test_channels_last_stage_is_read_as_channels():
    torch.manual_seed(0)
    model = timm.create_model("swin_tiny_patch4_window7_224", depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8)).eval()
    x, target = torch.randn(1, 3, 224, 224), torch.tensor([5])
    name, layer = cam_target(model)
    coarse = GradCAM(model).attribute(x, target=target, upsample=False)
    assert name == "layers.3" and coarse.shape == (1, 7, 7)
    manual = _manual_gradcam(model, layer, x, target, lambda t: t.permute(0, 3, 1, 2))
    assert torch.allclose(coarse, manual, atol=1e-6, rtol=1e-4)


def test_gradcam_plus_plus_closed_form_under_average_pooling():
    """Conv -> ReLU -> GAP -> linear: the gradient at the ReLU is w[c, k] / (h w) everywhere, so
    alpha_k = 1 / (2 + S_k g_k) and the channel weight is h w relu(g_k) alpha_k (S_k: the map's sum)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(5, 4)).eval()
    x, target = torch.randn(2, 3, 6, 6), torch.tensor([1, 2])
    a = model[:2](x).detach()
    g = model[4].weight[target].detach()[:, :, None, None] / 36
    weights = (36 * g.clamp(min=0) / (2 + a.sum((2, 3), keepdim=True) * g)).where(g != 0, 0)
    expected = torch.relu((weights * a).sum(1))
    got = GradCAMPlusPlus(model, model[1]).attribute(x, target=target, upsample=False)
    assert torch.allclose(got, expected, atol=1e-6, rtol=1e-5) and got.max() > 0
    gradcam = GradCAM(model, model[1]).attribute(x, target=target, upsample=False)
    assert not torch.allclose(got / got.amax((1, 2), keepdim=True), gradcam / gradcam.amax((1, 2), keepdim=True))


FAMILIES = [("deit_tiny_patch16_224", dict(img_size=64, depth=2), 64, (4, 4)),
            ("swin_tiny_patch4_window7_224", dict(depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8)), 224, (7, 7)),
            ("levit_128s", {}, 224, (4, 4)), ("efficientvit_m0", {}, 224, (4, 4)), ("shvit_s1", {}, 224, (4, 4))]


@pytest.mark.parametrize("name,kwargs,side,grid", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_every_family_gives_maps_and_keeps_its_logits(name, kwargs, side, grid):
    torch.manual_seed(0)
    model = randomize_batchnorm(timm.create_model(name, **kwargs)).eval()
    x = torch.randn(1, 3, side, side)
    with torch.no_grad():
        before = model(x)
    for method in ("gradcam", "gradcam++"):
        cam = CAM_METHODS[method](model)
        coarse = cam.attribute(x, target=torch.tensor([1]), upsample=False)
        assert coarse.shape == (1, *grid) and torch.isfinite(coarse).all() and (coarse >= 0).all(), method
        assert cam.attribute(x, target=torch.tensor([1])).shape == (1, side, side)
    with torch.no_grad():
        assert torch.equal(model(x), before)  # no hook left behind


def test_rollout_cam_is_the_rollout_and_takes_no_target():
    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_patch16_224", img_size=64, depth=2).eval()
    x = torch.randn(1, 3, 64, 64)
    cam = RolloutCAM(model)
    assert torch.equal(cam.attribute(x, upsample=False), attention_rollout(model, x).maps)
    assert cam.attribute(x).shape == (1, 64, 64)
    with pytest.raises(UserError, match="not class-specific"):
        cam.attribute(x, target=torch.tensor([0]))


def test_a_layer_without_a_grid_is_refused():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    with pytest.raises(UserError, match=r"a CAM needs a spatial layer output.*gives \(2, 12\)"):
        GradCAM(model, model[0]).attribute(torch.randn(2, 3, 2, 2), target=torch.tensor([0, 1]))
