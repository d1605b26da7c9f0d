"""`python -m analysis.throughput`: every bad input exits 2 with one line and writes nothing."""
import importlib.util

import pytest
import torch

from analysis.throughput import main
from tests.cli.own_model import own_model_rows
from tests.helpers import assert_rejected

M = ["--model", "shvit_s1", "--window", "0.1", "--warmup", "0"]
TABLE = [
    ([], "give at least one --model NAME (or --table2)"),
    (["--model", "shvit_s9"], "unknown model 'shvit_s9'"),
    (M + ["--batch-size", "0"], "argument --batch-size: must be at least 1"),
    (M + ["--threads", "0"], "argument --threads: must be between 1 and the"),
    (M + ["--threads", "x"], "invalid int value: 'x'"),
    (M + ["--warmup", "-1"], "argument --warmup: must be a finite number of at least 0"),
    (M + ["--window", "0"], "argument --window: must be a finite number above 0"),
    (M + ["--window", "nan"], "argument --window: must be a finite number above 0"),
    (M + ["--window", "inf"], "argument --window: must be a finite number above 0"),
    (M + ["--resolution", "0"], "argument --resolution: must be at least 16 (px), got 0"),
    (M + ["--resolution", "12"], "argument --resolution: must be at least 16 (px), got 12"),
    (M + ["--seed", "-1"], "argument --seed: must be between 0 and 2**32 - 1"),
    (M + ["--runtime", "tpu"], "argument --runtime/--device: invalid choice"),
    (M + ["--csv", "{missing}"], "does not exist"),
    (M + ["--csv", "{empty}"], "is a directory"),
    (M + ["--cuda-graph"], "--cuda-graph needs --runtime cuda"),
]
TABLE += own_model_rows(M[2:], weights=False)   # issue 28: your own model that cannot be loaded or built


@pytest.mark.parametrize("argv,needle", TABLE, ids=[" ".join(a[-2:]) or "none" for a, _ in TABLE])
def test_bad_input(argv, needle, bad, tmp_path, capsys):
    assert_rejected(main, [a.format(tmp=tmp_path, **bad) for a in argv], needle, capsys, tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is not None, reason="onnxruntime is installed")
def test_onnx_without_onnxruntime(tmp_path, capsys):
    assert_rejected(main, M + ["--runtime", "onnx"], "pip install 'shvit-analysis-lab[onnx]'", capsys, tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has CUDA")
def test_cuda_without_a_gpu(tmp_path, capsys):
    assert_rejected(main, M + ["--runtime", "cuda"], "no CUDA device", capsys, tmp_path)
