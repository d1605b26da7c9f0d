"""`python -m analysis.head_similarity`: every bad input exits 2 with one line and writes nothing."""
import pytest
import torch

from analysis.head_similarity import main
from tests.cli.own_model import own_model_rows
from tests.helpers import assert_rejected

D = ["--model", "deit_tiny_patch16_224", "--num-images", "2", "--batch-size", "2"]
OUT = ["--out", "{tmp}/out.csv"]
TABLE = [
    (D, "the following arguments are required: --out"),
    (["--out", "{tmp}/o.csv"], "the following arguments are required: --model"),
    (["--model", "deit_tiny", "--out", "{tmp}/o.csv"], "unknown model 'deit_tiny'"),
    (["--model", "resnet18"] + OUT, "no supported attention"),
    (D + OUT + ["--num-images", "0"], "argument --num-images: must be at least 1"),
    (D + OUT + ["--num-images", "-3"], "argument --num-images: must be at least 1"),
    (D + OUT + ["--num-images", "ten"], "invalid int value: 'ten'"),
    (D + OUT + ["--batch-size", "0"], "argument --batch-size: must be at least 1"),
    (D + OUT + ["--seed", "-1"], "argument --seed: must be between 0 and 2**32 - 1"),
    (D + OUT + ["--metrics", "nope"], "unknown --metrics nope"),
    (D + OUT + ["--metrics", ","], "unknown --metrics (empty)"),
    (D + OUT + ["--amp", "fp8"], "argument --amp: invalid choice"),
    (D + OUT + ["--device", "tpu"], "argument --device: invalid choice"),
    (D + ["--model", "shvit_s1", "--weights", "random", "--weights", "random", "--weights", "random"] + OUT,
     "give --weights once, or once per --model"),
    (D + OUT + ["--weights", "{missing}"], "checkpoint not found"),
    (D + OUT + ["--weights", "{text_pth}"], "is not a readable checkpoint"),
    (D + OUT + ["--weights", "{random_pth}"], "is not a readable checkpoint"),
    (D + OUT + ["--weights", "{random_safetensors}"], "is not a readable checkpoint"),
    (D + OUT + ["--data", "{missing}"], "does not exist"),
    (D + OUT + ["--data", "{empty}"], "contains no image files"),
    (D + OUT + ["--data", "{broken}"], "no readable image"),
    (D + ["--out", "{missing}"], "does not exist"),
    (D + ["--out", "{empty}"], "is a directory"),
    (D + ["--out", "{a_file}/x.csv"], "does not exist"),
    (D + ["--out", "{tmp}/res.json"], "would both write"),
    (D + ["--out", "{tmp}/same.png", "--plot", "{tmp}/same.png"], "would both write"),
    (D + ["--out", "{unrelated_csv}"], "exists and was not written by python -m analysis.head_similarity"),
    (D + ["--out", "{unrelated_csv}", "--overwrite"], "is not a metadata file of analysis.head_similarity"),
    (D + OUT + ["--plot", "{missing}.png"], "does not exist"),
    (D + ["--weights", "{text_pth}", "--out", "{text_pth}", "--overwrite"], "would replace the input --weights"),
    (D + ["--data", "{flat}", "--out", "{flat}/o.csv"], "would write inside the input folder --data"),
    (D + ["--data", "{flat}", "--plot", "{flat}/im0.png", "--overwrite"] + OUT, "would write inside the input folder --data"),
    # issue 26
    (D + OUT + ["--plot", "{empty}/"], "is a directory; give a file name stem"),
    (D + OUT + ["--plot", "{empty}"], "is a directory; give a file name stem"),
    (D + OUT + ["--plot", "{tmp}/pd/"], "is a directory; give a file name stem"),
    (D + OUT + ["--plot", "{empty}/.png"], "is a directory; give a file name stem"),
    (D + OUT + ["--metrics", "mean_max_cosine,mean_max_cosine"], "--metrics names mean_max_cosine more than once"),
    (D + OUT + ["--metrics", "paper,paper"], "--metrics names paper more than once"),
    (D + ["--out", "{tmp}/nd/"], "ends with '/'"),
]
TABLE += own_model_rows(D[2:] + OUT)   # issue 28: your own model that cannot be loaded or built


@pytest.mark.parametrize("argv,needle", TABLE, ids=[" ".join(a[-2:]) for a, _ in TABLE])
def test_bad_input(argv, needle, bad, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, **bad) for a in argv]
    assert_rejected(main, argv, needle, capsys, tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has CUDA")
def test_cuda_without_a_gpu(bad, tmp_path, capsys):
    assert_rejected(main, D + ["--out", str(tmp_path / "o.csv"), "--device", "cuda"], "no CUDA device", capsys,
                    tmp_path)
