"""analysis.io: outputs checked before compute, written atomically, byte-identical when repeated."""
import pandas as pd
import pytest

from analysis.core.errors import UserError
from analysis.core.files import atomic_path, check_writable
from analysis.core.tables import table_differences, write_csv


def test_check_writable(tmp_path):
    assert check_writable(tmp_path / "out.csv") == tmp_path / "out.csv"
    with pytest.raises(UserError, match="does not exist"):
        check_writable(tmp_path / "nope" / "out.csv")
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(UserError, match="does not exist"):
        check_writable(tmp_path / "a_file" / "out.csv")
    with pytest.raises(UserError, match="is a directory"):
        check_writable(tmp_path)


def test_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("previous\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_csv_bytes_are_reproducible(tmp_path):
    df = pd.DataFrame({"model": ["a", "b"], "value": [1 / 3, 2.0]})
    write_csv(df, tmp_path / "x.csv")
    write_csv(df.copy(), tmp_path / "y.csv")
    assert (tmp_path / "x.csv").read_bytes() == (tmp_path / "y.csv").read_bytes()
    assert pd.read_csv(tmp_path / "x.csv").value.tolist() == pytest.approx([1 / 3, 2.0], rel=1e-5)


def test_table_differences_tolerates_float_kernels_not_changed_keys():
    ref = pd.DataFrame({"model": ["a", "b"], "layer": [0, 1], "macs": [10, 20], "value": [0.993989, float("nan")]})
    assert table_differences(ref.assign(value=[0.993988, float("nan")]), ref) == []  # a 6th-decimal kernel change
    assert table_differences(ref.assign(value=[0.99, float("nan")]), ref) == ["value row 0: 0.99 vs 0.993989"]
    assert table_differences(ref.assign(value=[0.993989, 0.5]), ref) == ["value row 1: 0.5 vs nan"]
    assert table_differences(ref.assign(model=["a", "c"]), ref) == ["model row 1: 'c' vs 'b'"]
    assert table_differences(ref.assign(macs=[10, 21]), ref) == ["macs row 1: 21 vs 20"]  # counts are exact
    assert table_differences(ref.iloc[:1], ref) == ["1 rows vs 2"]
    assert table_differences(ref[["model", "layer", "value", "macs"]], ref)[0].startswith("columns differ")


def test_table_differences_survives_a_csv_round_trip(tmp_path):
    ref = pd.DataFrame({"key": ["x", "y"], "value": [1 / 3, 2e-7]})
    write_csv(ref, tmp_path / "t.csv")
    assert table_differences(pd.read_csv(tmp_path / "t.csv"), ref) == []
