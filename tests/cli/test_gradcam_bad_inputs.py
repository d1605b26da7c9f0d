"""`python -m analysis.gradcam`: every bad input exits 2 with one line and writes nothing."""
import pytest

from analysis.gradcam import main
from tests.cli.own_model import own_model_rows
from tests.helpers import assert_rejected

pytestmark = pytest.mark.usefixtures("one_thread")

M = ["--model", "shvit_s1", "--image", "{flat}/im1.png"]
OUT = ["--out", "{tmp}/cam"]
TABLE = [
    (["--model", "shvit_s9", "--image", "{flat}/im1.png"] + OUT, "unknown model 'shvit_s9'"),
    (M[:2] + ["--image", "{missing}"] + OUT, "does not exist"),
    (M[:2] + ["--image", "{empty}"] + OUT, "is not a file"),
    (M[:2] + ["--image", "{random_pth}"] + OUT, "cannot read"),
    (M + OUT + ["--weights", "{random_safetensors}"], "is not a readable checkpoint"),
    (M + OUT + ["--target", "1000"], "--target 1000 is out of range: shvit_s1 has 1000 classes (0..999)"),
    (M + OUT + ["--target", "-1"], "argument --target: must be at least 0"),
    (M + OUT + ["--target", "x"], "argument --target: invalid int value"),
    (M + OUT + ["--method", "cam"], "argument --method: invalid choice"),
    (["--model", "deit_tiny_patch16_224", "--image", "{flat}/im1.png", "--method", "rollout", "--target", "3"]
     + OUT, "--target does not apply to --method rollout: attention rollout is not class-specific"),
    (M + OUT + ["--method", "rollout"], "SHViT's token grid changes between layers"),
    (["--model", "efficientvit_m0", "--image", "{flat}/im1.png", "--method", "rollout"] + OUT,
     "EfficientVitMsra attends in windows"),
    (M + OUT + ["--threads", "0"], "argument --threads: must be between 1 and the"),
    (M + ["--out", "{missing}"], "does not exist"),
    (M + ["--out", "{empty}/"], "is a directory; give a file name stem"),
    (M[:2] + ["--image", "{flat}/im1.png", "--out", "{flat}/im1.png"], "exists and was not written by"),
    (M[:2] + ["--image", "{flat}/im1.png", "--out", "{flat}/im1.png", "--overwrite"], "would replace the input --image"),
    (M[:2] + ["--image", "{flat}/im1.png", "--out", "{flat}/im1", "--overwrite"], "would replace the input --image"),
]
TABLE += own_model_rows(M[2:] + OUT)   # issue 28: your own model that cannot be loaded or built


@pytest.mark.parametrize("argv,needle", TABLE, ids=[n for _, n in TABLE])
def test_bad_input(argv, needle, bad, tmp_path, capsys):
    assert_rejected(main, [a.format(tmp=tmp_path, **bad) for a in argv], needle, capsys, tmp_path)
