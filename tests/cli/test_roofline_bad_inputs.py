"""`python -m analysis.roofline`: every bad input exits 2 with one line and writes nothing."""
import json
import os

import pytest

from analysis.roofline import main
from tests.cli.own_model import own_model_rows
from tests.cost.test_predictor import toy_machine
from tests.helpers import assert_rejected

FAKE = {"name": "fake", "device": "cpu", "threads": 1, "peak_flops": 1e11, "bandwidth": 1e10, "overhead_s": 1e-6}
M = ["--model", "shvit_s1", "--resolution", "64", "--batch-size", "1", "--predict-only", "--machine", "{tmp}/in/m.json"]
TABLE = [
    (["--model", "shvit_s9"], "unknown model 'shvit_s9'"),
    (M + ["--threads", "0"], "argument --threads: must be between 1 and the"),
    (M + ["--batch-size", "0"], "argument --batch-size: must be at least 1"),
    (M + ["--repeats", "0"], "argument --repeats: must be at least 1"),
    (M + ["--warmup", "-1"], "argument --warmup: must be at least 0"),
    (M + ["--depth", "-1"], "argument --depth: must be at least 0"),
    (M + ["--resolution", "8"], "argument --resolution: must be at least 16 (px), got 8"),
    (M + ["--by", "layer"], "argument --by: invalid choice"),
    (M + ["--machine", "{missing}"], "does not exist"),
    (M + ["--machine", "{text_pth}"], "not readable JSON"),
    (M + ["--machine", "{unrelated_json}"], "needs the fields"),
    (M + ["--machine", "{tmp}/in/negative.json"], "bandwidth must be a finite number above 0"),
    (M[:-3] + ["--machine", "{tmp}/in/gpu.json", "--device", "cpu"], "describes a cuda machine"),
    (M + ["--csv", "{missing}"], "does not exist"),
    (M + ["--csv", "{empty}"], "is a directory"),
    (M + ["--save-machine", "{empty}"], "is a directory"),
    (M + ["--figure", "{missing}"], "does not exist"),
    (M + ["--csv", "{tmp}/r.png", "--figure", "{tmp}/r"], "would both write"),
    (M + ["--csv", "{tmp}/in/m.json"], "exists and was not written by python -m analysis.roofline"),
    (M + ["--csv", "{tmp}/in/m.json", "--overwrite"], "would both write"),
    (M + ["--predict-only", "--repeats", "3"], "--repeats and --warmup would be ignored: --predict-only times nothing"),
    (M + ["--flush-denormal"], "--flush-denormal would be ignored: with --machine and --predict-only nothing is measured"),
    (M + ["--machine", "{empty}"], "is not a regular file"),
    (M + ["--machine", "/dev/zero"], "is not a regular file"),
    (M + ["--machine", "{tmp}/in/fifo"], "is not a regular file"),
    (M + ["--machine", "{tmp}/in/huge.json"], "more than the 65536 of this kind of description"),
    (M + ["--machine", "{tmp}/in/deep.json"], "not readable JSON"),
    (M + ["--machine", "{tmp}/in/half_thread.json"], "threads must be a whole number from 1 to"),
    (M + ["--machine", "{tmp}/in/no_threads.json"], "threads must be a whole number from 1 to"),
    (M + ["--machine", "{tmp}/in/tpu.json"], "its device cpu or cuda"),
    (M + ["--machine", "{tmp}/in/true_peak.json"], "must be numbers"),
    (M + ["--machine", "{tmp}/in/object_name.json"], "name must be a string"),
    # issue 26
    (M + ["--machine", "{tmp}/in/digits401.json"], "one is too large for a float"),
    (M + ["--machine", "{tmp}/in/digits5001.json"], "not readable JSON"),
    (M + ["--machine", "{tmp}/in/many_threads.json"], "threads must be a whole number from 1 to 65536"),
    (["--model", "deit_tiny_patch16_224"] + M[2:] + ["--resolution", "100", "--save-machine", "{tmp}/x.json"],
     "16x16 px patches: 100 px would leave pixels out"),
    (M + ["--depth", "1"], "--depth would be ignored: it applies with --by module"),
    (M + ["--by", "op", "--depth", "1", "--csv", "{tmp}/o.csv"], "--depth would be ignored"),
    (M + ["--by", "op"], "--by op would be ignored: it chooses the table of --csv"),
    (M + ["--by", "stage"], "--by stage would be ignored"),
    (M + ["--by", "module", "--depth", "1"], "--by module would be ignored"),
    (M + ["--figure", "{tmp}/fig/"], "/fig/ is a directory; give a file name stem"),
    (M + ["--figure", "{empty}"], "is a directory; give a file name stem"),
    (M + ["--csv", "{tmp}/nd/"], "ends with '/'"),
    (M + ["--save-machine", "{tmp}/.analysis-outputs.json"], "is the folder's record"),
    # issue 30: the calibrated predictor
    (M + ["--calibrated"], "a calibrated machine description has the fields"),
    (M[:-1] + ["{tmp}/in/nan_cal.json", "--calibrated"], "must be finite"),
    (M[:-1] + ["{tmp}/in/cal.json", "--calibrated", "--by", "module", "--csv", "{tmp}/o.csv"],
     "--by module is the simple roofline's"),
    (M[:-1] + ["{tmp}/in/cal.json", "--calibrated", "--figure", "{tmp}/f"], "drop --predict-only"),
]
TABLE += own_model_rows(M[2:], weights=False)   # issue 28: your own model that cannot be loaded or built


@pytest.mark.parametrize("argv,needle", TABLE, ids=[" ".join(a[-2:]) for a, _ in TABLE])
def test_bad_input(argv, needle, bad, tmp_path, capsys):
    (tmp_path / "in" / "m.json").write_text(json.dumps(FAKE))
    (tmp_path / "in" / "negative.json").write_text(json.dumps({**FAKE, "bandwidth": -1}))
    (tmp_path / "in" / "gpu.json").write_text(json.dumps({**FAKE, "device": "cuda", "threads": None}))
    os.mkfifo(tmp_path / "in" / "fifo")               # reading it would hang
    (tmp_path / "in" / "huge.json").write_text(json.dumps({**FAKE, "pad": "x" * 100_000}))
    (tmp_path / "in" / "deep.json").write_text("[" * 20_000 + "]" * 20_000)   # deeper than Python recurses
    for name, change in (("half_thread", {"threads": 1.5}), ("no_threads", {"threads": -2}), ("tpu", {"device": "tpu"}),
                         ("true_peak", {"peak_flops": True}), ("object_name", {"name": {"a": 1}}),
                         ("many_threads", {"threads": 10 ** 400})):
        (tmp_path / "in" / f"{name}.json").write_text(json.dumps({**FAKE, **change}))
    for digits in (401, 5001):   # a float overflows; json's own limit on integer digits (4300)
        (tmp_path / "in" / f"digits{digits}.json").write_text(json.dumps(FAKE).replace(json.dumps(1e11), "9" * digits))
    cal = toy_machine().to_dict()
    (tmp_path / "in" / "cal.json").write_text(json.dumps(cal))
    cal["samples"]["gemm"]["log2_rate"][0] = float("nan")
    (tmp_path / "in" / "nan_cal.json").write_text(json.dumps(cal))
    assert_rejected(main, [a.format(tmp=tmp_path, **bad) for a in argv], needle, capsys, tmp_path)
