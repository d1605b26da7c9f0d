"""Lazy re-exports (PEP 562) declared by a stub, as scientific Python's `lazy_loader.attach_stub` does:
a package's `__init__.pyi` says what it exports (`from .attention import *` re-exports that module's
`__all__`; `from .cost.counter import CostAnalysis` one name), type checkers and editors read the same
stub, and a name is imported on first use, so `import analysis` and every CLI's `--help` stay instant."""
from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path
from typing import Callable

__all__ = ["attach_stub"]


def _literal_all(path: Path) -> list[str]:
    """The literal `__all__` of a module's source, read without importing it."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise ImportError(f"{path} has no literal __all__ to re-export")


def _stub_exports(stub: Path) -> dict[str, str]:
    """{name: relative module} from the relative imports of a package stub."""
    where: dict[str, str] = {}
    for node in ast.parse(stub.read_text()).body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if not (isinstance(node, ast.ImportFrom) and node.level == 1 and node.module):
            raise ImportError(f"{stub}: only `from .module import ...` lines may declare exports")
        if any(alias.asname not in (None, alias.name) for alias in node.names):
            raise ImportError(f"{stub}: a re-export keeps its name (`import X as X`)")
        names = [alias.name for alias in node.names]
        if names == ["*"]:
            source = stub.parent.joinpath(*node.module.split("."))
            module = source.with_suffix(".py")
            names = _literal_all(module if module.is_file() else source / "__init__.py")
        for name in names:
            if name in where:
                raise ImportError(f"{stub}: {name} is exported twice (.{where[name]} and .{node.module})")
            where[name] = f".{node.module}"
    return where


def attach_stub(package: str) -> tuple[Callable, Callable, list[str]]:
    """`(__getattr__, __dir__, __all__)` for `package` (being imported) from the `__init__.pyi` beside it."""
    where = _stub_exports(Path(sys.modules[package].__file__).with_suffix(".pyi"))

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__, sorted(where)
