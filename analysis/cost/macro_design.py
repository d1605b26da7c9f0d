"""Cost and measured latency per stage of macro designs (SHViT Fig. 2) and of any model.

    >>> stage_costs(model, torch.randn(1, 3, 224, 224))   # one model: a row per stage
    >>> macro_design_table()                               # Fig. 2 (a), (b), (b'), (b'') and stems 4..32

`stage_costs` joins `CostAnalysis.by_stage()` (tokens, channels, params, macs, mem_bytes,
flops_per_byte of the BN-fused model) with `stage_latency` (median ms per stage). It is
the building block for the ablation lab's micro models too.

`macro_design_table` runs it on the SHViT Fig. 2 configs at their nominal resolution
(224 px; (b') at 256 px), with random weights: cost and speed do not depend on them.
"""
from __future__ import annotations

import sys
from typing import Iterable

import pandas as pd
import torch
import torch.nn as nn
from tqdm import tqdm

import shvit

from ..core.errors import not_a_command
from ..core.models import create_model, create_model_at, fuse_model, leaves_model_as_found
from ..core.runtime import with_measured_on
from .counter import CostAnalysis
from .latency import stage_latency
from .timing import TIMING_ROUNDS, interleaved_rounds

__all__ = ["FIG2_MODELS", "stage_costs", "macro_design_table", "fig2_speed_rounds"]

FIG2_MODELS = ("shvitlab_fig2_a", "shvitlab_fig2_b", "shvitlab_fig2_b256", "shvitlab_fig2_b_attn1",
               "shvitlab_stem4", "shvitlab_stem8", "shvitlab_stem16", "shvitlab_stem32")


@leaves_model_as_found
def stage_costs(model: nn.Module, x: torch.Tensor, *, repeats: int = 20, warmup: int = 5,
                fuse: bool = True) -> pd.DataFrame:
    """Per stage: tokens, channels, params, macs, mem_bytes, flops_per_byte, latency_ms, spread_ms.

    `repeats=0` skips the timing (latency columns are NaN); the cost columns are deterministic.
    The model is fused on a copy (yours is untouched) and timed on `x`'s device.
    """
    net = (fuse_model(model) if fuse else model.eval()).to(x.device)
    ca = CostAnalysis(net, x, fuse=False)
    df = ca.by_stage()[["stage", "tokens", "channels", "params", "macs", "mem_bytes", "flops_per_byte"]]
    if repeats > 0:
        lat = stage_latency(net, x, repeats=repeats, warmup=warmup, stages=ca.stage_map)
        df = df.merge(lat, on="stage", how="left")
        df.attrs["model_latency_ms"] = lat.attrs["model_latency_ms"]
    else:
        df = df.assign(latency_ms=float("nan"), spread_ms=float("nan"))
    return df


def macro_design_table(names: Iterable[str] = FIG2_MODELS, *, device="cpu", batch_size: int = 1,
                       repeats: int = 20, warmup: int = 5, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Tidy table (model x stage) of the SHViT Fig. 2 macro designs: the data behind the figure.

    Columns: model, design, resolution, batch_size, device, stage, tokens, channels, params, macs,
    mem_bytes, flops_per_byte, latency_ms, spread_ms. Each model at its config's `img_size`.
    """
    frames = []
    for name in tqdm(list(names), desc="macro designs", disable=not progress, file=sys.stderr):
        key = name[len(shvit.PREFIX):] if name.startswith(shvit.PREFIX) else name
        variant = shvit.VARIANTS.get(key)
        model, (c, h, w) = create_model_at(name, variant.cfg.img_size if variant else None, seed=seed)
        x = torch.randn(batch_size, c, h, w, generator=torch.Generator().manual_seed(seed)).to(device)
        df = stage_costs(model, x, repeats=repeats, warmup=warmup)
        meta = {"model": name, "design": variant.description if variant else name, "resolution": h,
                "batch_size": batch_size, "device": torch.device(device).type}
        meta = with_measured_on(meta, device)
        frames.append(df.assign(**meta)[list(meta) + list(df.columns)])
    return pd.concat(frames, ignore_index=True)


def fig2_speed_rounds(rounds: int = TIMING_ROUNDS, *, batch_size: int = 4, resolution: int = 224,
                      passes: int = 3) -> pd.DataFrame:
    """Seconds per forward pass of Fig. 2's (a) and (b) (random weights, CPU, one thread), in
    `rounds` interleaved rounds (each the best of `passes` passes), so that load drift on a shared
    machine hits both designs of a round alike: the data of the `shvit_fig2_speed` claim."""
    x = torch.randn(batch_size, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))
    models = {d: (create_model(f"shvitlab_fig2_{d[1]}", "random"), x) for d in ("(a)", "(b)")}
    df = interleaved_rounds(models, rounds, passes=passes, threads=1).rename(columns={"name": "design"})
    return df.assign(model=[f"shvitlab_fig2_{d[1]}" for d in df.design], batch_size=batch_size,
                     resolution=resolution)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
