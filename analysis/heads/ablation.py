"""Head ablation (SHViT Fig. 3): how much top-1 accuracy each attention head carries.

"remove 1" nulls one head's output in one layer, others intact; "leave 1" nulls all heads
of the layer but one. Nulling head h means zeroing its slice of the output projection's
input (`AttentionLayer.proj`, channels [h * head_dim, (h + 1) * head_dim)): the head then
contributes nothing but the projection's bias. Every other layer is untouched.

    df = head_ablation(model, loader)          # loader: (images, labels) batches
    best_heads(df)                             # per layer and mode: best top-1 delta and its head
    extreme_heads(df)                          # per layer: most important / most redundant head

EfficientViT's cascade (CascadedGroupAttention): head j's input is its channel chunk
*plus head j-1's output*. Nulling head j here zeroes only head j's slice of the
projection input; heads j+1, j+2, ... still receive head j's (un-nulled) output through
the cascade. The ablation therefore measures a head's *direct* contribution to the layer
output, not everything that flows through it; nulling inside the cascade as well would
also perturb every later head of the layer, which is a different experiment.

Single-head layers (SHViT's SHSA, BottleneckSHSA) are skipped: removing their only head
removes the layer's attention, and "leave 1" is the unablated model.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import pandas as pd
import torch
import torch.nn as nn
from tqdm import tqdm

from ..core.distributed import World
from ..core.errors import UserError, not_a_command
from ..core.files import write_json
from ..core.models import leaves_model_as_found
from ..core.names import ABLATION_MODES
from .layers import AttentionLayer, ProjectionInputHooks, attention_layers

__all__ = ["HeadMask", "evaluate_top1", "head_ablation", "best_heads", "extreme_heads"]


class HeadMask(ProjectionInputHooks):
    """Context manager nulling heads: `HeadMask(model, {"blocks.3.attn": [0, 2]})`.

    A forward pre-hook on each layer's output projection zeroes the heads' input slices;
    leaving the context removes the hooks.
    """

    def __init__(self, model: nn.Module, heads: Mapping[str, Sequence[int]]):
        layers = {layer.name: layer for layer in attention_layers(model)}
        unknown = sorted(set(heads) - set(layers))
        if unknown:
            raise UserError(f"no attention layer named {', '.join(unknown)}")
        self._plan = []
        for name, idx in heads.items():
            layer = layers[name]
            bad = [h for h in idx if not 0 <= h < layer.num_heads]
            if bad:
                raise UserError(f"{name} has {layer.num_heads} heads; cannot null head(s) {bad}")
            self._plan.append((layer, sorted(set(idx))))

    @staticmethod
    def _hook(layer: AttentionLayer, idx: list[int]):
        def hook(module, args):
            x = args[0].clone()
            for h in idx:
                x.narrow(layer.channel_dim, h * layer.head_dim, layer.head_dim).zero_()
            return (x, *args[1:])
        return hook


def _reiterable(batches: Iterable) -> Iterable:
    """Batches that can be iterated many times (a one-shot iterator is kept in memory)."""
    return list(batches) if iter(batches) is batches else batches


@torch.inference_mode()
def evaluate_top1(model: nn.Module, batches: Iterable, device: torch.device | str = "cpu",
                  world: Optional[World] = None) -> tuple[float, int]:
    """(top-1 accuracy in [0, 1], number of images) over (images, labels) batches; under `world`,
    counted over every process's batches (exact: the counts are summed, not the accuracies)."""
    correct = total = 0
    for images, labels in batches:
        pred = model(images.to(device)).argmax(-1).cpu()
        correct += int((pred == labels).sum())
        total += len(labels)
    correct, total = (world or World()).sum(correct, total)
    if total == 0:
        raise UserError("no labelled images to evaluate")
    return correct / total, int(total)


def _finished(partial: Optional[Path], identity: dict) -> list[dict]:
    """Rows of an interrupted run of the same ablation (`partial` written after each one), else []."""
    if partial is None or not partial.is_file():
        return []
    try:
        saved = json.loads(partial.read_text())
        same = saved["identity"] == identity
    except (ValueError, KeyError, TypeError):
        raise UserError(f"{partial} is not a partial head-ablation run; delete it to start afresh") from None
    if not same:
        raise UserError(f"{partial} holds a partial run of another ablation (model, weights, data or options differ); "
                        "delete it to start afresh, or choose another output")
    return saved["rows"]


@leaves_model_as_found
def head_ablation(model: nn.Module, batches: Iterable, *, device: torch.device | str = "cpu",
                  modes: Sequence[str] = ABLATION_MODES, layers: Optional[Sequence[str]] = None,
                  progress: bool = False, world: Optional[World] = None,
                  partial: Optional[str | os.PathLike] = None, identity: Optional[dict] = None) -> pd.DataFrame:
    """Top-1 with each head removed ("remove1") / each head alone ("leave1"), per layer.

    Args:
        batches: (images, labels) batches, e.g. a DataLoader over a labelled image folder
            (`analysis.core.images.ImageFolderSource(...).batches(model, bs)` or any iterable).
        layers: restrict to these attention layers (default: every multi-head layer).
        world: under torchrun, each process passes its share of the images; counts are summed.
        partial: a file where the finished ablations are kept (rank 0 writes it atomically after
            each); a run that finds it, written with the same `identity` (what defines the
            experiment: model, weights, data, options), continues after the last finished
            (layer, mode, head) and ends with the same table. Deleted when the table is complete.

    Returns one row per layer x mode x head: `layer, layer_index, stage, num_heads, mode,
    head, top1, baseline_top1, delta, num_images` (accuracies as fractions, `delta` =
    top1 - baseline_top1).
    """
    world = world or World()
    partial = Path(partial) if partial is not None else None
    identity = {**(identity or {}), "modes": list(modes), "layers": list(layers or [])}
    bad = set(modes) - set(ABLATION_MODES)
    if bad:
        raise UserError(f"unknown modes {sorted(bad)}; use {' and/or '.join(ABLATION_MODES)}")
    model = model.to(device).eval()
    batches = _reiterable(batches)
    todo = [layer for layer in attention_layers(model) if layer.num_heads > 1
            and (layers is None or layer.name in layers)]
    if not todo:
        raise UserError("no multi-head attention layer to ablate (single-head layers are not applicable)")
    baseline, n = evaluate_top1(model, batches, device, world)
    runs = [(layer, mode, h) for layer in todo for mode in modes for h in range(layer.num_heads)]
    rows = _finished(partial, identity)
    if rows and world.main:
        print(f"resuming {partial}: {len(rows)} of {len(runs)} ablations done", file=sys.stderr)
    for layer, mode, h in tqdm(runs[len(rows):], disable=not (progress and world.main), file=sys.stderr,
                               unit="ablation", leave=False, initial=len(rows), total=len(runs)):
        nulled = [h] if mode == "remove1" else [j for j in range(layer.num_heads) if j != h]
        with HeadMask(model, {layer.name: nulled}):
            top1, _ = evaluate_top1(model, batches, device, world)
        rows.append(dict(layer=layer.name, layer_index=layer.index + 1, stage=layer.stage,
                         num_heads=layer.num_heads, mode=mode, head=h, top1=top1, baseline_top1=baseline,
                         delta=top1 - baseline, num_images=n))
        if partial is not None and world.main:
            write_json({"identity": identity, "rows": rows}, partial)
    if partial is not None and world.main:
        partial.unlink(missing_ok=True)
    return pd.DataFrame(rows)


def best_heads(df: pd.DataFrame) -> pd.DataFrame:
    """Per layer and mode, the paper's number: the best top-1 delta over the choice of head, and that head."""
    best = df.loc[df.groupby(["layer", "mode"], sort=False)["delta"].idxmax()]
    return best[["layer", "layer_index", "stage", "num_heads", "mode", "head", "delta", "top1", "baseline_top1",
                 "num_images"]].rename(columns={"head": "best_head", "delta": "best_delta"}).reset_index(drop=True)


def extreme_heads(df: pd.DataFrame) -> pd.DataFrame:
    """Per layer, from the "remove1" runs: the most important head (its removal costs the most
    top-1) and the most redundant one (its removal costs the least)."""
    rm = df[df["mode"] == "remove1"]
    if rm.empty:
        raise ValueError("extreme_heads needs 'remove1' results")
    g = rm.groupby("layer", sort=False)
    out = pd.DataFrame({
        "layer_index": g.layer_index.first(),
        "most_important_head": rm.loc[g.delta.idxmin(), ["layer", "head"]].set_index("layer")["head"],
        "important_delta": g.delta.min(),
        "most_redundant_head": rm.loc[g.delta.idxmax(), ["layer", "head"]].set_index("layer")["head"],
        "redundant_delta": g.delta.max(),
    })
    return out.reset_index()


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
