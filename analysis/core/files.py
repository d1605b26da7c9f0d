"""Output files: checked before any compute, written atomically (a temporary file beside the
target, then a rename), so an interrupted run never leaves a half-written result.

Standard library only: the CLIs use it while parsing, before torch is imported.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import UserError

__all__ = ["check_writable", "atomic_path", "write_atomic", "write_json"]


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early (before any compute) if `path` cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UserError(f"output path {path} is a directory")
    if not parent.is_dir():
        raise UserError(f"output directory {parent} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError:
        raise UserError(f"output directory {parent} is not writable") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise UserError(f"output file {path} is not writable")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, else delete it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                               prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp)` on a temporary path and move the result onto `path`."""
    path = Path(path)
    with atomic_path(path) as tmp:
        write(tmp)
    return path


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str)
                                                         + "\n"))
