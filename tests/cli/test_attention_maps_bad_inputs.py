"""`python -m analysis.attention_maps`: every bad input exits 2 with one line and writes nothing."""
import pytest

from analysis.attention_maps import main
from tests.helpers import assert_rejected

pytestmark = pytest.mark.usefixtures("one_thread")

M = ["--model", "deit_tiny_patch16_224", "--image", "{flat}/im1.png"]
OUT = ["--out", "{tmp}/maps"]
TABLE = [
    (["--model", "deit_tiny_patch16", "--image", "{flat}/im1.png"] + OUT, "unknown model 'deit_tiny_patch16'"),
    (M[:2] + ["--image", "{missing}"] + OUT, "does not exist"),
    (M[:2] + ["--image", "{empty}"] + OUT, "is not a file"),
    (M[:2] + ["--image", "{text_pth}"] + OUT, "cannot read"),
    (M[:2] + ["--image", "{broken}/b0.jpg"] + OUT, "cannot read"),
    (M + OUT + ["--weights", "{missing}"], "checkpoint not found"),
    (M + OUT + ["--weights", "{text_pth}"], "is not a readable checkpoint"),
    (M + OUT + ["--layer", "12"], "no attention layer '12'"),
    (M + OUT + ["--layer", "blocks.3.mlp"], "no attention layer 'blocks.3.mlp'"),
    (M + OUT + ["--query", "40,3"], "query (40, 3) is outside the image (32 x 32 px)"),
    (M + OUT + ["--query", "0,0"], "outside the centre crop the model sees"),
    (M + OUT + ["--query", "12"], "argument --query: expected X,Y in pixels of --image"),
    (M + OUT + ["--query", "a,b"], "argument --query: expected X,Y"),
    (M + OUT + ["--query", "5,5", "--rollout"], "not allowed with argument"),
    (M + OUT + ["--rollout", "--layer", "0"], "--layer does not apply to --rollout"),
    (["--model", "levit_128s", "--image", "{flat}/im1.png", "--rollout"] + OUT,
     "token grid changes between layers"),
    (M + OUT + ["--device", "gpu"], "argument --device: invalid choice"),
    (M + OUT + ["--threads", "0"], "argument --threads: must be between 1 and the"),
    (M + OUT + ["--seed", "-1"], "argument --seed: must be between 0 and 2**32 - 1"),
    (M + ["--out", "{missing}"], "does not exist"),
    (M + ["--out", "{empty}"], "is a directory; give a file name stem"),
    (M + ["--out", "{tmp}/maps.csv/"], "is a directory; give a file name stem"),
    (M, "the following arguments are required: --out"),
    (M[:2] + ["--image", "{flat}/im1.png", "--out", "{flat}/im1"], "exists and was not written by"),
    (M[:2] + ["--image", "{flat}/im1.png", "--out", "{flat}/im1", "--overwrite"], "would replace the input --image"),
]


@pytest.mark.parametrize("argv,needle", TABLE, ids=[n for _, n in TABLE])
def test_bad_input(argv, needle, bad, tmp_path, capsys):
    assert_rejected(main, [a.format(tmp=tmp_path, **bad) for a in argv], needle, capsys, tmp_path)
