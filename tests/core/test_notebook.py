"""core.notebook.run_notebook: a notebook is rewritten atomically, and only when every cell ran."""
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from analysis.core.notebook import run_notebook


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)
    return path.read_bytes()


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
