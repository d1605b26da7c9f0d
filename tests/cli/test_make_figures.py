"""`python -m analysis.make_figures` at full scale, offline: a local checkpoint and a small generated image
folder stand in for pretrained weights and ImageNet-val; the outputs go to the user's folder."""
import numpy as np
import pandas as pd
import pytest
import timm
import torch
from PIL import Image

from analysis.core.paths import project_root
from analysis.make_figures import main, parameter


def test_parameters_are_python_literals_or_strings(monkeypatch):
    monkeypatch.setenv("HOME", "/home/me")
    assert parameter("NUM_IMAGES=128") == ("NUM_IMAGES", 128)
    assert parameter("MODELS=['a', 'b']") == ("MODELS", ["a", "b"])
    assert parameter("DATA_DIR=None") == ("DATA_DIR", None)
    assert parameter("WEIGHTS=pretrained") == ("WEIGHTS", "pretrained")
    assert parameter("DATA_DIR=~/imagenet/val") == ("DATA_DIR", "/home/me/imagenet/val")


@pytest.mark.slow
def test_notebook_03_with_a_local_checkpoint_and_image_folder_writes_to_the_users_folder(tmp_path, capsys):
    ckpt = tmp_path / "deit.pth"
    torch.manual_seed(3)
    torch.save(timm.create_model("deit_tiny_patch16_224").state_dict(), ckpt)
    data = tmp_path / "val"
    rng = np.random.default_rng(0)
    for c in ("n01", "n02"):
        (data / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(data / c / f"{i}.png")
    committed = (project_root() / "results" / "03_deit_head_similarity_full.csv").read_bytes()
    out = tmp_path / "runs"
    assert main(["--only", "03", "--set", f"WEIGHTS={ckpt}", "--set", f"DATA_DIR={data}", "--set", "NUM_IMAGES=4",
                 "--set", "BATCH_SIZE=2", "--output", str(out)]) == 0
    full = pd.read_csv(out / "results" / "03_deit_head_similarity_full.csv")
    assert set(full["num_images"]) == {4} and set(full["data"]) == {str(data)}
    assert full["weights"].str.contains("deit.pth").all() and len(full) == 12
    assert (out / "figures" / "03_head_redundancy_deit.png").is_file()
    assert "Injected parameters" in (out / "notebooks" / "03_head_redundancy_deit.ipynb").read_text()
    assert (project_root() / "results" / "03_deit_head_similarity_full.csv").read_bytes() == committed
    assert "figures and results in" in capsys.readouterr().err
