"""A model's cost by name: build it (random weights) at a resolution, BN-fuse it, count it and,
if asked, time its stages. What `python -m analysis.cost` prints: `cost_text` for people (K/M/G
counts, KiB/MiB bytes, a module tree to `depth` levels like fvcore's `flop_count_table`), `report`
for `--json`; `--csv` keeps the exact integers of the tidy tables."""
from __future__ import annotations

import contextlib
from typing import Optional

import pandas as pd
import torch

from ..core.errors import UserError, not_a_command
from ..core.models import create_model_at, fuse_model
from ..core.tables import human_bytes, human_count
from .counter import CostAnalysis
from .latency import stage_latency

__all__ = ["analyse", "report", "cost_text"]


def analyse(name: str, *, resolution: Optional[int] = None, batch_size: int = 1, device="cpu", seed: int = 0,
            fuse: bool = True, repeats: int = 20, warmup: int = 5, progress: bool = False, meta: bool = False):
    """Build `name` (random weights) and return (CostAnalysis, stage-latency DataFrame or None, resolution);
    `repeats=0` counts without timing. `meta`: build and count on the meta device (no weights in memory,
    nothing computed; the counts are a real run's), which cannot be timed."""
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if meta and repeats > 0:
        raise UserError("a model on the meta device has no values to time: count with meta, time without it")
    device = torch.device("meta") if meta else device
    with device if meta else contextlib.nullcontext():  # every tensor the build makes is on meta
        model, (c, h, w) = create_model_at(name, resolution, seed=seed, batch_size=batch_size, device=device)
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


def _int(n) -> str:
    return "" if n is None or pd.isna(n) else str(int(n))


def _shape(shape) -> str:
    return "" if shape is None or (isinstance(shape, float) and pd.isna(shape)) else str(tuple(shape))


def cost_text(ca: CostAnalysis, by: str = "stage", *, depth: int = 3, latency: Optional[pd.DataFrame] = None) -> str:
    """The table `python -m analysis.cost` prints: per stage (with latency_ms when timed), per module (a tree
    down to `depth` levels, the whole model first) or per operator, in human units. Intensity is FLOP per
    byte (2 FLOP per MAC), the lab's one intensity unit."""
    if by == "stage":
        df = ca.by_stage()
        rows = {"stage": df["stage"], "params": df["params"].map(human_count), "MACs": df["macs"].map(human_count),
                "mem_bytes": df["mem_bytes"].map(human_bytes), "FLOP/byte": df["flops_per_byte"].map("{:.2f}".format),
                "tokens": df["tokens"].map(_int), "channels": df["channels"].map(_int)}
        if latency is not None:
            measured = dict(zip(latency["stage"], latency["latency_ms"]))
            rows["latency_ms"] = df["stage"].map(measured).map("{:.2f}".format)
    elif by == "module":
        df = ca.by_module()
        df = df[df["depth"] <= depth]
        names = ["model" if not n else "  " * d + n for n, d in zip(df["module"], df["depth"])]
        rows = {"module": names, "type": df["type"], "params": df["params"].map(human_count),
                "MACs": df["macs"].map(human_count), "mem_bytes": df["mem_bytes"].map(human_bytes),
                "FLOP/byte": df["flops_per_byte"].map("{:.2f}".format), "out shape": df["out_shape"].map(_shape)}
    elif by == "operator":
        df = ca.by_operator()
        rows = {"operator": df["op"], "calls": df["calls"], "MACs": df["macs"].map(human_count),
                "mem_bytes": df["mem_bytes"].map(human_bytes), "FLOP/byte": df["flops_per_byte"].map("{:.2f}".format)}
    else:
        raise ValueError(f"by must be stage, module or operator, got {by!r}")
    table = pd.DataFrame(rows).replace("nan", "")
    left = {"stage", "module", "operator", "type"}
    widths = {c: max(len(c), *(len(str(v)) for v in table[c])) for c in table.columns}
    lines = ["  ".join(c.ljust(widths[c]) if c in left else c.rjust(widths[c]) for c in table.columns)]
    for r in table.itertuples(index=False):
        lines.append("  ".join(str(v).ljust(widths[c]) if c in left else str(v).rjust(widths[c])
                               for c, v in zip(table.columns, r)))
    return "\n".join(line.rstrip() for line in lines)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
