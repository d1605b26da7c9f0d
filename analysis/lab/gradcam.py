"""Grad-CAM on a model's last stage (captum `LayerGradCam`) and the pointing game.

    >>> cam = GradCAM(model)                          # layer: the last feature stage
    >>> maps = cam.attribute(images, target=labels)   # (B, H, W), upsampled to the input
    >>> pointing_game(maps, boxes)                    # (B,) bool: map maximum inside the box
    >>> localisation(model, ClutteredDigits("val"))   # tidy one-row DataFrame over a dataset

Pointing game (Zhang et al., "Top-down neural attention by excitation backprop", 2016),
strict form: a hit when the location of the map's maximum lies inside the ground-truth box
(no tolerance margin). The SHViT paper shows Grad-CAM maps of 4x4- and 16x16-stem models
qualitatively; the pointing game scores the same comparison.
"""
from __future__ import annotations

import sys
from typing import Optional

import pandas as pd
import torch
import torch.nn as nn
from captum.attr import LayerAttribution, LayerGradCam
from tqdm import tqdm

from ..core.errors import UserError, not_a_command

__all__ = ["GradCAM", "last_stage", "pointing_game", "localisation"]


def last_stage(model: nn.Module) -> tuple[str, nn.Module]:
    """(name, module) of the last spatial feature stage, from timm's `feature_info`."""
    info = getattr(model, "feature_info", None)
    if info:
        last = info[-1] if isinstance(info, list) else info.info[-1]
        name = last["module"]
        return name, model.get_submodule(name)
    raise UserError(f"{type(model).__name__} has no feature_info; pass the Grad-CAM layer explicitly")


class GradCAM:
    """captum `LayerGradCam` on `layer` (default: the last stage), maps at input resolution.

    The model is used in eval mode and left unchanged; `attribute` returns ReLU'd class-
    activation maps, bilinearly upsampled to the input's H x W, one per image.
    """

    def __init__(self, model: nn.Module, layer: Optional[nn.Module] = None):
        self.model = model.eval()
        self.layer = layer if layer is not None else last_stage(model)[1]
        self._cam = LayerGradCam(self.model, self.layer)

    def attribute(self, images: torch.Tensor, target: Optional[torch.Tensor] = None,
                  upsample: bool = True) -> torch.Tensor:
        """Grad-CAM maps (B, H, W) for `target` classes (default: the model's predictions)."""
        if target is None:
            with torch.no_grad():
                target = self.model(images).argmax(-1)
        attr = self._cam.attribute(images, target=target, relu_attributions=True)
        if attr.dim() != 4:
            raise UserError(f"Grad-CAM needs a spatial (B, C, H, W) layer output, got shape {tuple(attr.shape)}")
        if upsample:
            attr = LayerAttribution.interpolate(attr, tuple(images.shape[-2:]), interpolate_mode="bilinear")
        return attr[:, 0].detach()


def pointing_game(maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Per image, whether the map's maximum lies in its box.

    Args:
        maps: (B, H, W) saliency maps.
        boxes: (B, 4) integer boxes (x0, y0, x1, y1), end-exclusive pixel coordinates.
    Ties resolve to the first maximum in row-major order.
    """
    if maps.dim() != 3 or boxes.shape != (maps.shape[0], 4):
        raise ValueError(f"expected maps (B, H, W) and boxes (B, 4), got {tuple(maps.shape)} and {tuple(boxes.shape)}")
    w = maps.shape[-1]
    flat = maps.flatten(1).argmax(1)
    y, x = flat // w, flat % w
    x0, y0, x1, y1 = boxes.to(flat.device).unbind(1)
    return (x >= x0) & (x < x1) & (y >= y0) & (y < y1)


def localisation(model: nn.Module, dataset, *, batch_size: int = 100, target: str = "label",
                 layer: Optional[nn.Module] = None, input_size: Optional[int] = None,
                 progress: bool = False) -> pd.DataFrame:
    """Pointing-game score of `model` over a dataset with `.boxes` (e.g. `ClutteredDigits`).

    `target` is `label` (the ground-truth class, the usual protocol) or `pred` (the model's
    prediction). `input_size` resizes the images first (boxes are rescaled with them).
    Returns one row: pointing_game (share of hits, %), top1 (%), box_area (mean share of
    the image the boxes cover, %: the hit rate of a uniformly random point), images.
    """
    if target not in ("label", "pred"):
        raise ValueError(f"target must be 'label' or 'pred', got {target!r}")
    boxes_all = getattr(dataset, "boxes", None)
    if boxes_all is None:
        raise UserError("the dataset has no ground-truth boxes (.boxes)")
    cam = GradCAM(model, layer)
    hits = correct = area = 0.0
    n = len(dataset)
    for start in tqdm(range(0, n, batch_size), disable=not progress, file=sys.stderr, leave=False, desc="grad-cam"):
        idx = range(start, min(start + batch_size, n))
        x = torch.stack([dataset[i][0] for i in idx])
        y = torch.tensor([dataset[i][1] for i in idx])
        boxes = boxes_all[start:start + len(idx)].clone()
        side = x.shape[-1]
        if input_size and input_size != side:
            x = torch.nn.functional.interpolate(x, size=(input_size, input_size), mode="bilinear",
                                                align_corners=False, antialias=True)
            boxes = (boxes.double() * input_size / side).round().long()
            side = input_size
        with torch.no_grad():
            pred = model(x).argmax(-1)
        maps = cam.attribute(x, target=y if target == "label" else pred)
        hits += pointing_game(maps, boxes).sum().item()
        correct += (pred == y).sum().item()
        area += ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum().item() / side ** 2
    return pd.DataFrame([{"pointing_game": 100 * hits / n, "top1": 100 * correct / n,
                          "box_area": 100 * area / n, "target": target, "images": n}])


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
