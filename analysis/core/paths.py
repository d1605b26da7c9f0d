"""Where results go, resolved in one place: an explicit argument, else an environment variable,
else the current project folder. Never the location of the installed package.

- the project (`SHVIT_LAB_ROOT`, default: the current directory, or its parent when run from
  `notebooks/`): holds `notebooks/`, the committed `results/` (and the micro suite's trained
  checkpoints) that later runs reuse;
- the outputs (`SHVIT_LAB_OUTPUT`, default: the project): where `figures/` and `results/` are
  written. The tests point it at a temporary folder so a test run never rewrites committed files.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from .errors import not_a_command

__all__ = ["ENV_PROJECT_ROOT", "ENV_OUTPUT_ROOT", "project_root", "output_root", "micro_root", "meso_root"]

ENV_PROJECT_ROOT = "SHVIT_LAB_ROOT"
ENV_OUTPUT_ROOT = "SHVIT_LAB_OUTPUT"

PathLike = str | os.PathLike


def project_root(root: Optional[PathLike] = None) -> Path:
    """`root`, else $SHVIT_LAB_ROOT, else the current directory (its parent inside `notebooks/`)."""
    if root:
        return Path(root)
    if os.environ.get(ENV_PROJECT_ROOT):
        return Path(os.environ[ENV_PROJECT_ROOT])
    cwd = Path.cwd()
    return cwd.parent if cwd.name == "notebooks" else cwd


def output_root(root: Optional[PathLike] = None) -> Path:
    """`root`, else $SHVIT_LAB_OUTPUT, else the project: the folder that gets `figures/` and `results/`."""
    if root:
        return Path(root)
    if os.environ.get(ENV_OUTPUT_ROOT):
        return Path(os.environ[ENV_OUTPUT_ROOT])
    return project_root()


def micro_root(root: Optional[PathLike] = None) -> Path:
    """The micro suite's cache and tables: `root`, else `<project>/results/micro`."""
    return Path(root) if root else project_root() / "results" / "micro"


def meso_root(root: Optional[PathLike] = None) -> Path:
    """The meso suite's cache and tables: `root`, else `<project>/results/meso`."""
    return Path(root) if root else project_root() / "results" / "meso"


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
