"""`python -m analysis.breakdown`: every bad input exits 2 with one line and writes nothing."""
import pytest

from analysis.breakdown import main
from tests.cli.own_model import own_model_rows
from tests.helpers import assert_rejected

M = ["--model", "shvit_s1", "--batch-size", "1", "--repeats", "1"]
TABLE = [
    (["--model", "shvit_s9"], "unknown model 'shvit_s9'"),
    (M + ["--threads", "0"], "argument --threads: must be between 1 and the"),
    (M + ["--threads", "-2"], "argument --threads: must be between 1 and the"),
    (M + ["--batch-size", "0"], "argument --batch-size: must be at least 1"),
    (M + ["--repeats", "0"], "argument --repeats: must be at least 1"),
    (M + ["--resolution", "0"], "argument --resolution: must be at least 16 (px), got 0"),
    (M + ["--resolution", "8"], "argument --resolution: must be at least 16 (px), got 8"),
    (M + ["--seed", "-1"], "argument --seed: must be between 0 and 2**32 - 1"),
    (M + ["--device", "gpu"], "argument --device: invalid choice"),
    (M + ["--csv", "{missing}"], "does not exist"),
    (M + ["--csv", "{empty}"], "is a directory"),
    (M + ["--figure", "{missing}"], "does not exist"),
    (M + ["--figure", "{tmp}/fig/"], "is a directory; give a file name stem"),   # issue 26: not fig/.png
    (M + ["--figure", "{empty}"], "is a directory; give a file name stem"),
    (M + ["--csv", "{tmp}/nd/"], "ends with '/'"),
    (M + ["--csv", "{tmp}/b.png", "--figure", "{tmp}/b"], "would both write"),
    (M + ["--csv", "{tmp}/b.pdf", "--figure", "{tmp}/b"], "would both write"),
]
TABLE += own_model_rows(M[2:], weights=False)   # issue 28: your own model that cannot be loaded or built


@pytest.mark.parametrize("argv,needle", TABLE, ids=[" ".join(a[-2:]) for a, _ in TABLE])
def test_bad_input(argv, needle, bad, tmp_path, capsys):
    assert_rejected(main, [a.format(tmp=tmp_path, **bad) for a in argv], needle, capsys, tmp_path)
