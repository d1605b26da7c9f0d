"""The calibrated latency predictor: kernel descriptions by hand, the rate model on known functions, the machine
description's round trip and refusals, a quick real calibration, and the predictor's sums and bounds."""
import json
import math
import platform
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from analysis.core.errors import UserError
from analysis.cost.allocator import GLIBC_MMAP_MAX, MMAP_THRESHOLD, TRIM_THRESHOLD, malloc_pinned, pin_malloc
from analysis.cost.calibration import CalibratedMachine, calibrate, slow_outliers
from analysis.cost.context_networks import CONTEXT_BOUNDS, fit_context
from analysis.cost.counter import CostAnalysis
from analysis.cost.kernels import FRESH_BYTES, MAX_RUN, Kernel
from analysis.cost.predictor import BOUNDS, LatencyPredictor, predictor_summary
from analysis.cost.rate_model import RateModel


def kernels_of(fn, *inputs):
    class Call(nn.Module):
        def forward(self, *xs):
            return fn(*xs)

    ops = CostAnalysis(Call(), inputs, fuse=False, kernels=True).ops()
    return ops[ops["kernel"].map(lambda k: k.kind != "free")].reset_index(drop=True)


# ----------------------------------------------------------------------------- kernels


def test_a_convolution_is_described_by_hand():
    x, w = torch.randn(2, 16, 10, 10), torch.randn(24, 16, 3, 3)
    ops = kernels_of(lambda a: F.conv2d(a, w, None, 2, 1), x)
    (k,) = ops["kernel"]
    assert k.kind == "conv"
    rows = 2 * 5 * 5   # output pixels of the batch
    assert k.features == pytest.approx((math.log2(rows), 4.0, math.log2(24), 0.0, math.log2(9), 1.0, 0.0, 1.0, 0.0))
    assert k.work == 2 * ops["macs"][0] == 2 * rows * 24 * 16 * 9


def test_depthwise_grouped_and_channels_last_convolutions():
    x, w_dw, w_grouped, w_1x1 = torch.randn(1, 12, 8, 8), torch.randn(12, 1, 5, 5), torch.randn(12, 6, 1, 1), \
        torch.randn(8, 12, 1, 1)
    (dw,) = kernels_of(lambda a: F.conv2d(a, w_dw, None, 1, 2, 1, 12), x)["kernel"]
    assert dw.kind == "dwconv" and dw.features[1] == pytest.approx(math.log2(12)) and dw.features[6] == 0.0
    (grouped,) = kernels_of(lambda a: F.conv2d(a, w_grouped, None, 1, 0, 1, 2), x)["kernel"]
    assert grouped.kind == "conv" and grouped.features[3] == 1.0 and grouped.features[7] == 0.0   # 6 % 8 != 0
    last = x.contiguous(memory_format=torch.channels_last)
    (k,) = kernels_of(lambda a: F.conv2d(a, w_1x1), last)["kernel"]
    assert k.features[6] == 1.0


def test_a_transposed_convolution_is_bytes_moved_at_its_flops_per_byte():
    x, w = torch.randn(2, 16, 5, 5), torch.randn(16, 24, 4, 4)
    ops = kernels_of(lambda a: F.conv_transpose2d(a, w, None, 2, 1), x)
    (k,) = ops["kernel"]
    flops = 2 * (2 * 5 * 5) * 16 * (24 * 4 * 4)   # every input pixel and channel meets 24 x 4 x 4 weights
    assert k.kind == "aten.convolution" and k.work == ops["mem_bytes"][0]
    assert k.features[-1] == pytest.approx(math.log2(flops / k.work))
    m = toy_machine()   # calibrated before transposed convolutions were: priced as a copy, as then
    assert m.kind_for(k) == "aten.clone" and m.seconds(k) == m.seconds(k._replace(features=k.features[:5]))


def test_linear_and_attention_work_is_twice_their_macs():
    lin = nn.Linear(32, 48)
    ops = kernels_of(lin, torch.randn(5, 7, 32))
    gemm = ops[ops["kernel"].map(lambda k: k.kind == "gemm")]
    assert len(gemm) == 1 and gemm["kernel"].iloc[0].work == 2 * gemm["macs"].iloc[0] == 2 * 35 * 48 * 32
    assert gemm["kernel"].iloc[0].features[1:4] == pytest.approx((math.log2(35), math.log2(48), 5.0))
    q, k, v = torch.randn(2, 3, 10, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 4)
    (att,) = kernels_of(F.scaled_dot_product_attention, q, k, v)["kernel"]
    assert att.kind == "attention" and att.work == 2 * 6 * 10 * 6 * (8 + 4)
    assert att.features == pytest.approx((math.log2(6), math.log2(10), math.log2(6), 3.0, 0.0))


def test_a_copys_contiguous_run_and_fresh_pages():
    x = torch.randn(4, 6, 6, 12)
    (contiguous,) = kernels_of(torch.relu, x)["kernel"]
    assert contiguous.kind == "aten.relu" and contiguous.features[1] == math.log2(MAX_RUN)
    (transposed,) = kernels_of(lambda a: a.transpose(1, 2).contiguous(), x)["kernel"]
    assert transposed.kind == "aten.clone" and transposed.features[1] == pytest.approx(math.log2(12))
    (strided,) = kernels_of(lambda a: a.transpose(0, 3).contiguous(), x)["kernel"]
    assert strided.features[1] == 0.0
    big = torch.zeros(FRESH_BYTES // 4)
    fresh, in_place, below = (kernels_of(f, t)["kernel"][0] for f, t in
                              ((torch.relu, big), (torch.relu_, big), (torch.relu, big[:-1024])))
    assert fresh.features[4] == 1.0 and fresh.fresh_bytes == FRESH_BYTES       # a new 32 MiB output
    assert in_place.features[4] == 0.0 == in_place.fresh_bytes                   # in place: nothing allocated
    assert below.features[4] == 0.0 == below.fresh_bytes                         # just below the threshold
    w = torch.randn(8, 4, 1, 1)
    (conv,) = kernels_of(lambda a: F.conv2d(a, w), torch.randn(1, 4, 1024, 1024))["kernel"]
    assert conv.features[-1] == 1.0 and conv.fresh_bytes == 8 * 1024 * 1024 * 4  # its output's bytes


# ----------------------------------------------------------------------------- the rate model


def test_the_additive_model_recovers_an_additive_function():
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(4, 12, 400), rng.integers(0, 2, 400)])
    truth = lambda f: 30 + np.minimum(f[:, 0], 8) - 1.5 * f[:, 1]   # saturating in size, a flag's penalty
    model = RateModel(x, truth(x), (1, 4))
    queries = np.array([[5.5, 0], [7.25, 1], [10.0, 0], [11.5, 1]])
    assert [model(q) for q in queries] == pytest.approx(truth(queries), abs=0.05)


def test_without_the_additive_part_a_query_lies_between_its_two_sizes():
    model = RateModel([[12.0], [14.0], [16.0]], [1.0, 3.0, 9.0], (1,), additive=False, neighbours=2)
    assert model([14.0]) == pytest.approx(3.0, abs=0.05)   # a sample itself, nearly (inverse distance)
    assert 3.0 < model([15.0]) < 9.0 and model([15.0]) == pytest.approx(6.0, abs=1e-6)


# ----------------------------------------------------------------------------- the machine description


def toy_machine(**changes) -> CalibratedMachine:
    """A hand-made calibration: every kind at 1e9 work per second but gemm (1e10) and add (2e9)."""
    def kind(rate, width):
        return {"features": [[float(i)] * width for i in range(3)], "log2_rate": [math.log2(rate)] * 3}

    samples = {k: kind(1e9, 5) for k in ("aten.clone", "aten.copy_", "aten.native_layer_norm", "aten._softmax",
                                         "aten.silu", "aten.relu")}
    samples.update({"gemm": kind(1e10, 6), "aten.add": kind(2e9, 5), "conv": kind(1e9, 9)})
    d = {"name": "toy", "device": "cpu", "threads": 1, "peak_flops": 2e10, "dispatch_s": 1e-6, "overhead_s": 2e-6,
         "cache_bytes": 1e6, "samples": samples, "calibration_s": 0.0}
    return CalibratedMachine.from_dict({**d, **changes})


def test_kinds_never_timed_borrow_a_rate():
    m = toy_machine()
    assert m.kind_for(Kernel("aten.relu_", (20.0,) * 5, 1.0)) == "aten.relu"       # in place: out of place
    assert m.kind_for(Kernel("aten.mul", (20.0,) * 5, 1.0)) == "aten.add"          # element-wise: add
    assert m.kind_for(Kernel("aten.hardtanh", (20.0,) * 5, 1.0)) == "aten.silu"    # activation: silu
    assert m.seconds(Kernel("aten.mul", (20.0,) * 5, 4e9)) == pytest.approx(2.0)
    assert m.seconds(Kernel("free", (), 0.0)) == m.dispatch_s


def test_a_machine_description_round_trips(tmp_path):
    m = toy_machine()
    m.save(tmp_path / "m.json")
    back = CalibratedMachine.load(tmp_path / "m.json")
    k = Kernel("gemm", (1.0,) * 6, 3e9)
    assert back.to_dict() == m.to_dict() and back.seconds(k) == m.seconds(k) == pytest.approx(0.3)
    pinned = toy_machine(malloc={"mmap_threshold": 1 << 25, "trim_threshold": 1 << 30})
    pinned.save(tmp_path / "pinned.json")
    assert CalibratedMachine.load(tmp_path / "pinned.json").malloc == pinned.malloc
    older = {k: v for k, v in m.to_dict().items() if k != "malloc"}   # described before malloc was pinned
    assert CalibratedMachine.from_dict(older).malloc is None


@pytest.mark.parametrize("change, needle", [
    ({"samples": {"gemm": {"features": [[1.0]], "log2_rate": [30.0]}}}, "fallback kinds"),
    ({"peak_flops": -1.0}, "peak_flops above 0"),
    ({"overhead_s": float("nan")}, "finite"),
    ({"dispatch_s": "fast"}, "must be numbers"),
    ({"extra": 1}, "has the fields"),
    ({"malloc": {"mmap_threshold": 1 << 20}}, "malloc is null"),
    ({"malloc": {"mmap_threshold": 1.5, "trim_threshold": 1}}, "malloc is null"),
    ({"malloc": {"mmap_threshold": 1, "trim_threshold": 1, "mmap_max": -1}}, "malloc is null"),
    ({"context": {"factor": 5.0}}, "context is null"),
    ({"context": {"factor": "1.1"}}, "context is null"),
    ({"context": [1.1]}, "context is null"),
])
def test_a_bad_machine_description_is_one_user_error(change, needle):
    d = toy_machine().to_dict()
    d.update(change)
    with pytest.raises(UserError, match=needle):
        CalibratedMachine.from_dict(d)


def test_ragged_or_non_finite_samples_are_refused(tmp_path):
    d = json.loads(json.dumps(toy_machine().to_dict()))
    d["samples"]["gemm"]["features"][1] = [1.0, 2.0]
    with pytest.raises(UserError, match="must be numbers"):
        CalibratedMachine.from_dict(d)
    d["samples"]["gemm"]["features"][1] = d["samples"]["gemm"]["features"][0]
    d["samples"]["gemm"]["log2_rate"][0] = float("inf")
    with pytest.raises(UserError, match="finite"):
        CalibratedMachine.from_dict(d)
    (tmp_path / "roofline.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(UserError, match="has the fields"):
        CalibratedMachine.load(tmp_path / "roofline.json")


# ----------------------------------------------------------------------------- calibrating and predicting


@pytest.fixture(scope="module")
def quick_machine():
    yield calibrate("cpu", threads=1, scale=0.02, byte_sizes=(2 ** 14, 2 ** 20), networks=3, progress=False)
    if malloc_pinned():   # the calibration pinned this test process: let malloc map large blocks again
        pin_malloc(mmap_max=GLIBC_MMAP_MAX)


def test_a_quick_calibration_times_every_kind(quick_machine, tmp_path):
    m = quick_machine
    assert {"gemm", "conv", "dwconv", "attention", "aten.convolution", "aten.copy_", "aten.add", "aten.gelu"} <= \
        set(m.samples)   # aten.convolution: transposed ones
    rates = np.concatenate([v["log2_rate"] for v in m.samples.values()])
    assert np.isfinite(rates).all() and 2 ** rates.min() > 1e5   # more than 100 KB/s or kflop/s, always
    assert m.peak_flops > 1e9 and m.dispatch_s > 0 and m.overhead_s >= 0 and m.threads == 1
    if platform.libc_ver()[0] == "glibc":   # calibrated, and to be measured, under the pinned allocator
        assert m.malloc == malloc_pinned() == {"mmap_threshold": MMAP_THRESHOLD, "trim_threshold": TRIM_THRESHOLD,
                                               "mmap_max": 0}
        assert m.pin_malloc() == m.malloc   # timing later pins the same setting again
    assert toy_machine().pin_malloc() is None   # calibrated unpinned: nothing to pin
    m.save(tmp_path / "m.json")
    k = Kernel("conv", (12.0, 5.0, 6.0, 0.0, 3.17, 0.0, 0.0, 1.0, 0.0), 1e9)
    assert CalibratedMachine.load(tmp_path / "m.json").seconds(k) == m.seconds(k)
    assert not m.fresh_offset   # the fresh flag is no feature of the rates: fresh pages are priced per byte
    rows = np.asarray(m.context["networks"])   # 3 networks timed whole: kernels alone, the rest, measured
    assert rows.shape == (3, 3) and (rows > 0).all()
    assert CONTEXT_BOUNDS[0] <= m.context["factor"] <= CONTEXT_BOUNDS[1]
    assert m.context["factor"] == fit_context(*rows.T)
    assert CalibratedMachine.load(tmp_path / "m.json").context == m.context
    assert m.fault_s_per_byte == 0.0   # nothing mapped afresh (mmap_max 0), nothing faults after a warm-up


def test_a_bytes_moving_sample_far_slower_than_its_neighbours_in_size_is_flagged():
    sizes = np.arange(12.0, 29.0)
    features = [[s, run, 1.0, 0.0, 0.0] for run in (0.0, 10.0) for s in sizes] + [[20.0, 5.0, 1.0, 0.0, 0.0]]
    rates = [30.0 + 0.2 * (s - 12) + (run > 0) for run in (0.0, 10.0) for s in sizes] + [20.0]
    rates[len(sizes) + 14] -= 3.0   # the contiguous one at 2^26 bytes: 8 times too slow
    rates[3] -= 1.0                 # a dip within the noise
    assert slow_outliers(features, rates) == [len(sizes) + 14]   # not the lone one: it has no neighbours
    assert slow_outliers(features, rates, slower=3.5) == [] and slow_outliers(features, rates, slower=0.9) == [3, 31]


def test_a_slowed_bytes_moving_microbenchmark_is_timed_again():
    import time

    from analysis.cost.calibration import _time_plan

    built = []

    def case(numel):
        def make():
            x, slowed = torch.randn(numel), numel == 1 << 14 and not any(n == numel for n in built)
            built.append(numel)
            return lambda: (time.sleep(0.05) if slowed else None, torch.mul(x, 2.0))[1]
        return make

    plan = [case(1 << n) for n in range(10, 19)]
    rates = _time_plan(plan, "cpu", False, 0.0)["aten.mul"]["log2_rate"]
    assert built.count(1 << 14) == 2   # built again, to be timed again
    assert 2 ** 17 / 2 ** rates[4] < 0.005   # 128 KiB moved: its first time (over 50 ms) did not stand


def test_fresh_pages_are_priced_per_byte_apart_from_the_rate():
    m, faulting = toy_machine(), toy_machine(fault_s_per_byte=1e-9)
    k = Kernel("gemm", (1.0,) * 6, 3e9, fresh_bytes=1e8)
    assert m.seconds(k) == pytest.approx(0.3) and faulting.seconds(k) == pytest.approx(0.3 + 0.1)
    older = {key: v for key, v in faulting.to_dict().items() if key != "fault_s_per_byte"}
    assert CalibratedMachine.from_dict(older).fault_s_per_byte == 0.0   # described before faults were measured
    with pytest.raises(UserError, match="at least 0"):
        toy_machine(fault_s_per_byte=-1e-9)


def test_the_fresh_flag_moves_the_rate_only_in_descriptions_that_took_it_as_an_offset():
    rows = [[float(i % 4), 5.0, 5.0, 5.0, 1.0, float(i % 2)] for i in range(8)]   # gemm: the flag is column 5
    gemm = {"features": rows, "log2_rate": [33.0 - r[5] for r in rows]}            # flagged ones ran at half rate
    samples = {**toy_machine().samples, "gemm": gemm}
    now = toy_machine(samples=samples, fresh_offset=False)
    older = toy_machine(samples=samples)   # saved without `fresh_offset`, before the flag was dropped: an offset
    flagged, plain = (Kernel("gemm", (1.0, 5.0, 5.0, 5.0, 1.0, f), 1e9) for f in (1.0, 0.0))
    assert older.fresh_offset and older.rate(plain) / older.rate(flagged) > 1.5
    assert not now.fresh_offset and now.rate(plain) == now.rate(flagged)   # fresh pages: per byte alone
    with pytest.raises(UserError, match="fresh_offset is true or false"):
        toy_machine(fresh_offset=1)


def test_the_prediction_is_the_sum_of_its_ops():
    m = toy_machine()
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10)).eval()
    p = LatencyPredictor(model, torch.randn(32, 64), m, fuse=False)
    ops = p.ops()
    assert ops["predicted_s"].to_numpy() == pytest.approx((ops["kernel_s"] + m.overhead_s).to_numpy())
    first = ops[ops["op"] == "aten.addmm"].iloc[0]
    assert first["kernel_s"] == pytest.approx(2 * 32 * 64 * 256 / 1e10)
    assert p.predicted_ms() == pytest.approx(1e3 * ops["predicted_s"].sum())
    stages = p.by_stage()
    assert stages["predicted_ms"].sum() == pytest.approx(p.predicted_ms())
    assert stages[[f"{b}_bound_ms" for b in BOUNDS]].sum(axis=1).to_numpy() == pytest.approx(
        stages["predicted_ms"].to_numpy())


def test_the_roofline_baseline_reads_the_machines_own_largest_copy():
    """Descriptions calibrated up to 256 MiB keep their DRAM rate after the plan stopped at 128 MiB."""
    m = toy_machine()
    m.samples["aten.copy_"] = {"features": [[10.0, 10.0, 1.0, 0.0, 0.0], [20.0, 10.0, 1.0, 0.0, 0.0]],
                               "log2_rate": [33.0, 30.0]}
    m = CalibratedMachine.from_dict(m.to_dict())
    assert m.roofline().bandwidth == m.dram_copy_rate() == m.copy_rate(2.0 ** 20)   # its largest, 1 MiB
    assert m.dram_copy_rate() == pytest.approx(2.0 ** 30, rel=0.01)   # that sample's rate, nearly alone


def test_the_context_factor_by_hand():
    """measured = kernels x f + rest, exactly: f comes back; a factor past the bounds is clamped to them."""
    kernel, rest = np.array([0.010, 0.030, 0.002, 0.050]), np.array([0.001, 0.004, 0.003, 0.0])
    assert fit_context(kernel, rest, 1.3 * kernel + rest) == pytest.approx(1.3, abs=1e-6)
    assert fit_context(kernel, rest, 10 * kernel + rest) == CONTEXT_BOUNDS[1]
    assert fit_context(kernel, rest, 0.1 * kernel + rest) == CONTEXT_BOUNDS[0]
    # noisy networks: the least-squares factor of their relative errors, as scipy's plain least squares gives it
    measured = np.array([1.2, 1.1, 1.4, 1.25]) * kernel + rest
    a, b = (kernel / measured)[:, None], (measured - rest) / measured
    assert fit_context(kernel, rest, measured) == pytest.approx(float(np.linalg.lstsq(a, b, rcond=None)[0][0]),
                                                                abs=1e-6)


def test_the_context_factor_scales_every_kernel_but_free_ops():
    plain, inside = toy_machine(), toy_machine(context={"factor": 1.25, "networks": []})
    model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10)).eval()
    a, b = (LatencyPredictor(model, torch.randn(32, 64), m, fuse=False).ops() for m in (plain, inside))
    free = (a["kind"] == "free").to_numpy()
    assert free.any() and (~free).any()
    assert b["kernel_s"].to_numpy()[~free] == pytest.approx(1.25 * a["kernel_s"].to_numpy()[~free], rel=1e-12)
    assert (b["kernel_s"].to_numpy()[free] == a["kernel_s"].to_numpy()[free]).all()   # dispatch only
    assert (b["context"].to_numpy()[~free] == 1.25).all() and (a["context"] == 1.0).all()
    assert b["predicted_s"].to_numpy() == pytest.approx((b["kernel_s"] + inside.overhead_s).to_numpy())
    older = {k: v for k, v in inside.to_dict().items() if k != "context"}   # calibrated before held-out set 7
    assert CalibratedMachine.from_dict(older).context is None


def test_what_bounds_an_op():
    m = toy_machine(peak_flops=1e9)
    ops = LatencyPredictor(nn.Sequential(nn.Linear(512, 512), nn.ReLU()).eval(), torch.randn(64, 512), m,
                           fuse=False).ops()
    gemm = ops[ops["op"] == "aten.addmm"].iloc[0]
    assert gemm["bound"] == "compute"   # 2*64*512*512 flops at 1 GFLOP/s: 34 ms, against ~1 MB of traffic
    assert gemm["bound_pct"] == pytest.approx(100 * gemm["compute_s"] / gemm["predicted_s"])
    relu = ops[ops["op"] == "aten.relu"].iloc[0]
    assert relu["bound"] == "cache" and relu["mem_bytes"] <= m.cache_bytes
    views = ops[ops["mem_bytes"] == 0]
    assert (views["bound"] == "overhead").all()


def test_the_summary_by_hand():
    stages = pd.DataFrame({"model": ["a", "a", "b"], "stage": ["s1", "s2", "s1"],
                           "predicted_ms": [1.0, 3.0, 9.0], "measured_ms": [2.0, 2.5, 8.0],
                           "model_measured_ms": [5.0, 5.0, 10.0], "roofline_ms": [1.0, 1.0, 5.0]})
    s = predictor_summary(stages).set_index("model")
    assert s.loc["a", "error_pct"] == pytest.approx(-20.0) and s.loc["b", "error_pct"] == pytest.approx(-10.0)
    assert s.loc["a", "roofline_error_pct"] == pytest.approx(-60.0)
    assert s.loc["all", "median_abs_error_pct"] == pytest.approx(15.0)
    assert s.loc["all", "max_abs_error_pct"] == pytest.approx(20.0)
    assert s.loc["all", "roofline_median_abs_error_pct"] == pytest.approx(55.0)
    assert s.loc["all", "rho"] == pytest.approx(1.0)   # stage times in the same order


def modules(names):
    import timm.models   # registers every model with its module

    return {timm.models._registry._model_to_module[n] for n in names if timm.models.is_model(n)}   # shvitlab_* are the lab's own


def test_the_held_out_sets_share_no_timm_module_with_the_tuning_models_or_each_other():
    from analysis.core.predictor_sets import HELD_OUT_SETS, PREDICTOR_SETS

    sets = [PREDICTOR_SETS["tuning"].models] + [s.models for s in HELD_OUT_SETS[:5]]
    assert len(sets) == 6 and len(HELD_OUT_SETS) == 7   # sets 6 and 7: unseen models of earlier modules
    for i, held_out in enumerate(sets[1:], 1):
        assert len(held_out) == len(set(held_out)) >= 20 and len(modules(held_out)) >= 8
        assert all(not modules(held_out) & modules(earlier) for earlier in sets[:i])
    assert all(set(s.resolutions) <= set(s.models) for s in HELD_OUT_SETS)


def missed_modules(sets) -> set:
    """The timm modules of the models that `sets` (held-out sets, scored) missed by more than 25%."""
    results, missed = Path(__file__).resolve().parents[2] / "results", set()
    for s in sets:
        summary = pd.read_csv(results / s.file("summary"))
        missed |= modules(summary.loc[summary["error_pct"].abs() > 25, "model"])
    return missed


def test_set_6_holds_unseen_models_of_modules_whose_earlier_models_were_only_scored():
    """Its rule (`benchmarks/draw_held_out.py --set 6`): no model of any other set, one model from each of 20 or more
    modules of sets 1-4, none a module of the tuning models or of a model an earlier set missed by over 25%."""
    from analysis.core.predictor_sets import HELD_OUT_SETS, PREDICTOR_SETS

    six = PREDICTOR_SETS["held-out-6"]
    others = {n for s in PREDICTOR_SETS.values() if s is not six for n in s.models}
    assert not set(six.models) & others and len(modules(six.models)) == len(six.models) >= 20
    assert modules(six.models) <= set().union(*(modules(s.models) for s in HELD_OUT_SETS[:4]))
    missed = missed_modules(HELD_OUT_SETS[:5])
    assert len(missed) == 17 and not modules(six.models) & (missed | modules(PREDICTOR_SETS["tuning"].models))
    assert six.flush_denormal and not any(s.flush_denormal for s in HELD_OUT_SETS[:5])


def test_set_7_holds_unseen_models_of_modules_no_earlier_miss_came_from():
    """Its rule (`benchmarks/draw_held_out.py --set 7`): no model of any other set, from modules of sets 1-4, none a
    module of the tuning models or of a model sets 1-6 missed by over 25%; 4 modules set 6 did not use, then set 6's."""
    from analysis.core.predictor_sets import HELD_OUT_SETS, PREDICTOR_SETS

    six, seven = PREDICTOR_SETS["held-out-6"], PREDICTOR_SETS["held-out-7"]
    others = {n for s in PREDICTOR_SETS.values() if s is not seven for n in s.models}
    assert not set(seven.models) & others and len(seven.models) == len(set(seven.models)) == 24
    assert len(modules(seven.models)) == 19 and len(modules(seven.models) - modules(six.models)) == 4
    assert modules(seven.models) <= set().union(*(modules(s.models) for s in HELD_OUT_SETS[:4]))
    missed = missed_modules(HELD_OUT_SETS[:6])
    assert len(missed) == 21 and not modules(seven.models) & (missed | modules(PREDICTOR_SETS["tuning"].models))
    assert seven.flush_denormal and seven.batch_size == 16 and not seven.resolutions


def test_each_sets_committed_results_were_measured_with_its_registered_protocol():
    """The registry (`core.predictor_sets`) names the files of every committed run, and each of those runs
    predicted and timed exactly the set's models at its batch size and resolutions."""
    from analysis.core.predictor_sets import PREDICTOR_SETS

    results = Path(__file__).resolve().parents[2] / "results"
    for s in PREDICTOR_SETS.values():
        latency = pd.read_csv(results / s.file("latency"))
        assert list(dict.fromkeys(latency["model"])) == list(s.models), s.key
        if s.held_out:
            assert (results / s.file("machine")).is_file() and (results / s.file("summary")).is_file()
            stages = pd.read_csv(results / s.file("stages"))
            assert set(stages["model"]) == set(s.models) and set(stages["batch_size"]) == {s.batch_size}, s.key
            for model, side in s.resolutions.items():
                assert set(stages.loc[stages["model"] == model, "resolution"]) == {side}


def test_by_category_sums_the_ops_and_profiles_the_same_model(monkeypatch):
    from timm.layers import Attention

    import analysis.cost.breakdown as breakdown
    m = toy_machine()
    model = nn.Sequential(nn.Linear(256, 256), nn.GELU(), Attention(256, num_heads=4)).eval()
    assert model[2].fused_attn         # one SDPA kernel: the profile must not switch to matmul-softmax-matmul
    p = LatencyPredictor(model, torch.randn(8, 64, 256), m, fuse=False)

    def recount(*args, **kwargs):
        raise AssertionError("the profile counted the model again; the predictor has counted it")
    monkeypatch.setattr(breakdown, "CostAnalysis", recount)
    cats = p.by_category(profiled=True).set_index("category")
    ops = p.ops()
    assert cats["predicted_ms"].sum() == pytest.approx(p.predicted_ms())
    assert cats.loc["activation", "predicted_ms"] == pytest.approx(1e3 * ops.loc[ops["op"] == "aten.gelu",
                                                                                  "predicted_s"].sum())
    assert cats.loc["softmax", "n_ops"] == 0 and cats.loc["softmax", "profiled_ms"] == 0
    assert cats.loc["conv/matmul", "profiled_ms"] > cats.loc["activation", "profiled_ms"] > 0
    priced = cats[cats["predicted_ms"] > 0]
    assert priced["ratio"].to_numpy() == pytest.approx((priced["profiled_ms"] / priced["predicted_ms"]).to_numpy())
    assert cats.loc[cats["predicted_ms"] == 0, "ratio"].isna().all()    # nothing priced: no ratio
    assert model[2].fused_attn         # the model itself is untouched
