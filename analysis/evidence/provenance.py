"""Which commit registered a scorecard row and which commit measured it, read from git.

A row is *prospective* when its registration commit is an ancestor of, and older than, the commit
that committed the tables it reads (its measurement); otherwise, or when its registry entry says
"post hoc", it is *post hoc*. Outside a git checkout (an installed package) nothing can be
verified: the measurement reads "unknown" and no row counts as prospective.
"""
from __future__ import annotations

import subprocess
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Iterable, Optional

from ..core.errors import not_a_command

__all__ = ["POST_HOC", "UNCOMMITTED", "UNKNOWN", "git", "measured_commit", "is_prospective", "file_at"]

POST_HOC = "post hoc"
UNCOMMITTED = "uncommitted"
UNKNOWN = "unknown"


def _package() -> Path:
    return Path(str(files("analysis")))


def git(*args: str, cwd: Optional[Path] = None) -> Optional[str]:
    """`git args` in `cwd` (default: this package's checkout); None when git or the repository is missing."""
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True,
                              cwd=cwd or _package())
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@lru_cache(maxsize=None)
def _top(path: Path) -> Optional[Path]:
    top = git("rev-parse", "--show-toplevel", cwd=path if path.is_dir() else path.parent)
    return Path(top) if top else None


def measured_commit(paths: Iterable[Path]) -> str:
    """The newest commit that committed any of `paths` (the tables a row reads), "uncommitted" when one
    of them differs from it or is untracked, "unknown" outside git."""
    paths = [Path(p).resolve() for p in paths]
    if not paths:
        return UNKNOWN
    top = _top(paths[0])
    if top is None or any(_top(p) != top for p in paths):
        return UNKNOWN
    rel = [str(p.relative_to(top)) for p in paths]
    if git("status", "--porcelain", "--", *rel, cwd=top):
        return UNCOMMITTED
    return git("log", "-1", "--format=%H", "--", *rel, cwd=top) or UNCOMMITTED


def _time(commit: str, top: Path) -> Optional[int]:
    t = git("show", "-s", "--format=%ct", commit, cwd=top)
    return int(t) if t else None


def is_prospective(registered: str, measured: str, cwd: Optional[Path] = None) -> bool:
    """Whether `registered` is a commit that is an ancestor of, and strictly older than, `measured`."""
    if registered == POST_HOC or measured in (UNCOMMITTED, UNKNOWN):
        return False
    top = _top(Path(cwd or _package()))
    if top is None or git("merge-base", "--is-ancestor", registered, measured, cwd=top) is None:
        return False
    t0, t1 = _time(registered, top), _time(measured, top)
    return t0 is not None and t1 is not None and t0 < t1


def file_at(commit: str, path: Path) -> Optional[str]:
    """The text of `path` (in this checkout) at `commit`, or None."""
    path = Path(path).resolve()
    top = _top(path)
    return None if top is None else git("show", f"{commit}:{path.relative_to(top)}", cwd=top)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
