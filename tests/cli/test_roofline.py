"""`python -m analysis.roofline` end to end on a small model: a given machine description gives the
library's prediction exactly; measuring writes the machine, the table and the figure it announces."""
import json

import pandas as pd
import pytest

from analysis.cost.roofline import Machine, model_roofline
from analysis.roofline import main

FAKE = Machine("fake", "cpu", 1, peak_flops=1e11, bandwidth=1e10, overhead_s=1e-6)
SMALL = ["--model", "shvit_s1", "--resolution", "64", "--batch-size", "2"]


@pytest.mark.parametrize("by", ["stage", "op", "module"])
def test_prediction_for_a_described_machine_is_the_librarys(by, tmp_path, capsys):
    FAKE.save(tmp_path / "m.json")
    out = tmp_path / "t.csv"
    assert main(SMALL + ["--machine", str(tmp_path / "m.json"), "--predict-only", "--by", by, "--csv", str(out)]
                + (["--depth", "1"] if by == "module" else [])) == 0
    table = pd.read_csv(out)
    rl = model_roofline("shvit_s1", FAKE, batch_size=2, resolution=64)
    expected = {"stage": rl.by_stage, "op": rl.ops, "module": lambda: rl.by_module(1)}[by]()
    assert table["predicted_ms" if by != "op" else "predicted_s"].tolist() == pytest.approx(
        expected["predicted_ms" if by != "op" else "predicted_s"].tolist(), rel=1e-5)  # CSV: 6 digits
    assert (table["model"] == "shvit_s1").all() and "measured_ms" not in table
    out_text, err = capsys.readouterr()
    assert "predicted_ms" in out_text and "stage3" in out_text and f"wrote {out}" in err
    assert "ridge 10.00 FLOP/byte" in err and "1.00 us per op" in err


def test_measuring_writes_the_machine_table_and_figure(tmp_path, capsys):
    files = [tmp_path / n for n in ("m.json", "s.csv", "f.png", "f.pdf")]
    assert main(SMALL + ["--repeats", "2", "--warmup", "1", "--save-machine", str(files[0]), "--csv", str(files[1]),
                         "--figure", str(tmp_path / "f")]) == 0
    assert all(f.is_file() and f.stat().st_size > 0 for f in files)
    machine = Machine.load(files[0])
    assert machine.threads == 1 and machine.peak_flops > 0
    stages = pd.read_csv(files[1])
    assert (stages["measured_ms"] > 0).all() and len(stages) == 5
    out, err = capsys.readouterr()
    assert "rho_roofline" in out and "1 CPU thread(s)" in err
    assert all(f"wrote {f}" in err for f in files)
    assert json.loads(files[0].read_text())["device"] == "cpu"


@pytest.mark.parametrize("by", ["stage", "op"])
def test_the_calibrated_prediction_for_a_described_machine_is_the_librarys(by, tmp_path, capsys):
    from analysis.cost.calibration import CalibratedMachine
    from analysis.cost.predictor import model_predictor
    from tests.cost.test_predictor import toy_machine

    toy_machine().save(tmp_path / "cal.json")
    out = tmp_path / "t.csv"
    assert main(SMALL + ["--calibrated", "--machine", str(tmp_path / "cal.json"), "--predict-only", "--by", by,
                         "--csv", str(out)]) == 0
    table = pd.read_csv(out)
    p = model_predictor("shvit_s1", CalibratedMachine.load(tmp_path / "cal.json"), batch_size=2, resolution=64)
    expected = p.by_stage() if by == "stage" else p.ops()
    column = "predicted_ms" if by == "stage" else "predicted_s"
    assert table[column].tolist() == pytest.approx(expected[column].tolist(), rel=1e-5)
    assert set(table["bound"]) <= {"compute", "cache", "memory", "overhead"} and "measured_ms" not in table
    out_text, err = capsys.readouterr()
    assert "bound_pct" in out_text and "roofline_ms" in out_text and "calibrated from 27 kernels" in err


def test_calibrating_and_measuring_writes_the_description_table_and_figure(tmp_path, capsys, monkeypatch):
    import analysis.cost.calibration as calibration

    quick = calibration.calibrate
    monkeypatch.setattr(calibration, "calibrate", lambda *a, **k: quick(*a, **k, scale=0.02, byte_sizes=(2 ** 16,)))
    files = [tmp_path / n for n in ("cal.json", "s.csv", "f.png", "f.pdf")]
    assert main(SMALL + ["--calibrated", "--repeats", "2", "--warmup", "1", "--save-machine", str(files[0]),
                         "--csv", str(files[1]), "--figure", str(tmp_path / "f")]) == 0
    assert all(f.is_file() and f.stat().st_size > 0 for f in files)
    assert "gemm" in json.loads(files[0].read_text())["samples"]
    stages = pd.read_csv(files[1])
    assert (stages["measured_ms"] > 0).all() and stages["predicted_ms"].sum() > 0
    out, err = capsys.readouterr()
    assert "median_abs_error_pct" in out and "calibrating the machine" in err


def test_flush_denormal_holds_while_the_models_are_timed_and_is_undone(tmp_path, monkeypatch, capsys):
    import torch

    import analysis.cost.roofline as roofline

    calls, seen = [], []
    real_flush, real_measure = torch.set_flush_denormal, roofline.measure_stage_latency
    monkeypatch.setattr(torch, "set_flush_denormal", lambda on: calls.append(on) or real_flush(on))
    monkeypatch.setattr(roofline, "measure_stage_latency", lambda *a, **k: seen.append(list(calls)) or real_measure(*a, **k))
    FAKE.save(tmp_path / "m.json")
    assert main(SMALL + ["--machine", str(tmp_path / "m.json"), "--repeats", "1", "--warmup", "0", "--flush-denormal"]) == 0
    assert seen == [[True]] and calls == [True, False]   # on while timing, off after
    with torch.no_grad():
        tiny = torch.tensor([torch.finfo(torch.float32).tiny / 4])
        assert (tiny * 1.0).item() > 0   # subnormals kept again after the run
