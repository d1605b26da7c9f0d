"""Notebook plumbing: output folders, figure style, and one-line user errors in Jupyter.

Every notebook starts with `paths = notebook.setup(OUTPUT_ROOT)`.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple, Optional

from .errors import USER_ERRORS
from .plotting import use_style

__all__ = ["setup", "OutputPaths"]

ENV_OUTPUT_ROOT = "SHVIT_LAB_OUTPUT"


class OutputPaths(NamedTuple):
    figures: Path
    results: Path


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
    for p in paths:
        p.mkdir(parents=True, exist_ok=True)
    try:
        shell = get_ipython()  # type: ignore[name-defined]  # noqa: F821
    except NameError:
        shell = None
    if shell is not None:
        shell.set_custom_exc(USER_ERRORS, _one_line_user_errors)
    return paths
