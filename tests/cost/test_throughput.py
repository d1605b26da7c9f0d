"""analysis.throughput: the protocol's record, fidelity to a plain loop, ONNX, Table 2, CLI errors."""
import json
import sys
import time

import numpy as np
import pandas as pd
import pytest
import timm
import torch
import torch.nn as nn

import shvit  # noqa: F401
from analysis.core.models import create_model, fuse_model
from analysis.core.reference import load_reference
from analysis.core.runtime import cpu_name, measured_on
from analysis.cost import throughput
from analysis.cost.throughput import (cuda_graph_forward, measure_throughput, model_throughput, rank_agreement,
                                      table2_comparison)
from analysis.throughput import main

KEYS = {"model", "device", "batch_size", "resolution", "threads", "images_per_s", "spread"}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_record_follows_the_protocol_defaults():
    r = model_throughput("shvitlab_s1", runtime="cpu", resolution=64, warmup_s=0, window_s=0.2)
    assert KEYS <= set(r)
    assert (r["model"], r["device"], r["batch_size"], r["resolution"], r["threads"]) == \
        ("shvitlab_s1", "cpu", 16, 64, 1)
    assert (r["device_name"], r["torch"]) == (cpu_name(), torch.__version__)
    assert r["images_per_s"] > 0 and r["spread"] >= 0 and r["passes"] >= 3


def test_resolution_comes_from_the_pretrained_config():
    model = create_model("shvit_s4")
    r = measure_throughput(model, batch_size=1, warmup_s=0, window_s=0.05)
    assert r["resolution"] == 256 and r["batch_size"] == 1


def test_cpu_figure_agrees_loosely_with_a_hand_written_loop():
    """Loose (shared 2-core machine); the 10% comparison is benchmarks/throughput_fidelity.py."""
    model = create_model("shvitlab_s1")
    fused, x = fuse_model(model), torch.randn(16, 3, 64, 64)
    ratios = []
    for _ in range(3):
        ours = measure_throughput(model, resolution=64, warmup_s=0.1, window_s=0.5)["images_per_s"]
        with torch.no_grad():
            fused(x)
            t0, n = time.perf_counter(), 0
            while time.perf_counter() - t0 < 0.5:
                fused(x)
                n += 1
            plain = 16 * n / (time.perf_counter() - t0)
        ratios.append(ours / plain)
        if 0.67 < ratios[-1] < 1.5:
            break
    assert 0.67 < ratios[-1] < 1.5, ratios


def test_onnx_runtime():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    r = model_throughput("shvitlab_s1", runtime="onnx", resolution=64, batch_size=2, warmup_s=0, window_s=0.1)
    assert r["device"] == "onnxruntime-cpu" and r["images_per_s"] > 0 and r["threads"] == 1


def test_onnx_missing_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(SystemExit) as exc:
        main(["--model", "shvit_s1", "--runtime", "onnx"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "pip install" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv,needle", [
    (["--model", "shvit_s9"], "unknown model"),
    ([], "at least one --model"),
    (["--model", "shvit_s1", "--resolution", "4"], "must be at least 16 (px)"),
    (["--model", "shvit_s1", "--threads", "0"], "argument --threads: must be between 1 and the"),
])
def test_cli_user_errors(argv, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and needle in err and err.count("\n") == 1


def test_cli_json_several_models(capsys, tmp_path):
    out_csv = tmp_path / "t.csv"
    assert main(["--model", "shvitlab_s1", "--model", "efficientvit_m0", "--resolution", "64", "--batch-size", "2",
                 "--warmup", "0", "--window", "0.1", "--json", "--csv", str(out_csv)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["model"] for r in lines] == ["shvitlab_s1", "efficientvit_m0"]
    assert all(KEYS <= set(r) for r in lines)
    assert out_csv.read_text().startswith("model,device,")


def test_cli_text_states_threads_and_window(capsys):
    assert main(["--model", "shvitlab_s1", "--resolution", "64", "--batch-size", "2", "--threads", "1",
                 "--warmup", "0", "--window", "0.1"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("shvitlab_s1") and "img/s (IQR" in line
    assert "cpu, batch 2, 64 px, 1 thread; median of" in line and "passes in a 0.1 s window after 0 s warm-up" in line


@pytest.mark.gpu
@pytest.mark.parametrize("amp", [False, True])
def test_cuda_graph_replays_the_eager_forward(amp):
    net = fuse_model(timm.create_model("shvit_s1", num_classes=10)).cuda()
    x = torch.randn(4, 3, 224, 224, device="cuda")
    graph, out = cuda_graph_forward(net, x, amp=amp)
    x.copy_(torch.randn_like(x))  # the graph reads x's storage at replay time
    graph.replay()
    torch.cuda.synchronize()
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=amp):
        eager = net(x)
    assert out.dtype == eager.dtype and torch.allclose(out.float(), eager.float(), atol=1e-2 if amp else 1e-4)
    r = measure_throughput(net, runtime="cuda", batch_size=8, warmup_s=0, window_s=0.2, amp=amp, cuda_graph=True)
    assert r["cuda_graph"] and r["images_per_s"] > 0


def test_cuda_graph_needs_the_cuda_runtime():
    with pytest.raises(ValueError, match="cuda_graph needs runtime='cuda'"):
        measure_throughput(nn.Identity(), runtime="cpu", cuda_graph=True)


def test_table2_comparison_has_rank_correlation():
    names = ["mobilenetv3_small_100", "shvit_s1", "efficientvit_m2"]
    df = table2_comparison(window_s=0.1, warmup_s=0, names=names, progress=False)
    assert list(df["timm_name"]) == ["mobilenetv3_small_100", "efficientvit_m2", "shvit_s1"]  # paper order
    assert {"paper_cpu_img_s", "ours_img_s", "ratio"} <= set(df.columns)
    assert (df["ours_img_s"] > 0).all() and -1 <= df.attrs["spearman"] <= 1


def test_rank_agreement_is_spearmans_rho():
    table = pd.DataFrame({"ours": [10.0, 30.0, 20.0, 40.0], "paper": [1.0, 2.0, 3.0, 4.0]})
    assert rank_agreement(table, "ours", "paper") == pytest.approx(0.8)  # one swapped pair: 1 - 6 * 2 / (4 * 15)
    assert rank_agreement(table.assign(ours=[4.0, 3.0, 2.0, 1.0]), "ours", "paper") == pytest.approx(-1.0)
    assert np.isnan(rank_agreement(table.head(2), "ours", "paper"))


def test_table2_comparison_reports_the_rank_agreement(monkeypatch):
    paper = load_reference("shvit_table2").set_index("timm_name")["cpu_img_s"]
    names = ["mobilenetv3_small_100", "mobilevit_xxs", "efficientvit_m2", "mobileone_s0"]
    reversed_speed = {n: 1000 / paper[n] for n in names}  # our ranking is the paper's reversed
    monkeypatch.setattr(throughput, "model_throughput",
                        lambda name, **_: {"images_per_s": reversed_speed[name], "spread": 0.0,
                                           **measured_on("cpu", threads=1)})
    df = table2_comparison(names=names, progress=False)
    assert df.attrs["spearman"] == pytest.approx(-1.0)
    assert (df.device_name == cpu_name()).all() and (df.threads == 1).all()  # where each row was measured
    assert df.attrs["spearman"] == rank_agreement(df, "ours_img_s", "paper_cpu_img_s")
