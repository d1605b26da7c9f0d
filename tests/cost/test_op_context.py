"""OpContext: every op timed inside the model and alone, priced as the predictor prices it."""
import time

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from analysis.cost.op_context import OpContext
from analysis.cost.predictor import LatencyPredictor
from tests.cost.test_predictor import toy_machine


class Block(nn.Module):
    """conv, an in-place ReLU, a residual add in place, a linear head: out-of-place and in-place ops; keeps its
    last output."""

    def __init__(self):
        super().__init__()
        self.conv, self.head = nn.Conv2d(3, 8, 3, padding=1), nn.Linear(8, 4)

    def forward(self, x):
        y = F.relu(self.conv(x), inplace=True)
        y.add_(1.0)
        self.last = self.head(y.mean((2, 3)))
        return self.last


def test_each_op_is_priced_as_the_predictor_prices_it():
    torch.manual_seed(0)
    model, x, m = Block().eval(), torch.randn(2, 3, 16, 16), toy_machine()
    ops = OpContext(model, x, m, passes=2, warmup=1).by_op()
    predicted = LatencyPredictor(model, x, m, fuse=False).ops()
    predicted = predicted[predicted["kind"] != "free"]
    assert list(ops["op"]) == list(predicted["op"])   # the same ops, in the same order
    assert ops["predicted_ms"].to_numpy() == pytest.approx(predicted["kernel_s"].to_numpy() * 1e3, rel=1e-12)
    assert (ops[["alone_ms", "in_model_ms"]] > 0).all().all()


def test_timing_an_in_place_op_alone_does_not_change_the_pass():
    torch.manual_seed(0)
    model, x = Block().eval(), torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x).clone()
    OpContext(model, x, toy_machine(), passes=1, warmup=0).by_op()
    assert torch.equal(model.last, expected)   # add_ ran once in the pass it was timed in, not 4 times


COLD = {"next_call_slow": False}


@torch.library.custom_op("op_context_test::cold_copy", mutates_args=())
def cold_copy(x: torch.Tensor) -> torch.Tensor:
    """A copy whose first call after the model asks for it takes 30 ms more, as a cold cache would slow an op
    inside a model; repeated alone, it is fast."""
    if COLD["next_call_slow"]:
        COLD["next_call_slow"] = False
        time.sleep(0.03)
    return x.clone()


class Cold(nn.Module):
    def forward(self, x):
        COLD["next_call_slow"] = True
        return cold_copy(x) + 1.0


def test_a_slowdown_inside_the_model_is_put_on_the_context_not_on_the_rate_model():
    ops = OpContext(Cold(), torch.randn(64, 64), toy_machine(), passes=2, warmup=1)
    rows = ops.by_op().set_index("op")
    assert rows.loc["aten.cold_copy", "in_model_ms"] >= 30.0 > 10 * rows.loc["aten.cold_copy", "alone_ms"]
    assert rows.loc["aten.add", "in_model_ms"] < 30.0
    cats = ops.by_category().set_index("category")
    assert cats.loc["other", "context_ratio"] > 10 and list(cats.index) == ["element-wise", "other"]
    assert cats["rate_ratio"].to_numpy() == pytest.approx((cats["alone_ms"] / cats["predicted_ms"]).to_numpy())


def test_subnormal_inputs_are_counted():
    tiny = torch.finfo(torch.float32).tiny
    x = torch.tensor([0.0, tiny / 4, tiny / 2, 1.0, -tiny / 8, tiny, 2.0, 3.0])   # 3 of 8 subnormal
    timed = OpContext(Cold(), x, toy_machine(), passes=1, warmup=0)
    ops = timed.by_op().set_index("op")
    assert ops.loc["aten.cold_copy", "subnormal_pct"] == pytest.approx(37.5)
    assert ops.loc["aten.add", "subnormal_pct"] == pytest.approx(37.5)   # a copy of the same values, and 1.0
    cats = timed.by_category().set_index("category")
    assert (cats["subnormal_ms"] == cats["in_model_ms"]).all()
    normal = OpContext(Cold(), torch.ones(8), toy_machine(), passes=1, warmup=0).by_category()
    assert (normal["subnormal_ms"] == 0).all()
