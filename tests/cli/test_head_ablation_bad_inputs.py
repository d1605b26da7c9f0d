"""`python -m analysis.head_ablation`: every bad input exits 2 with one line and writes nothing."""
import pytest

from analysis.head_ablation import main
from tests.cli.own_model import own_model_rows
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
    (D + ["--layer", "blocks.0.attn", "--layer", "blocks.0.attn"], "--layer blocks.0.attn is given more than once"),
    (D + ["--layer", "blocks.1.attn", "--layer", "blocks.0.attn", "--layer", "blocks.1.attn"],
     "--layer blocks.1.attn is given more than once"),
]
TABLE += own_model_rows(D[2:])   # issue 28: your own model that cannot be loaded or built


@pytest.fixture
def digits(tmp_path):
    from analysis.lab.datasets import DigitsConfig, export_image_folder
    export_image_folder(tmp_path / "digits", DigitsConfig(resolution=32, num_train=10, num_val=10,
                                                          digit_size=(16, 24), seed=1))
    return str(tmp_path / "digits" / "val")


@pytest.mark.parametrize("argv,needle", TABLE, ids=[" ".join(a[-2:]) for a, _ in TABLE])
def test_bad_input(argv, needle, bad, digits, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, digits=digits, **bad) for a in argv]
    assert_rejected(main, argv, needle, capsys, tmp_path)


def test_a_partial_run_of_other_weights_is_not_resumed(digits, tmp_path, capsys, monkeypatch):
    """The partial file of an interrupted run names the checkpoint's content (sha256), not just its path:
    a checkpoint replaced under the same name is refused instead of mixing two models in one table."""
    import json

    import torch

    from analysis.core.errors import UserError
    from analysis.core.models import create_model
    from analysis.heads import ablation

    ckpt = tmp_path / "w.pth"
    torch.save(create_model("deit_tiny_patch16_224", "random", seed=1).state_dict(), ckpt)
    argv = ["--model", "deit_tiny_patch16_224", "--weights", str(ckpt), "--data", digits, "--num-images", "2",
            "--modes", "remove1", "--layer", "blocks.0.attn", "--out", str(tmp_path / "a.csv")]
    seen = {}

    def interrupted(*args, identity, **kwargs):   # the run stops where an interrupted one would have
        seen.update(identity, modes=list(kwargs["modes"]), layers=list(kwargs["layers"]))
        raise UserError("stopped")
    monkeypatch.setattr(ablation, "head_ablation", interrupted)
    with pytest.raises(SystemExit):
        main(argv)
    monkeypatch.undo()
    assert len(seen["weights_sha256"]) == 64
    (tmp_path / "a.csv.partial.json").write_text(json.dumps({"identity": seen, "rows": []}))
    torch.save(create_model("deit_tiny_patch16_224", "random", seed=2).state_dict(), ckpt)   # same name, new weights
    capsys.readouterr()
    assert_rejected(main, argv, "holds a partial run of another ablation (model, weights, data", capsys, tmp_path)
