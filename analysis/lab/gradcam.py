"""Class-activation maps of one layer (Grad-CAM, Grad-CAM++), attention rollout with the same
interface, and the pointing game.

    >>> cam = GradCAM(model)                          # layer: `cam_target(model)`
    >>> maps = cam.attribute(images, target=labels)   # (B, H, W), upsampled to the input
    >>> GradCAMPlusPlus(model).attribute(images)      # target: the model's predictions
    >>> pointing_game(maps, boxes)                    # (B,) bool: map maximum inside the box
    >>> localisation(model, ClutteredDigits("val"))   # tidy one-row DataFrame over a dataset
    >>> localisation_images(model, ClutteredDigits("val"))  # the same, one row per image (hit 0/1)

Every method reads the layer on its spatial grid, whatever the layout of its output: channels
first (B, C, H, W: SHViT, EfficientViT), channels last (B, H, W, C: timm models with
`output_fmt == "NHWC"`, Swin), or tokens (B, N, C: ViT / DeiT, LeViT), where timm's
`num_prefix_tokens` (class / distillation tokens) are dropped and the rest laid on the
image's grid. The layer's output is viewed, never changed: the logits stay bit-identical.

Grad-CAM (Selvaraju et al., ICCV 2017) is captum's `LayerGradCam`. Grad-CAM++ (Chattopadhay et
al., WACV 2018) weights each channel by its positive gradients, each scaled by
alpha = g^2 / (2 g^2 + sum_ij(A) g^3) (the closed form for an exponential of the class score;
the exponential's positive factor is left out, so maps compare within one image, as Grad-CAM's).

Pointing game (Zhang et al., "Top-down neural attention by excitation backprop", 2016),
strict form: a hit when the location of the map's maximum lies inside the ground-truth box
(no tolerance margin). The SHViT paper shows Grad-CAM maps of 4x4- and 16x16-stem models
qualitatively; the pointing game scores the same comparison.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator, Optional

import pandas as pd
import torch
import torch.nn as nn
from captum.attr import LayerAttribution, LayerGradCam
from tqdm import tqdm

from ..core import names
from ..core.errors import UserError, not_a_command
from ..core.models import leaves_model_as_found, model_as_found
from ..heads.maps import attention_rollout
from .augment import resize_inputs

__all__ = ["GradCAM", "GradCAMPlusPlus", "RolloutCAM", "CAM_METHODS", "last_stage", "cam_target", "pointing_game",
           "localisation", "localisation_images"]


def last_stage(model: nn.Module) -> tuple[str, nn.Module]:
    """(name, module) of the last spatial feature stage, from timm's `feature_info`."""
    info = getattr(model, "feature_info", None)
    if info:
        last = info[-1] if isinstance(info, list) else info.info[-1]
        name = last["module"]
        return name, model.get_submodule(name)
    raise UserError(f"{type(model).__name__} has no feature_info; pass the Grad-CAM layer explicitly")


def cam_target(model: nn.Module) -> tuple[str, nn.Module]:
    """(name, module) of the layer a CAM reads by default: the last stage (`last_stage`), except in
    a model that classifies from its class token (timm ViT / DeiT, `global_pool == "token"`): there
    the last block's patch tokens never reach the classifier (their gradient is 0), so the map is
    read where the class token's last attention reads them, the last block's first norm."""
    name, module = last_stage(model)
    blocks = getattr(model, "blocks", None)
    if getattr(model, "global_pool", None) == "token" and blocks is not None and hasattr(blocks[-1], "norm1"):
        return f"blocks.{len(blocks) - 1}.norm1", blocks[-1].norm1
    return name, module


class _Grid(nn.Module):
    """A copy of a layer's output viewed as (B, C, H, W): the module the CAMs hook (a copy, so that
    an in-place op after the layer cannot change what the CAM reads)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


class GradCAM:
    """captum `LayerGradCam` on `layer` (default: `cam_target`), maps at input resolution.

    The model runs in eval mode while `attribute` runs and is left as it was found; `attribute` returns
    ReLU'd class-activation maps, bilinearly upsampled to the input's H x W, one per image.
    """

    def __init__(self, model: nn.Module, layer: Optional[nn.Module] = None):
        self.model = model
        self.layer = layer if layer is not None else cam_target(model)[1]
        self.layer_name = next((n for n, m in model.named_modules() if m is self.layer), type(self.layer).__name__)
        self._grid = _Grid()
        self._cam = LayerGradCam(self.model, self._grid)

    @contextlib.contextmanager
    def _grid_view(self, images: torch.Tensor) -> Iterator[dict]:
        """While open, `layer`'s output passes through `_grid` as (B, C, H, W) and back; yields a
        dict that holds the last grid seen (`"grid"`)."""
        seen: dict = {}
        nhwc = getattr(self.model, "output_fmt", "NCHW") == "NHWC"
        prefix = getattr(self.model, "num_prefix_tokens", 0) or 0
        H, W = images.shape[-2:]

        def hook(module, args, out):
            if isinstance(out, torch.Tensor) and out.dim() == 4 and not nhwc:
                seen["grid"] = grid = self._grid(out)
                return grid
            if isinstance(out, torch.Tensor) and out.dim() == 4:
                seen["grid"] = grid = self._grid(out.permute(0, 3, 1, 2))
                return grid.permute(0, 2, 3, 1)
            if isinstance(out, torch.Tensor) and out.dim() == 3:
                B, N, C = out.shape
                n = N - prefix
                gh = max(1, round((n * H / W) ** 0.5))
                if gh * (n // gh) != n:
                    raise UserError(f"{self.layer_name}: {n} tokens (after {prefix} prefix tokens) do not form a "
                                    f"grid of the image's {H}x{W} shape")
                tokens = out[:, prefix:].reshape(B, gh, n // gh, C).permute(0, 3, 1, 2)
                seen["grid"] = grid = self._grid(tokens)
                return torch.cat([out[:, :prefix], grid.permute(0, 2, 3, 1).reshape(B, n, C)], 1)
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise UserError(f"a CAM needs a spatial layer output, (B, C, H, W), (B, H, W, C) or tokens (B, N, C); "
                            f"{self.layer_name} gives {shape}")

        handle = self.layer.register_forward_hook(hook)
        try:
            yield seen
        finally:
            handle.remove()

    def _target(self, images: torch.Tensor, target: Optional[torch.Tensor]) -> torch.Tensor:
        if target is None:
            with torch.no_grad():
                target = self.model(images).argmax(-1)
        return target

    def _coarse(self, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, 1, h, w) maps on the layer's grid."""
        with self._grid_view(images):
            return self._cam.attribute(images, target=target, relu_attributions=True)

    def attribute(self, images: torch.Tensor, target: Optional[torch.Tensor] = None,
                  upsample: bool = True) -> torch.Tensor:
        """Maps (B, H, W) for `target` classes (default: the model's predictions); on the layer's
        grid (B, h, w) with `upsample=False`."""
        with model_as_found(self.model):
            self.model.eval()
            attr = self._coarse(images, self._target(images, target))
        if upsample:
            attr = LayerAttribution.interpolate(attr, tuple(images.shape[-2:]), interpolate_mode="bilinear")
        return attr[:, 0].detach()


class GradCAMPlusPlus(GradCAM):
    """Grad-CAM++ (Chattopadhay et al., WACV 2018; see the module docstring), same interface as `GradCAM`."""

    def _coarse(self, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad(), self._grid_view(images) as seen:
            score = self.model(images).gather(1, target.reshape(-1, 1).to(images.device)).sum()
            a = seen["grid"]
            g, = torch.autograd.grad(score, a)
        a, g = a.detach(), g.detach()
        g2 = g * g
        denom = 2 * g2 + a.sum((2, 3), keepdim=True) * g2 * g
        alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, 1), torch.zeros_like(g))
        weights = (alpha * g.clamp(min=0)).sum((2, 3), keepdim=True)
        return (weights * a).sum(1, keepdim=True).clamp(min=0)


class RolloutCAM:
    """Attention rollout (`heads.maps.attention_rollout`) as a CAM: the class token's rolled-out
    attention on the patch grid. Not class-specific, so it takes no target; isotropic ViT-like
    models only (anything else is a UserError that says why)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.layer_name = "every attention layer (rollout)"

    def attribute(self, images: torch.Tensor, target: Optional[torch.Tensor] = None,
                  upsample: bool = True) -> torch.Tensor:
        """Rollout maps (B, H, W) at the input resolution; (B, gh, gw) with `upsample=False`."""
        if target is not None:
            raise UserError("attention rollout is not class-specific: it takes no target class")
        with model_as_found(self.model):
            maps = attention_rollout(self.model.eval(), images).maps[:, None]
        if upsample:
            maps = LayerAttribution.interpolate(maps, tuple(images.shape[-2:]), interpolate_mode="bilinear")
        return maps[:, 0]


CAM_METHODS = dict(zip(names.CAM_METHODS, (GradCAM, GradCAMPlusPlus, RolloutCAM)))


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


def _pointing_batches(model: nn.Module, dataset, batch_size: int, target: str, layer: Optional[nn.Module],
                      resolution: Optional[int], progress: bool) -> Iterator[tuple]:
    """Per batch of `dataset` (in order): (first image index, hits, pred, labels, boxes, side) of the
    pointing game on `layer`'s Grad-CAM maps (boxes and side after the optional resize)."""
    if target not in ("label", "pred"):
        raise ValueError(f"target must be 'label' or 'pred', got {target!r}")
    boxes_all = getattr(dataset, "boxes", None)
    if boxes_all is None:
        raise UserError("the dataset has no ground-truth boxes (.boxes)")
    model.eval()   # the callers run within `model_as_found`
    cam = GradCAM(model, layer)
    n = len(dataset)
    for start in tqdm(range(0, n, batch_size), disable=not progress, file=sys.stderr, leave=False, desc="grad-cam"):
        idx = range(start, min(start + batch_size, n))
        x = torch.stack([dataset[i][0] for i in idx])
        y = torch.tensor([dataset[i][1] for i in idx])
        boxes = boxes_all[start:start + len(idx)].clone()
        side = x.shape[-1]
        if resolution and resolution != side:
            x = resize_inputs(x, resolution)
            boxes = (boxes.double() * resolution / side).round().long()
            side = resolution
        with torch.no_grad():
            pred = model(x).argmax(-1)
        maps = cam.attribute(x, target=y if target == "label" else pred)
        yield start, pointing_game(maps, boxes), pred, y, boxes, side


@leaves_model_as_found
def localisation(model: nn.Module, dataset, *, batch_size: int = 100, target: str = "label",
                 layer: Optional[nn.Module] = None, resolution: Optional[int] = None,
                 progress: bool = False) -> pd.DataFrame:
    """Pointing-game score of `model` over a dataset with `.boxes` (e.g. `ClutteredDigits`).

    `target` is `label` (the ground-truth class, the usual protocol) or `pred` (the model's
    prediction). `resolution` resizes the images first (boxes are rescaled with them).
    Returns one row: pointing_game (share of hits, %), top1 (%), box_area (mean share of
    the image the boxes cover, %: the hit rate of a uniformly random point), images.
    Per image: `localisation_images`.
    """
    hits = correct = area = 0.0
    n = len(dataset)
    for _, hit, pred, y, boxes, side in _pointing_batches(model, dataset, batch_size, target, layer, resolution,
                                                          progress):
        hits += hit.sum().item()
        correct += (pred == y).sum().item()
        area += ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sum().item() / side ** 2
    return pd.DataFrame([{"pointing_game": 100 * hits / n, "top1": 100 * correct / n,
                          "box_area": 100 * area / n, "target": target, "images": n}])


@leaves_model_as_found
def localisation_images(model: nn.Module, dataset, *, batch_size: int = 100, target: str = "label",
                        layer: Optional[nn.Module] = None, resolution: Optional[int] = None,
                        progress: bool = False) -> pd.DataFrame:
    """`localisation` per image: one row per image of `dataset`, in order, with `image` (its index),
    `label`, `pred` and `hit` (1 when the map's maximum lies in the image's box, else 0; strict
    pointing game). The mean of `hit` is `localisation`'s pointing_game / 100 on the same arguments."""
    frames = [pd.DataFrame({"image": range(start, start + len(hit)), "label": y.numpy(), "pred": pred.numpy(),
                            "hit": hit.to(torch.int64).numpy()})
              for start, hit, pred, y, _, _ in _pointing_batches(model, dataset, batch_size, target, layer,
                                                                 resolution, progress)]
    return pd.concat(frames, ignore_index=True)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
