"""`python -m analysis.attention_maps`: every bad input exits 2 with one line and writes nothing."""
import pickle
import warnings

import pytest
import timm
import torch

from analysis.attention_maps import main
from tests.cli.own_model import own_model_rows
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
    (M + OUT + ["--layer", "13"], "no attention layer '13'"),
    (M + OUT + ["--layer", "0"], "no attention layer '0'"),
    (M + OUT + ["--layer", "blocks.3.mlp"], "no attention layer 'blocks.3.mlp'"),
    (M + OUT + ["--query", "40,3"], "query (40, 3) is outside the image (32 x 32 px)"),
    (M + OUT + ["--query", "0,0"], "outside the centre crop the model sees"),
    (M + OUT + ["--query", "12"], "argument --query: expected X,Y in pixels of --image"),
    (M + OUT + ["--query", "a,b"], "argument --query: expected X,Y"),
    (M + OUT + ["--query", "5,5", "--rollout"], "not allowed with argument"),
    (M + OUT + ["--rollout", "--layer", "1"], "--layer does not apply to --rollout"),
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
    # issue 26: torch's warnings while reading a checkpoint, notes printed before an error
    (M + OUT + ["--weights", "{ck}/sparse.pth"], "holds tensors that are not plain dense ones: extra (sparse_coo)"),
    (M + OUT + ["--weights", "{ck}/protocol4.pth"], "is not a readable checkpoint"),
    (M + OUT + ["--weights", "{ck}/f16.pth", "--query", "5000,5"], "query (5000, 5) is outside the image"),
    (M + OUT + ["--weights", "{ck}/grid112_no_head_bias.pth", "--resample-pos-embed"], "1 missing keys: head.bias"),
]
TABLE += own_model_rows(M[2:] + OUT)   # issue 28: your own model that cannot be loaded or built


@pytest.fixture(scope="module")
def ck(tmp_path_factory):
    """Checkpoints of deit_tiny_patch16_224 that torch remarks on, or that fit only after a note."""
    root = tmp_path_factory.mktemp("ck")
    sd = timm.create_model("deit_tiny_patch16_224").state_dict()
    torch.save({**sd, "extra": torch.eye(3).to_sparse()}, root / "sparse.pth")
    with open(root / "protocol4.pth", "wb") as f:
        pickle.dump({"a": 1}, f, protocol=4)
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, root / "f16.pth")
    other = timm.create_model("deit_tiny_patch16_224", img_size=112).state_dict()
    other.pop("head.bias")
    torch.save(other, root / "grid112_no_head_bias.pth")
    return str(root)


@pytest.mark.parametrize("argv,needle", TABLE, ids=[n for _, n in TABLE])
def test_bad_input(argv, needle, bad, ck, tmp_path, capsys):
    assert_rejected(main, [a.format(tmp=tmp_path, ck=ck, **bad) for a in argv], needle, capsys, tmp_path)


@pytest.mark.parametrize("name,needle", [("sparse.pth", "not plain dense ones"),
                                         ("protocol4.pth", "is not a readable checkpoint")])
def test_torchs_remarks_on_a_checkpoint_stay_off_stderr(name, needle, bad, ck, tmp_path, capsys):
    """torch warns while it reads these (sparse tensors validated, pickle protocol 4): a UserWarning and its
    source line on stderr above the error (issue 26). pytest records warnings, so they are looked for here."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_rejected(main, M[:2] + ["--image", f"{bad['flat']}/im1.png", "--weights", f"{ck}/{name}",
                                       "--out", str(tmp_path / "maps")], needle, capsys, tmp_path)
    assert [str(w.message) for w in caught if "/torch/" in w.filename] == []


def test_a_note_is_printed_once_the_run_goes_ahead(bad, ck, tmp_path, capsys):
    """The float16 checkpoint's note is held back until the input is checked, not lost (issue 26)."""
    assert main(M[:2] + ["--image", f"{bad['flat']}/im1.png", "--weights", f"{ck}/f16.pth",
                         "--out", str(tmp_path / "maps")]) == 0
    err = capsys.readouterr().err
    assert "weights converted to the model's precision (float16 -> float32)" in err and "error" not in err
