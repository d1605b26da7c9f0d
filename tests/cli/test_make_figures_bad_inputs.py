"""`python -m analysis.make_figures`: every bad input exits 2 with one line and writes nothing."""
import pytest

from analysis.make_figures import main
from tests.helpers import assert_rejected

TABLE = [
    (["--only", "99"], "no notebooks to run in"),
    (["--only"], "--only needs at least one notebook name prefix"),
    (["--only", "03", "--set", "WEIGHTS=random", "--set", "WEIGHTS=pretrained"], "--set WEIGHTS is given more than once"),
    (["--notebooks", "{missing}"], "no notebooks to run in"),
    (["--notebooks", "{empty}"], "no notebooks to run in"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--only", "03", "--set", "NOT_A_PARAMETER=1"], "no notebook run here has the parameter NOT_A_PARAMETER"),
    (["--only", "00", "--set", "WEIGHTS=pretrained"], "no notebook run here has the parameter WEIGHTS"),
    (["--set", "3=x"], "argument --set: expected NAME=VALUE, got '3=x'"),
    (["--set", "WEIGHTS"], "argument --set: expected NAME=VALUE, got 'WEIGHTS'"),
]


@pytest.mark.parametrize("argv,needle", TABLE, ids=[" ".join(a) for a, _ in TABLE])
def test_bad_input(argv, needle, bad, tmp_path, capsys):
    assert_rejected(main, [a.format(tmp=tmp_path, **bad) for a in argv], needle, capsys, tmp_path)


@pytest.mark.parametrize("missing", ["nbclient", "nbformat", "ipykernel"])
def test_without_the_notebooks_extra_it_names_the_extra(missing, monkeypatch, tmp_path, capsys):
    """`pip install shvit-analysis-lab` has no notebook tools: the console script says which extra to add."""
    monkeypatch.setitem(__import__("sys").modules, missing, None)   # import fails as if not installed
    monkeypatch.delitem(__import__("sys").modules, "analysis.core.notebook", raising=False)
    assert_rejected(main, ["--only", "03"], "pip install 'shvit-analysis-lab[notebooks]'", capsys, tmp_path)
