"""Head importance in one backward pass (Michel, Levy & Neubig 2019, "Are Sixteen Heads Really
Better than One?"): the sensitivity of the loss to a gate on each head's output.

    >>> df = head_importance(model, batches)   # batches: images, or (images, labels)
    >>> df[df.metric == "head_importance"]     # one row per layer x head

Each multi-head layer's heads get a gate xi_h (1.0, so the model's outputs are unchanged) on
their slice of the output projection's input, the slice `HeadMask` zeroes to remove a head
(`AttentionLayer.proj`, `channel_dim`, `head_dim`). One backward pass of the summed
cross-entropy gives every dL/dxi_h at once, and

    head_importance_h = sum over batches |d (sum of the batch's losses) / d xi_h|  /  images,

which is the paper's E_x |dL(x)/dxi_h| with batches of one image, and the authors' code
(absolute batch gradients accumulated) otherwise. `head_importance_normalized` divides each
layer's scores by their L2 norm, as the authors do before pruning. The loss uses the labels when
a batch has them (>= 0) and the model's own prediction otherwise (unlabelled sample images).

First-order: it predicts what removing a head (xi_h = 0) costs from the slope at xi_h = 1, so it
ranks heads like remove-one-head ablation where the loss is near-linear in the gate; the
Spearman rho between the two says how far that holds (notebook 03 reports it). EfficientViT's
cascade feeds head j's output on to head j + 1: the gate sits, as `HeadMask`'s zeroing does, on
the projection input only (a head's direct contribution).
"""
from __future__ import annotations

import sys
from typing import Iterable, Optional

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from ..core.distributed import World
from ..core.errors import UserError, not_a_command
from ..core.models import leaves_model_as_found
from .layers import AttentionLayer, ProjectionInputHooks, attention_layers

__all__ = ["HeadGates", "head_importance", "IMPORTANCE_METRICS"]

IMPORTANCE_METRICS = ("head_importance", "head_importance_normalized")


class HeadGates(ProjectionInputHooks):
    """Context manager putting a gate (a leaf tensor of ones that requires grad) on each head of
    every multi-head layer: `gates[layer_name]` has one entry per head, to differentiate against."""

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu"):
        self.layers = [layer for layer in attention_layers(model) if layer.num_heads > 1]
        self.gates = {layer.name: torch.ones(layer.num_heads, device=device, requires_grad=True)
                      for layer in self.layers}
        self._plan = [(layer, self.gates[layer.name]) for layer in self.layers]

    @staticmethod
    def _hook(layer: AttentionLayer, gate: torch.Tensor):
        def hook(module, args):
            x = args[0]
            scale = gate.to(x.dtype).repeat_interleave(layer.head_dim)  # [h * head_dim]
            shape = [1] * x.dim()
            shape[layer.channel_dim] = scale.numel()
            return (x * scale.view(shape), *args[1:])
        return hook


@leaves_model_as_found
def head_importance(model: nn.Module, batches: Iterable, *, device: torch.device | str = "cpu",
                    progress: bool = False, total: Optional[int] = None,
                    world: Optional[World] = None) -> pd.DataFrame:
    """Per head of every multi-head layer: `head_importance` and `head_importance_normalized` (see
    the module docstring), in the tidy layout of `HeadStatistics.to_frame` (layer, layer_index,
    stage, family, num_heads, head, metric, value, applicable, num_images). Under `world` (torchrun)
    the absolute gradients and image counts are summed over the processes."""
    device = torch.device(device)
    model = model.to(device).eval()
    world = world or World()
    gates = HeadGates(model, device)
    if not gates.layers:
        raise UserError(f"{type(model).__name__} has no multi-head attention layer: head importance needs two heads")
    sums = {name: torch.zeros(g.numel(), dtype=torch.float64, device=device) for name, g in gates.gates.items()}
    images = 0
    with gates, torch.enable_grad():
        for batch in tqdm(batches, total=total, unit="batch", disable=not progress, file=sys.stderr, leave=False):
            x, labels = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
            x = x.to(device)
            logits = model(x)
            target = logits.detach().argmax(-1)
            if labels is not None:
                labels = torch.as_tensor(labels, device=device)
                target = torch.where(labels >= 0, labels, target)
            loss = F.cross_entropy(logits.float(), target, reduction="sum")
            grads = torch.autograd.grad(loss, list(gates.gates.values()))  # the gates only: no weight grads
            for name, g in zip(gates.gates, grads):
                sums[name] += g.abs().to(torch.float64)
            images += len(x)
    local, images = images, int(world.sum(images)[0])
    world.sum_(list(sums.values()))
    if images == 0:
        raise UserError("no images to score head importance on")
    rows = []
    for layer in gates.layers:
        score = sums[layer.name] / images
        norm = score.norm()
        meta = dict(layer=layer.name, layer_index=layer.index + 1, stage=layer.stage, family=layer.family,
                    num_heads=layer.num_heads, applicable=True, num_images=images)
        for h in range(layer.num_heads):
            rows.append({**meta, "head": h, "metric": "head_importance", "value": float(score[h]),
                         "unit": "nats per image"})
            rows.append({**meta, "head": h, "metric": "head_importance_normalized",
                         "value": float(score[h] / norm) if norm > 0 else 0.0, "unit": "fraction of layer norm"})
    df = pd.DataFrame(rows)
    df.attrs["images_this_process"] = local
    return df


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
