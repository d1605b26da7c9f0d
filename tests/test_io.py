"""analysis.io: outputs checked before compute, written atomically, byte-identical when repeated."""
import pandas as pd
import pytest

from analysis.errors import UserError
from analysis.io import atomic_path, check_writable, write_csv


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
