"""Every CLI runs a researcher's own model, defined here outside the package (`tests.cli.own_model`), named
as `module:factory` (its folder on sys.path / PYTHONPATH) or `path/to/file.py:factory`, with real outputs."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from analysis import attention_maps, breakdown, gradcam, head_ablation, head_similarity, roofline, throughput, train
from analysis.core.models import create_model
from analysis.cost import __main__ as cost
from analysis.cost.roofline import Machine, model_roofline
from tests.cli.own_model import TOY_CONVNET_MACS, TOY_MODELS

FAKE = Machine("fake", "cpu", 1, peak_flops=1e11, bandwidth=1e10, overhead_s=1e-6)


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """{'module': 'toy_models', 'file': '<tmp>/src/toy_models.py'}: the two ways to name the toy models' module."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "toy_models.py").write_text(TOY_MODELS)
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    yield {"module": "toy_models", "file": str(src / "toy_models.py")}
    sys.modules.pop("toy_models", None)


def _labelled_folder(root, classes=("a", "b"), per_class=2):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


@pytest.mark.parametrize("form", ["module", "file"])
def test_head_similarity_has_rows_for_both_attention_layers(form, toy, tmp_path, capsys):
    out = tmp_path / f"{form}.csv"
    spec = f"{toy[form]}:make_vit"
    assert head_similarity.main(["--model", spec, "--num-images", "4", "--batch-size", "4", "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert set(df.model) == {spec} and sorted(set(df.layer)) == ["blocks.0.attn", "blocks.1.attn"]
    assert set(df.num_heads) == {4} and set(df.family) == {"timm ViT/DeiT"}
    pairwise = df[df.metric == "mean_pairwise_cosine"].set_index("layer_index")["value"]
    assert list(pairwise.index) == [1, 2] and ((pairwise > 0) & (pairwise <= 1)).all()
    assert "declares no input size" not in capsys.readouterr().err   # pretrained_cfg gives 32 px


def test_both_spec_forms_build_the_same_seeded_model(toy, tmp_path):
    tables = []
    for form in ("module", "file"):
        out = tmp_path / f"{form}.csv"
        head_similarity.main(["--model", f"{toy[form]}:make_vit", "--num-images", "2", "--seed", "3",
                              "--out", str(out)])
        tables.append(pd.read_csv(out).drop(columns="model"))
    pd.testing.assert_frame_equal(*tables)


@pytest.mark.parametrize("form", ["module", "file"])
def test_cost_counts_the_hand_computed_macs(form, toy, capsys):
    assert cost.main(["--model", f"{toy[form]}:make_convnet", "--resolution", "32", "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["macs"] == TOY_CONVNET_MACS == 65_536 and report["resolution"] == 32
    assert report["params"] == 8 * 3 * 3 * 3 + 2048 * 5 + 5 and report["unsupported_ops"] == {}
    assert "declares no input size" in err   # no pretrained_cfg: timm's 224 px default unless --resolution


def test_a_model_without_an_input_size_runs_at_224_px_or_says_why_not(toy, tmp_path, capsys):
    """No pretrained_cfg: 224 px (timm's default). The toy conv net's linear layer takes 32 px only."""
    with pytest.raises(SystemExit) as exc:
        cost.main(["--model", f"{toy['file']}:make_convnet"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "cannot run at 224x224 px" in err


def test_cost_with_the_module_on_pythonpath_in_a_fresh_process(toy, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "src"), os.getcwd()]),
           "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run([sys.executable, "-m", "analysis.cost", "--model", "toy_models:make_convnet",
                             "--resolution", "32", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["macs"] == TOY_CONVNET_MACS


def test_head_ablation_ablates_every_head_of_both_layers(toy, tmp_path):
    data = _labelled_folder(tmp_path / "val")
    out = tmp_path / "ablation.csv"
    assert head_ablation.main(["--model", f"{toy['file']}:make_vit", "--data", str(data), "--out", str(out)]) == 0
    df = pd.read_csv(out)
    assert len(df) == 2 * 4 * 2 and set(df.num_images) == {4}   # 2 layers x 4 heads x (remove1, leave1)
    assert set(df.layer) == {"blocks.0.attn", "blocks.1.attn"} and set(df["head"]) == {0, 1, 2, 3}


def test_attention_maps_of_each_head(toy, tmp_path):
    image = _labelled_folder(tmp_path / "img", classes=("a",), per_class=1) / "a" / "0.png"
    stem = tmp_path / "maps"
    assert attention_maps.main(["--model", f"{toy['module']}:make_vit", "--image", str(image),
                                "--out", str(stem)]) == 0
    df = pd.read_csv(f"{stem}.csv")
    assert len(df) == 4 * 4 * 4 and set(df["head"]) == {0, 1, 2, 3}   # 4 heads x the 4x4 patch grid
    per_head = df.groupby("head")["weight"].sum()
    assert ((per_head > 0) & (per_head <= 1 + 1e-6)).all()   # softmax rows, less the class token's share


def test_gradcam_reads_the_layer_named_for_a_model_without_feature_info(toy, tmp_path, capsys):
    image = _labelled_folder(tmp_path / "img", classes=("a",), per_class=1) / "a" / "0.png"
    argv = ["--model", f"{toy['file']}:make_convnet", "--image", str(image), "--out", str(tmp_path / "cam")]
    with pytest.raises(SystemExit):
        gradcam.main(argv)
    err = capsys.readouterr().err
    assert "has no feature_info" in err and "with --layer NAME; its top-level modules: conv, fc" in err
    argv[1] = f"{toy['file']}:make_vit"   # 32 px from its pretrained_cfg (the conv net takes 32 px only)
    assert gradcam.main(argv + ["--layer", "patch_embed"]) == 0
    df = pd.read_csv(tmp_path / "cam.csv")
    assert len(df) == 32 * 32 and (df["value"] >= 0).all()   # the map at the model's 32 px input
    assert "gradcam on patch_embed" in capsys.readouterr().out


def test_breakdown_and_throughput_time_the_toy(toy, tmp_path, capsys):
    csv = tmp_path / "b.csv"
    spec = f"{toy['module']}:make_convnet"
    assert breakdown.main(["--model", spec, "--resolution", "32", "--batch-size", "1", "--repeats", "1",
                           "--csv", str(csv)]) == 0
    df = pd.read_csv(csv)
    assert set(df.model) == {spec} and df["share"].sum() == pytest.approx(1.0)
    assert df["macs"].sum() == TOY_CONVNET_MACS   # batch 1
    capsys.readouterr()
    assert throughput.main(["--model", f"{toy['file']}:make_vit", "--window", "0.1", "--warmup", "0",
                            "--json"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    assert record["resolution"] == 32 and record["images_per_s"] > 0


def test_roofline_predicts_as_the_library(toy, tmp_path):
    FAKE.save(tmp_path / "m.json")
    spec = f"{toy['file']}:make_vit"
    out = tmp_path / "s.csv"
    assert roofline.main(["--model", spec, "--batch-size", "2", "--machine", str(tmp_path / "m.json"),
                          "--predict-only", "--csv", str(out)]) == 0
    expected = model_roofline(spec, FAKE, batch_size=2).by_stage()
    assert pd.read_csv(out)["predicted_ms"].tolist() == pytest.approx(expected["predicted_ms"].tolist(), rel=1e-5)


def test_train_then_analyse_the_checkpoint(toy, tmp_path, capsys):
    """num_classes and --set reach the factory; the checkpoint it writes loads into the factory's model."""
    run = tmp_path / "run"
    assert train.main(["--model", f"{toy['module']}:make_vit", "--set", "img_size=64", "--num-train", "32",
                       "--num-val", "16", "--epochs", "1", "--batch-size", "16", "--quiet", "--output", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["num_classes"] == 10 and summary["params"] == sum(   # cluttered digits: 10 classes, 64 px
        p.numel() for p in sys.modules["toy_models"].make_vit(img_size=64).parameters())
    out = tmp_path / "h.csv"
    assert head_similarity.main(["--model", f"{toy['file']}:make_digits_vit", "--weights", str(run / "last.pth"),
                                 "--num-images", "2", "--out", str(out)]) == 0
    assert set(pd.read_csv(out).weights) == {"last.pth"}
    trained = torch.load(run / "last.pth", weights_only=True)["model"]
    loaded = create_model(f"{toy['file']}:make_vit", str(run / "last.pth"), img_size=64).state_dict()
    assert loaded.keys() == trained.keys() and all(torch.equal(loaded[k], trained[k]) for k in trained)
