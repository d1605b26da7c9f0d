"""`python -m analysis.ablations`: every bad input exits 2 with one line and writes nothing."""
import pytest

from analysis.ablations import main
from tests.helpers import assert_rejected

R = ["--root", "{tmp}/micro"]
TABLE = [
    (R, "nothing to do: pass --all, --train KEY..., --table NAME..., --seeds, --meso or --list"),
    (R + ["--train", "stem5"], "unknown micro recipe 'stem5'"),
    (R + ["--table", "nope"], "argument --table: invalid choice: 'nope'"),
    (R + ["--threads", "0", "--list"], "argument --threads: must be between 1 and the"),
    (R + ["--threads", "-2", "--list"], "argument --threads: must be between 1 and the"),
    (["--root", "{a_file}/micro", "--train", "stem4"], "cannot create results folder"),
    (["--root", "{a_file}", "--train", "stem4"], "cannot create results folder"),
]


@pytest.mark.parametrize("argv,needle", TABLE, ids=[" ".join(a[-2:]) for a, _ in TABLE])
def test_bad_input(argv, needle, bad, tmp_path, capsys):
    assert_rejected(main, [a.format(tmp=tmp_path, **bad) for a in argv], needle, capsys, tmp_path)
