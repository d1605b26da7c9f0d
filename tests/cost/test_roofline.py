"""analysis.cost.roofline: known answers on synthetic ops on a fixed fake machine, the stage and module
sums, the overhead fit, the summary's rank correlations, and a real (small) measurement."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from analysis.core.errors import UserError
from analysis.cost.roofline import (Machine, Roofline, fit_overhead, measure_machine, measure_stage_latency, model_roofline,
                                    roofline_stages, roofline_summary, validate_roofline)

# 100 GFLOP/s, 10 GB/s: ridge at 10 FLOP/byte; 1 us per op.
FAKE = Machine("fake", "cpu", 1, peak_flops=1e11, bandwidth=1e10, overhead_s=1e-6)


class Transposed(nn.Module):
    def forward(self, x):
        return x.transpose(0, 1).contiguous()


def only(ops, op):
    rows = ops[ops["op"] == op]
    assert len(rows) == 1, ops["op"].tolist()
    return rows.iloc[0]


def test_machine_ridge_and_attainable_by_hand():
    assert FAKE.ridge == 10
    assert FAKE.attainable([0.0, 1.0, 10.0, 1000.0]).tolist() == [0.0, 1e10, 1e11, 1e11]


def test_a_large_gemm_is_compute_bound():
    n = 512
    ops = Roofline(nn.Linear(n, n, bias=False), torch.randn(n, n), FAKE, fuse=False).ops()
    mm = only(ops, "aten.mm")
    # read x and W, write y: 3 n^2 floats; intensity 2 n^3 / (12 n^2) = n / 6 FLOP per byte
    assert (mm["macs"], mm["mem_bytes"]) == (n ** 3, 12 * n * n)
    assert mm["flops_per_byte"] == pytest.approx(n / 6)
    assert mm["bound"] == "compute" and mm["attainable_flops"] == 1e11
    assert mm["predicted_s"] == pytest.approx(2 * n ** 3 / 1e11 + 1e-6, rel=1e-12)
    assert mm["category"] == "conv/matmul" and not mm["memory_bound_category"]


def test_a_copy_is_memory_bound_and_a_view_costs_only_the_overhead():
    ops = Roofline(Transposed(), torch.randn(256, 128), FAKE, fuse=False).ops()
    copy = only(ops, "aten.clone")
    assert (copy["macs"], copy["mem_bytes"], copy["flops_per_byte"]) == (0, 2 * 4 * 256 * 128, 0.0)
    assert copy["bound"] == "memory" and copy["attainable_flops"] == 0
    assert copy["predicted_s"] == pytest.approx(2 * 4 * 256 * 128 / 1e10 + 1e-6, rel=1e-12)
    assert copy["category"] == "reshape/copy" and copy["memory_bound_category"]
    view = only(ops, "aten.transpose")
    assert view["bound"] == "overhead" and math.isnan(view["flops_per_byte"])
    assert view["predicted_s"] == 1e-6


@pytest.fixture(scope="module")
def s1():
    return model_roofline("shvit_s1", FAKE, batch_size=2, resolution=64)


def test_stage_and_module_sums_are_the_ops_recomputed_independently(s1):
    ops = s1.ops()
    by_hand = [max(2 * m / 1e11, b / 1e10) + 1e-6 for m, b in zip(ops["macs"], ops["mem_bytes"])]
    assert ops["predicted_s"].tolist() == pytest.approx(by_hand, rel=1e-12)
    stages = s1.by_stage()
    assert stages["stage"].tolist() == ["stem", "stage1", "stage2", "stage3", "head"]
    assert stages["n_ops"].sum() == len(ops) and stages["macs"].sum() == s1.cost.total("macs")
    assert stages["predicted_ms"].sum() == pytest.approx(s1.predicted_ms(), rel=1e-12)
    assert s1.predicted_ms() == pytest.approx(1e3 * sum(by_hand), rel=1e-12)
    per_stage = ops.groupby("stage")["predicted_s"].sum() * 1e3
    assert stages.set_index("stage")["predicted_ms"].to_dict() == pytest.approx(per_stage.to_dict())
    memory = ops[ops["bound"] == "memory"].groupby("stage")["predicted_s"].sum().reindex(stages["stage"], fill_value=0)
    assert stages["memory_bound_ms"].tolist() == pytest.approx((memory * 1e3).tolist())
    top = s1.by_module(depth=1)
    assert top["depth"].max() == 1
    root = top[top["module"] == ""].iloc[0]
    assert root["predicted_ms"] == pytest.approx(s1.predicted_ms(), rel=1e-12) and root["n_ops"] == len(ops)
    children = top[top["depth"] == 1]
    assert children["n_ops"].sum() <= len(ops)


def test_prediction_on_a_fixed_machine_is_deterministic(s1):
    again = model_roofline("shvit_s1", FAKE, batch_size=2, resolution=64)
    pd.testing.assert_frame_equal(s1.by_stage(), again.by_stage())


def test_fit_overhead_recovers_a_known_slope():
    n = [24, 96, 384]
    assert fit_overhead(n, [0.002 + 3e-6 * k for k in n]) == pytest.approx(3e-6)
    assert fit_overhead(n, [0.002 - 1e-6 * k for k in n]) == 0.0  # never negative
    with pytest.raises(ValueError):
        fit_overhead([10, 10], [1.0, 2.0])


@pytest.mark.parametrize("field,value", [("peak_flops", 0), ("bandwidth", -1.0), ("bandwidth", float("nan")),
                                         ("overhead_s", -1e-6), ("peak_flops", float("inf"))])
def test_machine_refuses_impossible_numbers(field, value):
    with pytest.raises(UserError, match=field):
        Machine.from_dict({**FAKE.to_dict(), field: value})


def test_machine_description_round_trips_and_bad_files_are_user_errors(tmp_path):
    path = tmp_path / "m.json"
    FAKE.save(path)
    assert Machine.load(path) == FAKE
    cuda = Machine.from_dict({**FAKE.to_dict(), "device": "cuda", "threads": float("nan")})
    assert cuda.threads is None
    (tmp_path / "partial.json").write_text(json.dumps({"name": "x", "peak_flops": 1}))
    (tmp_path / "text.json").write_text("not json")
    (tmp_path / "words.json").write_text(json.dumps({**FAKE.to_dict(), "bandwidth": "fast"}))
    for name, needle in (("partial.json", "needs the fields"), ("text.json", "not readable JSON"),
                         ("missing.json", "does not exist"), ("words.json", "must be numbers")):
        with pytest.raises(UserError, match=needle):
            Machine.load(tmp_path / name)


def stage_rows(model, predicted, measured, macs):
    return [{"model": model, "stage": f"s{i}", "predicted_ms": p, "measured_ms": m, "macs": c,
             "model_measured_ms": sum(measured)} for i, (p, m, c) in enumerate(zip(predicted, measured, macs))]


def test_summary_rank_correlations_and_errors_by_hand():
    stages = pd.DataFrame(stage_rows("a", [2, 4, 6, 8], [1, 2, 3, 4], [4, 3, 2, 1])
                          + stage_rows("b", [4, 3, 2, 1], [1, 2, 3, 4], [1, 2, 3, 4]))
    s = roofline_summary(stages).set_index("model")
    assert s.loc["a", ["rho_roofline", "rho_macs"]].tolist() == [1.0, -1.0]
    assert s.loc["b", ["rho_roofline", "rho_macs"]].tolist() == [-1.0, 1.0]
    assert s.loc["a", "error_pct"] == pytest.approx(100.0) and s.loc["b", "error_pct"] == pytest.approx(0.0)
    assert s.loc["all", ["predicted_ms", "measured_ms", "stages"]].tolist() == [30, 20, 8]
    assert s.loc["all", "error_pct"] == pytest.approx(50.0) and s.loc["all", "median_abs_error_pct"] == pytest.approx(50.0)


def test_latency_is_joined_per_stage_and_a_missing_stage_is_refused(s1):
    lat = pd.DataFrame({"model": "s1", "stage": s1.cost.stage_map.names, "measured_ms": [1.0, 2, 3, 4, 5],
                        "spread_ms": 0.1, "model_measured_ms": 15.0})
    table = roofline_stages({"s1": s1}, lat)
    assert table["measured_ms"].tolist() == [1.0, 2, 3, 4, 5]
    assert table["achieved_flops"].tolist() == pytest.approx((2 * table["macs"] / (table["measured_ms"] / 1e3)).tolist())
    assert (table["batch_size"].unique().tolist(), table["resolution"].unique().tolist()) == ([2], [64])
    with pytest.raises(UserError, match="no measured latency for s1 head"):
        roofline_stages({"s1": s1}, lat.iloc[:-1])


def test_measured_machine_places_a_big_gemm_above_and_a_copy_below_its_ridge():
    m = measure_machine("cpu", threads=1, gemm_size=256, stream_elements=2 ** 20, seconds=0.02, repeats=3)
    assert m.device == "cpu" and m.threads == 1 and "thread" in m.name
    assert m.peak_flops > 1e8 and m.bandwidth > 1e8 and m.overhead_s >= 0
    gemm = Roofline(nn.Linear(512, 512, bias=False), torch.randn(512, 512), m, fuse=False).ops()
    assert only(gemm, "aten.mm")["bound"] == "compute"  # intensity 85 FLOP/byte, a CPU ridge is ~1-10
    copy = Roofline(Transposed(), torch.randn(512, 512), m, fuse=False).ops()
    assert only(copy, "aten.clone")["bound"] == "memory"


def test_validate_measures_every_stage_of_a_small_model():
    stages = validate_roofline(["shvit_s1"], FAKE, batch_size=1, resolution=64, repeats=2, warmup=1, progress=False)
    assert stages["stage"].tolist() == ["stem", "stage1", "stage2", "stage3", "head"]
    assert (stages["measured_ms"] > 0).all() and (stages["model_measured_ms"] > 0).all()
    assert np.isfinite(roofline_summary(stages)["rho_roofline"]).all()


@pytest.mark.gpu
def test_cuda_machine_and_stage_latency():
    """On a GPU: the machine is measured with CUDA timing, a big GEMM is compute-bound on it, and every stage
    of a small model is predicted and measured."""
    m = measure_machine("cuda", threads=None, gemm_size=4096, stream_elements=2 ** 26, seconds=0.05, repeats=5)
    assert m.device == "cuda" and m.threads is None and m.peak_flops > 1e11 and m.bandwidth > 1e10
    gemm = Roofline(nn.Linear(4096, 4096, bias=False).cuda(), torch.randn(4096, 4096, device="cuda"), m,
                    fuse=False).ops()
    assert only(gemm, "aten.mm")["bound"] == "compute"  # intensity 683 FLOP/byte, above any GPU's fp32 ridge
    stages = validate_roofline(["shvit_s1"], m, batch_size=8, device="cuda", repeats=3, warmup=1, progress=False)
    assert (stages["measured_ms"] > 0).all() and (stages["predicted_ms"] > 0).all()
