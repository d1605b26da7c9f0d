"""SHViT S1..S4 sizes measured here beside the paper's Table 1.

Parameters are counted on the trainable model; MACs with fvcore on the BN-folded deploy model,
which is how the official code (and so the paper) counts them.
"""
from __future__ import annotations

import warnings

import pandas as pd
import torch

with warnings.catch_warnings():  # fvcore decorates a loss with torch.jit.script, which torch now deprecates
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis

import shvit

from ..core.errors import not_a_command
from ..core.models import create_model, fuse_model
from ..core.reference import load_reference

__all__ = ["shvit_variant_table", "efficientvit_variant_table"]


def _fvcore_macs(model: torch.nn.Module, side: int) -> int:
    fca = FlopCountAnalysis(model, torch.zeros(1, 3, side, side))
    fca.unsupported_ops_warnings(False)
    fca.uncalled_modules_warnings(False)
    return int(fca.total())


def _size_rows(label: str, timm_name: str, side: int, paper) -> list[dict]:
    model = create_model(timm_name)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    macs = _fvcore_macs(fuse_model(model), side) / 1e6
    return [dict(model=label, timm_name=timm_name, resolution=side, metric=metric, ours=round(ours, 3), paper=ref,
                 rel_diff=round(ours / ref - 1, 5))
            for metric, ours, ref in (("params_m", params, paper.params_m), ("macs_m", macs, paper.macs_m))]


def shvit_variant_table() -> pd.DataFrame:
    """Tidy table: one row per variant x metric (`params_m`, `macs_m`) with ours, paper and rel_diff."""
    rows = []
    for _, paper in load_reference("shvit_variants").iterrows():
        name = f"{shvit.PREFIX}{paper.variant.lower()}"
        rows += _size_rows(f"SHViT-{paper.variant}", name, int(paper.resolution), paper)
    return pd.DataFrame(rows)


def efficientvit_variant_table() -> pd.DataFrame:
    """EfficientViT M0..M5 (timm's models) at 224 px beside the paper's model zoo, as `shvit_variant_table`."""
    return pd.DataFrame([row for _, paper in load_reference("efficientvit_m").iterrows()
                         for row in _size_rows(paper.model, paper.timm_name, 224, paper)])


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
