"""Runs after the notebooks in the same `make test` session (pytest orders 'test_zz' after 'NN_*.ipynb').

The notebooks wrote into $SHVIT_LAB_OUTPUT; every CSV they wrote must equal the committed one byte
for byte (so `make figures` is idempotent: a second run changes no CSV), and every figure must exist
as PNG and PDF.
"""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def output_root():
    root = os.environ.get("SHVIT_LAB_OUTPUT")
    if not root or not any(Path(root, "results").glob("*.csv")):
        pytest.fail("run through `make test`: the notebooks must have written into $SHVIT_LAB_OUTPUT first")
    return Path(root)


def test_rerun_reproduces_committed_csvs(output_root):
    produced = sorted((output_root / "results").glob("*.csv"))
    assert produced
    for csv in produced:
        committed = REPO / "results" / csv.name
        assert committed.is_file(), f"{csv.name} is written by a notebook but not committed"
        assert csv.read_bytes() == committed.read_bytes(), f"{csv.name} differs from the committed table"


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_each_notebook_wrote_its_figure(output_root, notebook):
    figures = list((output_root / "figures").glob(f"{notebook}*.png"))
    assert figures, f"{notebook} wrote no figure"
    for png in figures:
        assert png.with_suffix(".pdf").is_file()
