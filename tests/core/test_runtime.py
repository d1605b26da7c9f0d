"""Host columns: every timing row says where it ran, and a figure's stamp is read from them."""
import pandas as pd
import torch

from analysis.core.runtime import MEASURED_ON, cpu_name, cpu_threads, measured_on, measured_on_text, with_measured_on
from analysis.cost.timing import interleaved_rounds


def test_host_columns_name_this_cpu_the_threads_in_effect_and_torch():
    with cpu_threads(1):
        assert measured_on("cpu") == {"device_name": cpu_name(), "threads": 1, "torch": torch.__version__}
    assert measured_on("cpu", threads=3)["threads"] == 3


def test_a_row_keeps_its_own_columns_and_gains_the_missing_ones():
    row = with_measured_on({"model": "m", "threads": None}, "cpu")
    assert row["threads"] is None and row["device_name"] == cpu_name() and list(row)[:2] == ["model", "threads"]
    df = with_measured_on(pd.DataFrame({"x": [1, 2]}), "cpu", threads=2)
    assert list(df.columns) == ["x", *MEASURED_ON] and (df.threads == 2).all()


def test_the_stamp_is_read_from_the_table():
    one = pd.DataFrame({"device_name": ["Xeon"] * 2, "threads": [1, 1], "torch": ["2.9.1"] * 2})
    assert measured_on_text(one) == "Xeon, 1 thread, torch 2.9.1"
    mixed = pd.concat([one, one.assign(device_name="EPYC", threads=2)])
    assert measured_on_text(mixed) == "mixed hosts: Xeon, 1 thread, torch 2.9.1; EPYC, 2 threads, torch 2.9.1"
    gpu = pd.DataFrame({"device_name": ["NVIDIA H100"], "threads": [None], "torch": ["2.9.1"]})
    assert measured_on_text(gpu) == "NVIDIA H100, torch 2.9.1"
    assert measured_on_text(pd.DataFrame({"latency_ms": [1.0]})) == "host not recorded"
    meso = pd.DataFrame({"cpu": ["EPYC"], "host": ["node-1"], "threads": [1], "torch": ["2.9.1"]})
    assert measured_on_text(meso) == "EPYC, 1 thread, torch 2.9.1"


def test_interleaved_rounds_record_the_host_they_ran_on():
    model, x = torch.nn.Linear(4, 4), torch.randn(2, 4)
    df = interleaved_rounds({"a": (model, x), "b": (model, x)}, 2, passes=1, threads=1)
    assert len(df) == 4 and (df.device_name == cpu_name()).all() and (df.threads == 1).all()
    assert measured_on_text(df) == f"{cpu_name()}, 1 thread, torch {torch.__version__}"
