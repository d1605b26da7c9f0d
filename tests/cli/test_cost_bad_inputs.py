"""`python -m analysis.cost`: every bad input exits 2 with one line and writes nothing."""
import os
import stat

import pytest
import torch

from analysis.cost.__main__ import main
from tests.cli.own_model import own_model_rows
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
    # issue 26: options that would be ignored, output names that are folders or the manifest
    (M + ["--json", "--by", "module"], "--by module would be ignored: --json prints"),
    (M + ["--json", "--by", "operator"], "--by operator would be ignored: --json prints"),
    (M + ["--json", "--by", "module", "--depth", "2"], "--depth would be ignored: --json prints"),
    (M + ["--attention-backend", "math"], "--attention-backend math would be ignored"),
    (M + ["--device", "cpu", "--attention-backend", "flash"], "--attention-backend flash would be ignored"),
    (M + ["--csv", "{tmp}/nd/"], "ends with '/': it names a folder"),
    (M + ["--csv", "{empty}/"], "is a directory"),
    (M + ["--csv", "{tmp}/.analysis-outputs.json"], ".analysis-outputs.json is the folder's record"),
    (M + ["--csv", "{tmp}/.analysis-outputs.json", "--overwrite"], ".analysis-outputs.json is the folder's record"),
    (["--model", "deit_tiny_patch16_224", "--resolution", "225"], "16x16 px patches: 225 px would leave pixels out; use a multiple of 16, e.g. 224 or 240"),
]
TABLE += own_model_rows([], weights=False)   # issue 28: your own model that cannot be loaded or built


@pytest.mark.parametrize("argv,needle", TABLE, ids=[" ".join(a) for a, _ in TABLE])
def test_bad_input(argv, needle, bad, tmp_path, capsys):
    assert_rejected(main, [a.format(tmp=tmp_path, **bad) for a in argv], needle, capsys, tmp_path)


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_an_output_that_is_not_a_regular_file_is_never_replaced(overwrite, tmp_path, capsys):
    """A FIFO (or a device) named as --csv stays what it is, even with --overwrite (issue 26)."""
    os.mkfifo(tmp_path / "fifo")
    assert_rejected(main, M + ["--csv", str(tmp_path / "fifo")] + overwrite, "is not a regular file", capsys,
                    tmp_path)
    assert stat.S_ISFIFO(os.stat(tmp_path / "fifo").st_mode)


@pytest.mark.parametrize("env,needle", [({"RANK": "\u00b2"}, "RANK='\u00b2' is not a whole number"),
                                        ({"WORLD_SIZE": "\u0661"}, "is not a whole number"),
                                        ({"RANK": "1"}, "RANK=1 / LOCAL_RANK=0 do not fit WORLD_SIZE=1")])
def test_a_bad_launch_environment_is_one_line_at_once_even_with_an_argument_error(env, needle, tmp_path, capsys,
                                                                                  monkeypatch):
    """A Unicode digit in RANK (str.isdigit says yes, int() says no) and a stray RANK=1 with a bad argument:
    one line at once, no traceback, no 60 s wait for a rank 0 that is not there (issue 26)."""
    waits = []
    monkeypatch.setattr("analysis.core.errors.time.sleep", waits.append)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for argv in (M, M + ["--batch-size", "0"]):
        assert_rejected(main, argv, needle, capsys, tmp_path)
    assert waits == []


def test_an_argument_error_of_one_process_is_printed_whatever_rank_says(tmp_path, capsys, monkeypatch):
    waits = []
    monkeypatch.setattr("analysis.core.errors.time.sleep", waits.append)
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    assert_rejected(main, M + ["--batch-size", "0"], "argument --batch-size: must be at least 1", capsys, tmp_path)
    assert waits == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has CUDA")
def test_cuda_without_a_gpu(bad, tmp_path, capsys):
    assert_rejected(main, M + ["--device", "cuda"], "no CUDA device is available", capsys, tmp_path)
