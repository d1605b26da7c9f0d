"""`python -m analysis.head_ablation`: every bad input exits 2 with one line and writes nothing."""
import pytest

from analysis.head_ablation import main
from tests.helpers import assert_rejected

D = ["--model", "deit_tiny_patch16_224", "--data", "{digits}", "--num-images", "2", "--out", "{tmp}/a.csv"]
TABLE = [
    (["--model", "deit_tiny_patch16_224", "--out", "{tmp}/a.csv"], "the following arguments are required: --data"),
    (D + ["--model", "nope"], "unknown model 'nope'"),
    (D + ["--data", "{missing}"], "does not exist"),
    (D + ["--data", "{flat}"], "has no class subfolders"),
    (D + ["--data", "{broken}"], "no readable image"),
    (D + ["--num-images", "0"], "argument --num-images: must be at least 1"),
    (D + ["--batch-size", "-1"], "argument --batch-size: must be at least 1"),
    (D + ["--modes", "remove2"], "--modes must be a comma-separated subset of remove1,leave1"),
    (D + ["--modes", ""], "--modes must be a comma-separated subset"),
    (D + ["--layer", "blocks.99.attn"], "no attention layer blocks.99.attn"),
    (D + ["--weights", "{text_pth}"], "is not a readable checkpoint"),
    (D + ["--seed", "-5"], "argument --seed: must be between 0 and 2**32 - 1"),
    (D + ["--out", "{missing}"], "does not exist"),
    (D + ["--model", "shvit_s1"], "no multi-head attention layer to ablate"),
    (D[:-1] + ["{digits}/a.csv"], "would write inside the input folder --data"),
    (D + ["--modes", "remove1,remove1"], "--modes must be a comma-separated subset of remove1,leave1 (each once)"),
]


@pytest.fixture
def digits(tmp_path):
    from analysis.lab.datasets import DigitsConfig, export_image_folder
    export_image_folder(tmp_path / "digits", DigitsConfig(image_size=32, num_train=10, num_val=10,
                                                          digit_size=(16, 24), seed=1))
    return str(tmp_path / "digits" / "val")


@pytest.mark.parametrize("argv,needle", TABLE, ids=[" ".join(a[-2:]) for a, _ in TABLE])
def test_bad_input(argv, needle, bad, digits, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, digits=digits, **bad) for a in argv]
    assert_rejected(main, argv, needle, capsys, tmp_path)
