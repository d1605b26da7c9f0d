"""Every notebook, re-run into a fresh folder, reproduces the committed `results/` within the
stated tolerance (`analysis.core.tables.table_differences`: floats to rtol 1e-4 / atol 1e-6, every other
column exactly) and writes each of its figures as PNG and PDF.

Each notebook is checked on the outputs of one complete, clean execution in this session: nbval's
when it ran every cell of it without a failure (`conftest.nbval_runs`), else one executed here.
"""
from pathlib import Path

import pandas as pd
import pytest

from analysis.core.tables import table_differences
from analysis.core.notebook import run_notebook

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="session")
def regenerated(tmp_path_factory, nbval_runs):
    """{notebook stem: output root}: every notebook executed into its own folder (by nbval, or here)."""
    roots = {}
    for nb in NOTEBOOKS:
        if nb.stem in nbval_runs:
            roots[nb.stem] = nbval_runs[nb.stem]
        else:
            roots[nb.stem] = tmp_path_factory.mktemp(nb.stem)
            run_notebook(nb, output_root=roots[nb.stem], save=False)
    return roots


@pytest.mark.slow
@pytest.mark.artifacts
@pytest.mark.parametrize("notebook", [nb.stem for nb in NOTEBOOKS])
def test_notebook_reproduces_committed_results(regenerated, notebook):
    produced = sorted((regenerated[notebook] / "results").glob("*.csv"))
    figures = sorted((regenerated[notebook] / "figures").glob("*.png"))
    assert figures, f"{notebook} wrote no figure"
    assert all(png.with_suffix(".pdf").is_file() for png in figures)
    for csv in produced:
        committed = REPO / "results" / csv.name
        assert committed.is_file(), f"{csv.name} is written by {notebook} but not committed"
        differences = table_differences(pd.read_csv(csv), pd.read_csv(committed))
        assert not differences, f"{csv.name}: " + "; ".join(differences)
