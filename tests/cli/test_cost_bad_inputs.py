"""`python -m analysis.cost`: every bad input exits 2 with one line and writes nothing."""
import pytest
import torch

from analysis.cost.__main__ import main
from tests.helpers import assert_rejected

M = ["--model", "shvit_s1"]
TABLE = [
    (["--model", "shvit_s9"], "unknown model 'shvit_s9'; did you mean"),
    (["--json"], "the following arguments are required: --model"),
    (M + ["--resolution", "0"], "argument --resolution: must be at least 16 (px), got 0"),
    (M + ["--resolution", "8"], "argument --resolution: must be at least 16 (px), got 8"),
    (M + ["--resolution", "abc"], "invalid int value: 'abc'"),
    (M + ["--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
    (M + ["--batch-size", "-4"], "argument --batch-size: must be at least 1"),
    (M + ["--latency", "--repeats", "0"], "argument --repeats: must be at least 1"),
    (M + ["--warmup", "-3"], "argument --warmup: must be at least 0"),
    (M + ["--threads", "0"], "argument --threads: must be between 1 and the"),
    (M + ["--threads", "-2"], "argument --threads: must be between 1 and the"),
    (M + ["--seed", "-1"], "argument --seed: must be between 0 and 2**32 - 1"),
    (M + ["--seed", str(2**32)], "argument --seed: must be between 0 and 2**32 - 1"),
    (M + ["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    (M + ["--device", "cpu", "--attention-backend", "efficient"], "needs CUDA"),
    (M + ["--device", "cpu", "--attention-backend", "cudnn"], "needs CUDA"),
    (M + ["--attention-backend", "fast"], "argument --attention-backend: invalid choice"),
    (M + ["--by", "layer"], "argument --by: invalid choice"),
    (M + ["--csv", "{missing}"], "does not exist"),
    (M + ["--csv", "{empty}"], "is a directory"),
    (M + ["--csv", "{a_file}/x.csv"], "does not exist"),
    (M + ["--unknown-flag"], "unrecognized arguments: --unknown-flag"),
    (M + ["--repeats", "5"], "--repeats would be ignored: --repeats, --warmup and --threads apply with --latency"),
    (M + ["--warmup", "0", "--threads", "1"], "--warmup, --threads would be ignored"),
    (M + ["--depth", "2"], "--depth would be ignored"),
    (M + ["--by", "operator", "--depth", "2"], "--depth would be ignored"),
    (["--model", "deit_tiny_patch16_224", "--resolution", "225"], "16x16 px patches: 225 px would leave pixels out; use a multiple of 16, e.g. 224 or 240"),
]


@pytest.mark.parametrize("argv,needle", TABLE, ids=[" ".join(a) for a, _ in TABLE])
def test_bad_input(argv, needle, bad, tmp_path, capsys):
    assert_rejected(main, [a.format(**bad) for a in argv], needle, capsys, tmp_path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has CUDA")
def test_cuda_without_a_gpu(bad, tmp_path, capsys):
    assert_rejected(main, M + ["--device", "cuda"], "no CUDA device is available", capsys, tmp_path)
