"""core.notebook.run_notebook: a notebook is rewritten atomically, and only when every cell ran."""
import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient.exceptions import CellExecutionError

from analysis.core.notebook import OutputPaths, run_notebook
from analysis.core.paths import ENV_PROJECT_ROOT


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)
    return path.read_bytes()


def test_a_measurement_is_derived_from_the_same_floats_now_and_when_read_back(tmp_path, monkeypatch):
    """`OutputPaths.measured` keeps every digit: the table a run derives from is the one later runs read (at
    `FLOAT_FORMAT`'s 6 digits, a table recomputed from it drifted in the 6th digit), and a rewrite is the same bytes."""
    monkeypatch.setenv(ENV_PROJECT_ROOT, str(tmp_path / "project"))   # no committed measurement to reuse
    paths = OutputPaths(tmp_path / "figures", tmp_path / "results")
    paths.results.mkdir()
    ms = np.random.default_rng(0).lognormal(0, 3, 500) / 3
    table = pd.DataFrame({"model": [f"m{i % 7}" for i in range(500)], "repeats": 10, "ms": ms})
    now = paths.measured("t.csv", lambda: table)
    assert (now["ms"].to_numpy() == ms).all()
    later = paths.measured("t.csv", lambda: pytest.fail("measured again instead of read back"))
    pd.testing.assert_frame_equal(later, now)
    written = (paths.results / "t.csv").read_bytes()
    assert paths.measured("t.csv", lambda: later, remeasure=True).equals(now)
    assert (paths.results / "t.csv").read_bytes() == written


@pytest.mark.slow
def test_a_failing_notebook_is_left_as_it_was_and_a_good_one_is_saved(tmp_path):
    bad = tmp_path / "bad.ipynb"
    original = _notebook(bad, "print('first cell ran')", "raise ValueError('second cell fails')")
    with pytest.raises(CellExecutionError):
        run_notebook(bad, timeout=120, output_root=tmp_path)
    assert bad.read_bytes() == original and sorted(p.name for p in tmp_path.iterdir()) == ["bad.ipynb"]
    good = tmp_path / "good.ipynb"
    _notebook(good, "print(6 * 7)")
    run_notebook(good, timeout=120, output_root=tmp_path)
    outputs = nbformat.read(good, as_version=4).cells[0].outputs
    assert outputs[0]["text"] == "42\n"


@pytest.mark.slow
def test_a_user_error_in_a_notebook_is_its_one_line_in_the_exception(tmp_path):
    """What papermill and nbclient print for a failed notebook carries the user error's line, not a traceback."""
    nb = tmp_path / "user_error.ipynb"
    _notebook(nb, "from analysis.core import notebook\npaths = notebook.setup()",
              "from analysis.core.errors import UserError\nraise UserError('no images in /data/val')")
    with pytest.raises(CellExecutionError) as info:
        run_notebook(nb, timeout=120, output_root=tmp_path)
    assert (info.value.ename, info.value.evalue) == ("UserError", "no images in /data/val")
    assert "UserError: no images in /data/val" in str(info.value) and "Traceback" not in str(info.value)


@pytest.mark.slow
def test_parameters_given_for_one_run_are_not_saved_into_the_notebook(tmp_path):
    """`make_figures --set REMEASURE=True` without --output: the executed notebook is saved back without the
    injected cell (its outputs from this run, its parameters its own); saved elsewhere, the cell is kept."""
    path = tmp_path / "p.ipynb"
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("REMEASURE = False", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("print(REMEASURE)")])
    nbformat.write(nb, path)
    run_notebook(path, timeout=120, output_root=tmp_path, parameters={"REMEASURE": True}, save_to=tmp_path / "o.ipynb")
    kept = nbformat.read(tmp_path / "o.ipynb", as_version=4).cells
    assert [c.metadata.get("tags") for c in kept] == [["parameters"], ["injected-parameters"], None]
    run_notebook(path, timeout=120, output_root=tmp_path, parameters={"REMEASURE": True})
    saved = nbformat.read(path, as_version=4).cells
    assert len(saved) == 2 and saved[0].source == "REMEASURE = False"
    assert saved[1].outputs[0]["text"] == "True\n"
    assert [c.execution_count for c in saved] == [1, 2]   # as a plain run numbers them: the next one changes nothing


@pytest.mark.slow
def test_a_saved_notebook_keeps_no_run_dependent_metadata(tmp_path):
    """No execution timestamps (a committed notebook's old ones are dropped too) and no kernel-reported
    `language_info` beyond the notebook's own: running it again writes the same bytes."""
    path = tmp_path / "n.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "print(6 * 7)", metadata={"execution": {"iopub.status.idle": "2026-11-25T09:26:06.170530Z"}, "tags": ["t"]})])
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nbformat.write(nb, path)
    run_notebook(path, timeout=120, output_root=tmp_path)
    first = path.read_bytes()
    run_notebook(path, timeout=120, output_root=tmp_path)
    assert path.read_bytes() == first
    saved = nbformat.read(path, as_version=4)
    assert saved.metadata == nb.metadata and "language_info" not in saved.metadata
    assert saved.cells[0].metadata == {"tags": ["t"]} and saved.cells[0].outputs[0]["text"] == "42\n"
    assert saved.cells[0].execution_count == 1
