"""`python -m analysis.make_figures` at full scale, offline: a local checkpoint and a small generated image
folder stand in for pretrained weights and ImageNet-val; the outputs go to the user's folder."""
import shutil

import nbformat
import numpy as np
import pandas as pd
import pytest
import timm
import torch
from PIL import Image

from analysis.core.paths import ENV_OUTPUT_ROOT, project_root
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


def _files(*roots) -> dict:
    return {p: p.read_bytes() for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_make_figures_twice_on_an_unchanged_checkout_changes_no_byte(tmp_path, monkeypatch):
    """`make figures` is idempotent: notebook 00 run in place, as `make figures` runs it, then again from what the
    first run saved, gives the same notebook, figure (PNG and PDF) and table bytes; its cells as committed."""
    folder, out = tmp_path / "notebooks", tmp_path / "out"
    folder.mkdir()
    committed = project_root() / "notebooks" / "00_shvit_variants.ipynb"
    shutil.copy(committed, folder)
    monkeypatch.setenv(ENV_OUTPUT_ROOT, str(out))
    runs = []
    for _ in range(2):
        assert main(["--only", "00", "--notebooks", str(folder)]) == 0
        runs.append(_files(folder, out))
    names = sorted(p.relative_to(tmp_path).as_posix() for p in runs[0])
    assert names == ["notebooks/00_shvit_variants.ipynb", "out/figures/00_shvit_variants.pdf",
                     "out/figures/00_shvit_variants.png", "out/results/00_shvit_variants.csv"]
    assert [p for p in runs[0] if runs[0][p] != runs[1][p]] == []
    saved, source = (nbformat.read(p, as_version=4) for p in (folder / committed.name, committed))
    assert [c.source for c in saved.cells] == [c.source for c in source.cells] and saved.metadata == source.metadata
    assert not any("execution" in c.metadata for c in saved.cells)
