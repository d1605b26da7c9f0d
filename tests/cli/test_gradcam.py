"""`python -m analysis.gradcam` end to end on a generated image, for every family: the CSV holds the
library's map at the input resolution, the figure and table it announces are written."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from analysis.core.images import load_image, view_image
from analysis.core.models import create_model
from analysis.gradcam import main
from analysis.lab.gradcam import CAM_METHODS

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def image(tmp_path):
    a = np.full((200, 260, 3), 30, np.uint8)
    a[50:150, 80:180] = (40, 200, 220)
    Image.fromarray(a).save(tmp_path / "im.png")
    return tmp_path / "im.png"


def _run(argv, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "cam")]) == 0
    out, err = capsys.readouterr()
    files = [tmp_path / f"cam.{ext}" for ext in ("png", "pdf", "csv")]
    assert all(f.stat().st_size > 0 and f"wrote {f}" in err for f in files), err
    return pd.read_csv(files[2]), out


def _library_map(name, method, image, target):
    model = create_model(name, "random")
    x = view_image(model, load_image(image)).input
    return CAM_METHODS[method](model).attribute(x, target=None if target is None else torch.tensor([target]))[0]


@pytest.mark.parametrize("name,method,target", [
    ("deit_tiny_patch16_224", "gradcam", 3), ("deit_tiny_patch16_224", "gradcam++", 3),
    ("deit_tiny_patch16_224", "rollout", None), ("swin_tiny_patch4_window7_224", "gradcam", 3),
    ("levit_128s", "gradcam++", 3), ("efficientvit_m0", "gradcam", 3), ("shvit_s1", "gradcam++", 3)])
def test_map_is_the_librarys_at_input_resolution(name, method, target, image, tmp_path, capsys):
    argv = ["--model", name, "--image", str(image), "--method", method]
    table, out = _run(argv + ([] if target is None else ["--target", str(target)]), tmp_path, capsys)
    assert list(table.columns) == ["row", "col", "value"] and len(table) == 224 * 224
    assert (table.row.max(), table.col.max()) == (223, 223)
    expected = _library_map(name, method, image, target)
    assert table.value.to_numpy() == pytest.approx(expected.flatten().numpy(), rel=1e-5, abs=1e-12)
    r, c = divmod(int(expected.argmax()), 224)
    assert f"224x224 map, argmax at row {r}, col {c}" in out and "predicted class" in out
    assert ("target class 3" in out) == (target is not None)


def test_default_target_is_the_prediction(image, tmp_path, capsys):
    table, out = _run(["--model", "shvit_s1", "--image", str(image)], tmp_path, capsys)
    model = create_model("shvit_s1", "random")
    pred = int(model(view_image(model, load_image(image)).input).argmax())
    assert f"predicted class {pred} " in out and f"target class {pred} " in out
    assert table.value.to_numpy() == pytest.approx(_library_map("shvit_s1", "gradcam", image, pred).flatten().numpy(),
                                                   rel=1e-5, abs=1e-12)


def test_says_the_weights_are_random_and_names_imagenet_classes(image, tmp_path, capsys):
    """Random weights (the default) are said on stderr; a 1,000-class model's classes are named (timm's table)."""
    assert main(["--model", "deit_tiny_patch16_224", "--image", str(image), "--target", "281",
                 "--out", str(tmp_path / "cam")]) == 0
    out, err = capsys.readouterr()
    assert "target class 281 (tabby)" in out
    assert err.count("note: random weights") == 1
