"""Head redundancy per layer (SHViT Fig. 3/4, EfficientViT Fig. 4); CLI: `python -m analysis.head_similarity`.

Runs each model over an image source, captures every attention layer's per-head maps
(`heads.attention`) and streams the statistics of `heads.metrics` into one tidy table: one row per model x layer x metric (plus
per-head rows), similarities as fractions in [-1, 1]. `metrics` names registered head metrics
(`heads.metrics.METRICS` by default: the papers' two similarity metrics, linear CKA, entropy and
attention distance) or passes `HeadMetric` classes, registered or not.

Library use: `head_similarity(model, batches)` -> DataFrame.
"""
from __future__ import annotations

import contextlib
import math
import sys
from typing import Callable, Iterable, Optional

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from tqdm import tqdm

from ..core.errors import not_a_command
from ..core.distributed import World
from ..core.memory import check_memory
from ..core.models import create_model, describe_weights, input_size, leaves_model_as_found
from ..core.names import AMP_CHOICES, PAPER_METRICS
from .attention import AttentionCapture
from .importance import head_importance
from .layers import attention_layers
from .metrics import METRICS, HeadMetric, HeadStatistics, pairwise_cosine

__all__ = ["head_similarity", "similarity_per_image", "model_head_similarity", "head_similarity_table", "similarity_summary", "COLUMNS",
           "PAPER_METRICS", "AMP_DTYPES"]

COLUMNS = ["model", "weights", "layer", "layer_index", "stage", "family", "num_heads", "head",
           "metric", "value", "unit", "applicable", "num_images", "data", "seed"]
AMP_DTYPES = dict(zip(AMP_CHOICES, (None, torch.float16, torch.bfloat16)))


@leaves_model_as_found
@torch.inference_mode()
def head_similarity(model: nn.Module, batches: Iterable, *, device: torch.device | str = "cpu",
                    amp: Optional[torch.dtype] = None, metrics: Iterable[str | type[HeadMetric]] = METRICS,
                    progress: bool = False, total: Optional[int] = None,
                    world: Optional[World] = None) -> pd.DataFrame:
    """Stream `batches` (images, or (images, labels)) through `model`; per-layer head statistics.

    `amp` runs the model under autocast in that dtype (fp16 / bf16); statistics are
    reduced in fp32 and summed in fp64 either way. The model's outputs are discarded, so fused
    attention runs explicitly (`AttentionCapture(exact_outputs=False)`): its maps are read, not
    recomputed. Under `world` (torchrun) each process
    streams its share of the images and the sums are all-reduced: every process returns the
    statistics of all the images.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    stats = HeadStatistics(metrics)
    autocast = (lambda: torch.autocast(device.type, dtype=amp)) if amp is not None else contextlib.nullcontext
    seen = 0
    with AttentionCapture(model, stats.update, head_outputs=stats.needs_head_outputs,
                          chunk_bytes=stats.chunk_bytes, exact_outputs=False):
        for batch in tqdm(batches, total=total, unit="batch", disable=not progress, file=sys.stderr, leave=False):
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            seen += len(images)
            with autocast():
                model(images.to(device))
    stats.all_reduce(world or World())
    df = stats.to_frame()
    df.attrs["images_this_process"] = seen
    return df


@torch.inference_mode()
def similarity_per_image(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """[layers, images]: per image, each multi-head layer's mean pairwise cosine similarity of the
    head maps (windows averaged), for intervals over images (`HeadStatistics` keeps only sums:
    its `mean_pairwise_cosine` is this averaged over images)."""
    rows = []

    def record(m):
        h = m.num_heads
        if h > 1:
            cos = pairwise_cosine(m.attn)                                  # [B * windows, h, h]
            off = (cos.sum((1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(1)) / (h * (h - 1))
            rows.append(off.reshape(m.batch_size, -1).double().mean(1))
    with AttentionCapture(model, record, exact_outputs=False):
        model(x)
    return torch.stack(rows)


def model_head_similarity(name: str, weights: str, model: nn.Module, source, *, batch_size: int = 32,
                          device: torch.device | str = "cpu", amp: Optional[torch.dtype] = None,
                          metrics: Iterable[str | type[HeadMetric]] = METRICS, seed: int = 0, progress: bool = True,
                          importance: bool = False, world: Optional[World] = None) -> pd.DataFrame:
    """`head_similarity` of one named model over an image source, as rows with `COLUMNS`; with
    `importance`, also `heads.importance.head_importance`'s rows (a second pass, with gradients)."""
    world = world or World()
    total = (math.ceil(source.num_images / world.size / batch_size) if getattr(source, "num_images", None)
             else None)
    metrics = list(metrics)
    frames = []
    if metrics:
        frames.append(head_similarity(model, source.batches(model, batch_size, world=world), device=device, amp=amp,
                                      metrics=metrics, progress=progress and world.main, total=total, world=world))
    if importance:
        frames.append(head_importance(model, source.batches(model, batch_size, world=world), device=device,
                                      progress=progress and world.main, total=total, world=world))
    df = pd.concat(frames, ignore_index=True)
    df.attrs.update(frames[0].attrs)
    df.insert(0, "model", name)
    df.insert(1, "weights", describe_weights(weights))
    df["data"] = source.describe()
    df["seed"] = seed
    out = df[COLUMNS]
    out.attrs.update(df.attrs)
    return out


def head_similarity_table(specs: Iterable[tuple[str, str]], source, *, seed: int = 0, batch_size: int = 32,
                          device: torch.device | str = "cpu", world: Optional[World] = None,
                          resample_pos_embed: bool = False, announce: Optional[Callable[[str, str], None]] = None,
                          **kwargs) -> pd.DataFrame:
    """Head statistics of several `(model name, weights)` on one image source: one tidy table.

    `weights` as in `analysis.core.models.create_model` (`random`, `pretrained` or a checkpoint path);
    other keyword arguments go to `model_head_similarity`. Every model is created and checked (a supported
    attention layer, memory for a batch) before any is measured, and released once measured;
    `announce(name, weights)` is called as each starts. `attrs` holds, per model, the images used and
    skipped and each process's share (`images_used`, `images_skipped`, `images_per_process`).
    """
    world = world or World()
    models = []
    for name, weights in specs:
        model = create_model(name, weights, seed=seed, resample_pos_embed=resample_pos_embed)
        attention_layers(model)  # an unsupported architecture fails before any compute
        check_memory(name, (batch_size, *input_size(model)), device=device)
        models.append((name, weights, model))
    frames, used, skipped, per_process = [], {}, {}, {}
    while models:
        name, weights, model = models.pop(0)
        if announce is not None:
            announce(name, weights)
        df = model_head_similarity(name, weights, model, source, seed=seed, batch_size=batch_size, device=device,
                                   world=world, **kwargs)
        frames.append(df)
        used[name], skipped[name] = source.num_used, source.num_skipped
        per_process[name] = world.gather(df.attrs["images_this_process"])
    table = pd.concat(frames, ignore_index=True)
    table.attrs.update(images_used=used, images_skipped=skipped, images_per_process=per_process)
    return table


def similarity_summary(df: pd.DataFrame, metrics=PAPER_METRICS) -> pd.DataFrame:
    """Per attention layer (rows: its 1-based index in the model) and model (columns: model (weights),
    metric), the layer-level similarity in %, what `python -m analysis.head_similarity` prints; NaN where a
    layer has one head (not applicable) or a model has fewer layers."""
    rows = df[df["metric"].isin(metrics) & df["head"].isna()].copy()
    rows["value"] = np.where(rows["applicable"].astype(bool), 100 * rows["value"].astype(float), np.nan)
    rows["model"] = rows["model"] + " (" + rows["weights"] + ")"
    wide = rows.set_index(["layer_index", "model", "metric"])["value"].unstack(["model", "metric"])
    return wide.reindex(columns=pd.MultiIndex.from_tuples(dict.fromkeys(zip(rows["model"], rows["metric"])),
                                                          names=["model", "metric"])).round(1)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
