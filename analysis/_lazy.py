"""Lazy re-exports (PEP 562): a package lists its public names and the module that defines each;
a name is imported on first use, so `import analysis` and every CLI's `--help` stay instant."""
from __future__ import annotations

import importlib
import sys
from typing import Callable, Iterable, Mapping

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, Iterable[str]]) -> tuple[Callable, Callable]:
    """`(__getattr__, __dir__)` for `package`, exporting the names `exports[module]` of each module
    (relative to the package, e.g. `{".heads.attention": ("AttentionCapture", ...)}`)."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
