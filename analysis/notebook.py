"""Notebook plumbing: output folders, figure style, measurement caching, one-line user errors.

Every notebook starts with `paths = notebook.setup(OUTPUT_ROOT)`.

Timings are measurements of a machine, not functions of the code: a notebook stores each
measured table in `results/` and reuses it on the next run unless told to re-measure
(`REMEASURE = True` in its parameters cell). That is what makes `make figures` idempotent.
Deterministic tables (MACs, bytes, similarities of seeded models) are recomputed every run.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pandas as pd

from .errors import USER_ERRORS
from .io import write_csv
from .plotting import use_style

__all__ = ["setup", "OutputPaths", "REPO_ROOT"]

ENV_OUTPUT_ROOT = "SHVIT_LAB_OUTPUT"
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class OutputPaths:
    figures: Path
    results: Path

    def measured(self, name: str, measure: Callable[[], pd.DataFrame], remeasure: bool = False) -> pd.DataFrame:
        """The table `results/<name>`: measured now if asked or absent, else read back.

        When outputs go elsewhere (tests), the repository's committed measurement is reused too.
        """
        target = self.results / name
        if not remeasure:
            for candidate in (target, REPO_ROOT / "results" / name):
                if candidate.is_file():
                    return pd.read_csv(candidate)
        table = measure()
        write_csv(table, target)
        return table


def _default_root() -> Path:
    if os.environ.get(ENV_OUTPUT_ROOT):
        return Path(os.environ[ENV_OUTPUT_ROOT])
    cwd = Path.cwd()
    return cwd.parent if cwd.name == "notebooks" else cwd


def _one_line_user_errors(shell, etype, value, tb, tb_offset=None):
    print(f"error: {value}", file=sys.stderr)
    return None


def setup(output_root: Optional[str | os.PathLike] = None) -> OutputPaths:
    """Apply the shared figure style, make `figures/` and `results/`, and show user errors as one line.

    `output_root` None means the repository root (or $SHVIT_LAB_OUTPUT, which the tests set so a
    test run never rewrites the committed figures).
    """
    use_style()
    root = Path(output_root) if output_root else _default_root()
    paths = OutputPaths(root / "figures", root / "results")
    paths.figures.mkdir(parents=True, exist_ok=True)
    paths.results.mkdir(parents=True, exist_ok=True)
    try:
        shell = get_ipython()  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        shell = None
    if shell is not None:
        shell.set_custom_exc(USER_ERRORS, _one_line_user_errors)
    return paths
