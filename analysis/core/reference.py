"""Numbers transcribed from the SHViT and EfficientViT papers (see reference/README.md)."""
from __future__ import annotations

from importlib import resources

import pandas as pd

from .errors import UserError, not_a_command

__all__ = ["load_reference", "REFERENCE_TABLES"]

REFERENCE_TABLES = ("shvit_variants", "shvit_table2", "shvit_table6_ablation",
                    "shvit_fig3_deit_head_similarity", "shvit_fig6_single_head_designs", "efficientvit_m")


def load_reference(name: str) -> pd.DataFrame:
    """A paper table as a DataFrame, e.g. `load_reference("shvit_table2")`."""
    if name not in REFERENCE_TABLES:
        raise UserError(f"unknown reference table {name!r}; known: {', '.join(REFERENCE_TABLES)}")
    with resources.files("analysis.core").joinpath("reference", f"{name}.csv").open() as f:
        return pd.read_csv(f)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
