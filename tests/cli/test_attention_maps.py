"""`python -m analysis.attention_maps` end to end on a generated image: the CSV holds the library's maps
(heads and key grid of the model's layer), the figure and table it announces are written."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from analysis.attention_maps import main
from analysis.core.images import load_image, view_image
from analysis.core.models import create_model
from analysis.heads.layers import attention_layers
from analysis.heads.maps import attention_rollout, query_attention

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def image(tmp_path):
    a = np.zeros((240, 320, 3), np.uint8)
    a[60:180, 100:220] = (220, 180, 40)
    a[::7] = 90
    Image.fromarray(a).save(tmp_path / "im.png")
    return tmp_path / "im.png"


def _run(argv, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path / "m")]) == 0
    out, err = capsys.readouterr()
    files = [tmp_path / f"m.{ext}" for ext in ("png", "pdf", "csv")]
    assert all(f.stat().st_size > 0 and f"wrote {f}" in err for f in files), err
    return pd.read_csv(files[2]), out


def test_query_maps_are_the_librarys(image, tmp_path, capsys):
    table, out = _run(["--model", "deit_tiny_patch16_224", "--image", str(image), "--query", "100,70"], tmp_path, capsys)
    assert list(table.columns) == ["head", "row", "col", "weight"] and len(table) == 3 * 14 * 14
    model = create_model("deit_tiny_patch16_224", "random")
    view = view_image(model, load_image(image))
    qy, qx = view.to_input(100, 70)
    qm = query_attention(model, view.input, "blocks.11.attn", (qy, qx))
    assert table.weight.to_numpy() == pytest.approx(qm.maps[0].flatten().numpy(), rel=1e-5, abs=1e-9)
    assert f"query token at (x {qm.query_yx[1]:g}, y {qm.query_yx[0]:g})" in out and "layer 11 (blocks.11.attn" in out


def test_heads_and_grid_are_the_layers(image, tmp_path, capsys):
    layer = attention_layers(create_model("levit_128s", "random"))[0]
    table, out = _run(["--model", "levit_128s", "--image", str(image), "--layer", layer.name], tmp_path, capsys)
    assert sorted(table["head"].unique()) == list(range(layer.num_heads)) == [0, 1, 2, 3]
    assert (table.row.max() + 1, table.col.max() + 1) == (14, 14) and len(table) == 4 * 14 * 14
    assert table.groupby("head").weight.sum().to_numpy() == pytest.approx(np.ones(4), abs=1e-4)  # one query's row
    assert f"{layer.num_heads} heads, (14, 14) key grid" in out


def test_rollout_is_the_librarys(image, tmp_path, capsys):
    table, out = _run(["--model", "deit_tiny_patch16_224", "--image", str(image), "--rollout"], tmp_path, capsys)
    model = create_model("deit_tiny_patch16_224", "random")
    ro = attention_rollout(model, view_image(model, load_image(image)).input)
    assert list(table.columns) == ["row", "col", "weight"] and len(table) == 196
    assert table.weight.to_numpy() == pytest.approx(ro.maps[0].flatten().numpy(), rel=1e-5)
    r, c = divmod(int(ro.maps[0].argmax()), 14)
    assert "rollout over 12 attention layers, class token" in out and f"map argmax: row {r}, col {c}" in out
