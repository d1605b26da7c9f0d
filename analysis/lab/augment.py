"""What the training loop does to a batch's images: the augmentation of a recipe (`augment`) and the
resize to its `resolution` (Fig. 2 b': the same images at a larger side), in training and evaluation."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..core.errors import not_a_command

__all__ = ["AUGMENTS", "shift_images", "resize_inputs"]

AUGMENTS = ("none", "shift")


def shift_images(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of [B, C, H, W] translated by its own random offset of up to H // 8 px on each axis,
    the vacated border filled with 0 (the mean colour after normalisation): the augmentation `augment =
    "shift"` applies to training batches (a digit placed anywhere stays a digit)."""
    m = x.shape[-1] // 8
    if m == 0:
        return x
    offsets = torch.randint(0, 2 * m + 1, (len(x), 2), generator=generator).tolist()
    padded = F.pad(x, (m, m, m, m))
    h, w = x.shape[-2:]
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


def resize_inputs(x: torch.Tensor, side: Optional[int]) -> torch.Tensor:
    """Images [B, C, H, W] resized to side x side (antialiased bilinear), as recipes with a
    `resolution` of their own see them in training and evaluation; unchanged when `side` is None or already met."""
    if side is None or x.shape[-1] == side:
        return x
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
