"""A model's cost by name: build it (random weights) at a resolution, BN-fuse it, count it and,
if asked, time its stages. What `python -m analysis.cost` prints."""
from __future__ import annotations

from typing import Optional

import pandas as pd
import torch

from ..core.errors import UserError, not_a_command
from ..core.models import create_model_at, fuse_model
from .counter import CostAnalysis
from .latency import stage_latency

__all__ = ["analyse", "report"]


def analyse(name: str, *, resolution: Optional[int] = None, batch_size: int = 1, device="cpu", seed: int = 0,
            fuse: bool = True, repeats: int = 20, warmup: int = 5, progress: bool = False):
    """Build `name` (random weights) and return (CostAnalysis, stage-latency DataFrame or None, resolution);
    `repeats=0` counts without timing."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    model, (c, h, w) = create_model_at(name, resolution, seed=seed)
    model = (fuse_model(model, inplace=True) if fuse else model).to(device)
    torch.manual_seed(seed)
    x = torch.randn(batch_size, c, h, w, device=device)
    ca = CostAnalysis(model, x, fuse=False)
    lat = (stage_latency(model, x, repeats=repeats, warmup=warmup, stages=ca.stage_map, progress=progress)
           if repeats > 0 else None)
    return ca, lat, h


def report(ca: CostAnalysis, latency: Optional[pd.DataFrame], name: str, resolution: int) -> dict:
    """The `--json` object: total and one entry per stage."""
    st = ca.by_stage()
    lat = dict(zip(latency["stage"], latency["latency_ms"])) if latency is not None else {}
    return {"model": name, "resolution": resolution, "macs": ca.total("macs"), "mem_bytes": ca.total("mem_bytes"),
            "params": ca.total("params"), "unsupported_ops": ca.unsupported_ops(),
            "stages": [{"name": r.stage, "macs": int(r.macs), "mem_bytes": int(r.mem_bytes),
                        "tokens": None if pd.isna(r.tokens) else int(r.tokens),
                        "latency_ms": round(float(lat[r.stage]), 4) if r.stage in lat else None}
                       for r in st.itertuples()]}


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
