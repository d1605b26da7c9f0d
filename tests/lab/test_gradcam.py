"""Grad-CAM maps (shape, cross-check with a hand-written Grad-CAM) and the pointing game."""
import pytest
import torch

import shvit
from analysis.lab.datasets import ClutteredDigits, DigitsConfig
from analysis.lab.gradcam import GradCAM, last_stage, localisation, pointing_game
from tests.helpers import randomize_batchnorm


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
    ds = ClutteredDigits("val", DigitsConfig(image_size=32, num_train=1, num_val=12, digit_size=(16, 24)))
    model = _model()
    layer = model.stages[0]  # 4x4 map at 32 px (the last stage is 1x1 there)
    df = localisation(model, ds, batch_size=5, layer=layer)
    row = df.iloc[0]
    assert row["images"] == 12 and 0 <= row["pointing_game"] <= 100 and 0 < row["box_area"] < 100
    # the same score counted directly from one batch of maps
    x = torch.stack([ds[i][0] for i in range(12)])
    hits = pointing_game(GradCAM(model, layer).attribute(x, target=ds.labels), ds.boxes).sum().item() * 100 / 12
    assert row["pointing_game"] == pytest.approx(hits, abs=1e-9)
