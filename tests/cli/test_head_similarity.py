"""`python -m analysis.head_similarity`: tidy deterministic CSV, plot, and one-line exit-2 user errors."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from analysis.core import models as core_models
from analysis.heads import similarity as head_similarity_library
from analysis.heads.metrics import METRICS
from analysis.heads.similarity import COLUMNS
from analysis.head_similarity import main

DEIT = ["--model", "deit_tiny_patch16_224"]


def run(argv, capsys, stdout=None):
    """main(argv) in-process -> (exit code, stderr); `stdout` (a list) receives what it printed."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    if stdout is not None:
        stdout.append(captured.out)
    return code, captured.err


def user_error(argv, capsys, match):
    code, err = run(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err and "error:" in lines[0], err
    assert match in lines[0], lines[0]
    return lines[0]


def _folder(tmp_path, good=2, bad=1, classes=("n01", "n02")):
    root = tmp_path / "val"
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(good):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
        for i in range(bad):
            (root / c / f"broken{i}.jpg").write_bytes(b"not an image")
    return root


@pytest.fixture
def no_compute(monkeypatch):
    """Errors must come before any model is built."""
    def fail(*a, **k):
        raise AssertionError("model built before the input was validated")
    monkeypatch.setattr(core_models, "create_model", fail)
    monkeypatch.setattr(head_similarity_library, "create_model", fail)   # head_similarity_table's own import


def test_csv_is_tidy_deterministic_and_plotted(tmp_path, capsys):
    root = _folder(tmp_path)
    argv = DEIT + ["--model", "shvit_s1", "--data", str(root), "--num-images", "3", "--batch-size", "3",
                   "--seed", "1"]
    code, err = run(argv + ["--out", str(tmp_path / "a.csv"), "--plot", str(tmp_path / "fig.png")], capsys)
    assert code == 0, err
    assert "note: random weights" in err and "null baseline" in err
    code, _ = run(argv + ["--out", str(tmp_path / "b.csv")], capsys)
    assert code == 0
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "fig.png").stat().st_size > 0 and (tmp_path / "fig.pdf").exists()

    df = pd.read_csv(tmp_path / "a.csv")
    assert list(df.columns) == COLUMNS
    assert set(df.model) == {"deit_tiny_patch16_224", "shvit_s1"} and set(df.num_images) == {3}
    sim = df[df.metric.isin(["mean_pairwise_cosine", "mean_max_cosine"]) & df["head"].isna()]
    deit = sim[sim.model == "deit_tiny_patch16_224"]
    assert len(deit) == 2 * 12 and deit.value.between(-1, 1).all() and deit.applicable.all()
    shv = sim[sim.model == "shvit_s1"]  # single head: not applicable, never 1.0
    assert len(shv) > 0 and shv.value.isna().all() and not shv.applicable.any()
    assert not df.duplicated(["model", "layer", "metric", "head"]).any()
    assert set(df.metric) == {"mean_pairwise_cosine", "mean_max_cosine", "max_cosine"}  # default: the papers'


def test_stdout_summarises_each_layer_in_percent(tmp_path, capsys):
    printed = []
    code, err = run(DEIT + ["--model", "shvit_s1", "--num-images", "2", "--batch-size", "2", "--out",
                            str(tmp_path / "a.csv")], capsys, printed)
    assert code == 0, err
    lines = printed[0].splitlines()
    assert lines[0].startswith("head similarity per attention layer (%")
    assert "deit_tiny_patch16_224 (random)" in lines[1] and "shvit_s1 (random)" in lines[1]
    df = pd.read_csv(tmp_path / "a.csv")
    deit = df[(df.model == "deit_tiny_patch16_224") & (df.metric == "mean_pairwise_cosine") & df["head"].isna()]
    rows = {int(line.split()[0]): line.split()[1:] for line in lines[4:]}
    assert sorted(rows) == list(range(1, 13))
    for r in deit.itertuples():  # deit: pairwise, max; shvit (single head): n/a n/a
        assert float(rows[r.layer_index][0]) == pytest.approx(round(100 * r.value, 1))
        assert rows[r.layer_index][2:] == ["n/a", "n/a"]


def test_metrics_all_and_subsets(tmp_path, capsys):
    argv = DEIT + ["--num-images", "2", "--batch-size", "2"]
    code, err = run(argv + ["--metrics", "all", "--out", str(tmp_path / "all.csv")], capsys)
    assert code == 0, err
    code, err = run(argv + ["--metrics", "linear_cka, attention_entropy", "--out", str(tmp_path / "two.csv")], capsys)
    assert code == 0, err
    every, two = (pd.read_csv(tmp_path / f"{n}.csv") for n in ("all", "two"))
    assert set(every.metric) == set(METRICS) | {"max_cosine"}
    assert set(two.metric) == {"linear_cka", "attention_entropy"}
    merged = two.merge(every, on=["layer", "metric", "head"], suffixes=("", "_all"))
    assert len(merged) == len(two) and (merged.value - merged.value_all).abs().max() < 1e-9


def test_sample_images_by_default_and_other_seed_differs(tmp_path, capsys):
    for seed in (0, 1):
        code, err = run(DEIT + ["--num-images", "2", "--seed", str(seed), "--out", str(tmp_path / f"{seed}.csv")],
                        capsys)
        assert code == 0, err
    a, b = (pd.read_csv(tmp_path / f"{s}.csv") for s in (0, 1))
    assert a.data[0].startswith("sklearn sample-image crops") and not a.value.equals(b.value)


def test_unknown_model_suggests_names(tmp_path, capsys, no_compute):
    user_error(["--model", "deit_tiny_patch16_22", "--out", str(tmp_path / "x.csv")], capsys,
               "did you mean deit_tiny_patch16_224")


def test_unsupported_architecture(tmp_path, capsys):
    user_error(["--model", "resnet10t", "--out", str(tmp_path / "x.csv")], capsys, "supported families")


def test_missing_folder(tmp_path, capsys, no_compute):
    user_error(DEIT + ["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "x.csv")], capsys,
               "does not exist")


def test_folder_without_images(tmp_path, capsys, no_compute):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    user_error(DEIT + ["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "x.csv")], capsys,
               "contains no image files")


def test_folder_with_only_unreadable_images(tmp_path, capsys, no_compute):
    root = _folder(tmp_path, good=0, bad=2)
    user_error(DEIT + ["--data", str(root), "--out", str(tmp_path / "x.csv")], capsys,
               "no readable image in")


def test_unreadable_files_are_skipped_and_counted(tmp_path, capsys):
    root = _folder(tmp_path, good=1, bad=1)
    code, err = run(DEIT + ["--data", str(root), "--num-images", "4", "--out", str(tmp_path / "x.csv")], capsys)
    assert code == 0 and "skipped unreadable files: 2" in err
    assert set(pd.read_csv(tmp_path / "x.csv").num_images) == {2}
    assert '"deit_tiny_patch16_224": 2' in (tmp_path / "x.json").read_text()


def test_a_folder_smaller_than_asked_is_announced_and_counted_as_used(tmp_path, capsys):
    root = _folder(tmp_path, good=1, bad=0)
    code, err = run(DEIT + ["--data", str(root), "--num-images", "128", "--out", str(tmp_path / "x.csv")], capsys)
    assert code == 0 and "up to 2 images (all the folder holds; 128 asked)" in err
    assert "images used: 2 (deit_tiny_patch16_224)" in err and "128 images" not in err
    assert set(pd.read_csv(tmp_path / "x.csv").num_images) == {2}


def test_checkpoint_errors(tmp_path, capsys):
    out = ["--out", str(tmp_path / "x.csv")]
    user_error(DEIT + ["--weights", str(tmp_path / "missing.pth")] + out, capsys, "checkpoint not found")
    (tmp_path / "junk.pth").write_bytes(b"\x00garbage" * 10)
    user_error(DEIT + ["--weights", str(tmp_path / "junk.pth")] + out, capsys, "not a readable checkpoint")
    torch.save({"model": {"foo.weight": torch.zeros(2)}}, tmp_path / "wrong.pth")
    line = user_error(DEIT + ["--weights", str(tmp_path / "wrong.pth")] + out, capsys, "missing")
    assert "unexpected" in line


def test_local_checkpoint_is_used(tmp_path, capsys):
    import timm
    sd = timm.create_model("deit_tiny_patch16_224").state_dict()
    torch.save({"model": sd}, tmp_path / "deit.pth")
    code, err = run(DEIT + ["--weights", str(tmp_path / "deit.pth"), "--num-images", "1",
                            "--out", str(tmp_path / "x.csv")], capsys)
    assert code == 0, err
    assert set(pd.read_csv(tmp_path / "x.csv").weights) == {"deit.pth"}


def test_pretrained_offline_names_alternatives(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    line = user_error(DEIT + ["--weights", "pretrained", "--out", str(tmp_path / "x.csv")], capsys, "offline")
    assert "--weights random" in line and "--weights PATH" in line


def test_output_not_writable(tmp_path, capsys, no_compute):
    user_error(DEIT + ["--out", str(tmp_path / "no" / "x.csv")], capsys, "does not exist")
    user_error(DEIT + ["--out", str(tmp_path)], capsys, "is a directory")
    user_error(DEIT + ["--out", str(tmp_path / "x.csv"), "--plot", str(tmp_path / "no" / "f.png")], capsys,
               "does not exist")


def test_bad_numbers_and_weights_count(tmp_path, capsys, no_compute):
    out = ["--out", str(tmp_path / "x.csv")]
    user_error(DEIT + ["--num-images", "0"] + out, capsys, "--num-images")
    user_error(DEIT + ["--weights", "random", "--weights", "random"] + out, capsys, "once per --model")
    user_error(DEIT + ["--metrics", "cosine"] + out, capsys, "unknown --metrics cosine")


@pytest.mark.slow
def test_module_entry_point_prints_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "analysis.head_similarity", "--model", "deit_tiny_patch16_22",
                        "--out", str(tmp_path / "x.csv")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.startswith("analysis.head_similarity: error: unknown model")
