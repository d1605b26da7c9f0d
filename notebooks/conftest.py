"""Each notebook runs once per test session. Under nbval every notebook's kernel starts with its own
output folder (`$SHVIT_LAB_OUTPUT/notebooks/<stem>`), and a notebook whose every code cell passed is
offered to `test_results_reproduce` (fixture `nbval_runs`), which checks those outputs instead of
executing the notebook a second time. Without nbval (or after a failed cell) it executes the
notebook itself."""
import os
from pathlib import Path

import nbformat
import pytest

from analysis.core.paths import ENV_OUTPUT_ROOT

_BASE = os.environ.get(ENV_OUTPUT_ROOT)
_OUTCOMES: dict[Path, list[bool]] = {}   # notebook -> passed, per executed code cell


def _notebook(item) -> Path | None:
    path = Path(str(item.fspath))
    return path if path.suffix == ".ipynb" else None


def _folder(notebook: Path) -> Path:
    return Path(_BASE) / "notebooks" / notebook.stem


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_setup(item):
    """Before nbval starts a notebook's kernel (the setup of its first cell): point the kernel's
    outputs at the notebook's own folder."""
    notebook = _notebook(item)
    if notebook is None or not _BASE:
        yield
        return
    os.environ[ENV_OUTPUT_ROOT] = str(_folder(notebook))
    try:
        yield
    finally:
        os.environ[ENV_OUTPUT_ROOT] = _BASE


def pytest_runtest_logreport(report):
    path = Path(report.nodeid.partition("::")[0])
    if path.suffix == ".ipynb" and (report.when == "call" or report.failed):
        _OUTCOMES.setdefault(path.stem, []).append(report.passed)


@pytest.fixture(scope="session")
def nbval_runs() -> dict[str, Path]:
    """{notebook stem: output folder} of the notebooks nbval ran in full, every code cell passing."""
    if not _BASE:
        return {}
    runs = {}
    for stem, outcomes in _OUTCOMES.items():
        notebook = Path(__file__).parent / f"{stem}.ipynb"
        cells = sum(c.cell_type == "code" for c in nbformat.read(notebook, as_version=4).cells)
        if len(outcomes) == cells and all(outcomes) and _folder(notebook).is_dir():
            runs[stem] = _folder(notebook)
    return runs
