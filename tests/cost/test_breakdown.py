"""analysis.breakdown: categories, shares, cost columns, figure, CLI errors."""
import pandas as pd
import pytest
import timm
import torch
import torch.nn as nn

import shvit  # noqa: F401
from analysis.breakdown import main
from analysis.cost.breakdown import (CATEGORIES, MEMORY_BOUND, breakdown_table, categorize, memory_bound_shares,
                                     runtime_breakdown)
from analysis.cost.counter import CostAnalysis
from analysis.cost.plots import plot_breakdown


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("op,cat", [
    ("aten::linear", "conv/matmul"), ("aten.convolution", "conv/matmul"),
    ("aten::scaled_dot_product_attention", "conv/matmul"), ("aten::reshape", "reshape/copy"),
    ("aten.clone", "reshape/copy"), ("aten::permute", "reshape/copy"), ("aten::add", "element-wise"),
    ("aten.mul.Tensor", "element-wise"), ("aten::layer_norm", "normalisation"), ("aten.native_group_norm",
                                                                                 "normalisation"),
    ("aten::softmax", "softmax"), ("aten::gelu", "activation"), ("aten::hardswish", "activation"),
    ("aten::adaptive_avg_pool2d", "other"),
])
def test_categorize(op, cat):
    assert categorize(op) == cat


def test_memory_bound_marks():
    assert not MEMORY_BOUND["conv/matmul"]
    assert all(MEMORY_BOUND[c] for c in ("reshape/copy", "element-wise", "normalisation", "softmax", "activation"))


def test_memory_bound_shares_of_runtime_and_bytes_per_model():
    df = pd.DataFrame({"model": ["y", "x", "x", "x"],
                       "category": ["conv/matmul", "conv/matmul", "softmax", "reshape/copy"],
                       "memory_bound": [False, False, True, True], "share": [1.0, 0.6, 0.3, 0.1],
                       "mem_bytes": [5, 10, 30, 60]})
    shares = memory_bound_shares(df)
    assert list(shares.index) == ["y", "x"]  # table order, as the bars are drawn
    assert shares.loc["x"].tolist() == pytest.approx([0.4, 0.9])
    assert shares.loc["y"].tolist() == [0, 0]  # no memory-bound row at all


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.norm = nn.Linear(32, 32), nn.LayerNorm(32)

    def forward(self, x):
        y = self.fc(x).transpose(1, 2).contiguous().transpose(1, 2)
        return torch.relu(self.norm(y + x)).softmax(-1)


def test_every_category_the_toy_runs_gets_time_and_cost():
    x = torch.randn(8, 64, 32)
    df = runtime_breakdown(Toy(), x, repeats=2, fuse=False).set_index("category")
    assert list(df.index) == list(CATEGORIES)
    assert df["share"].sum() == pytest.approx(1.0)
    for cat in ("conv/matmul", "reshape/copy", "element-wise", "normalisation", "softmax", "activation"):
        assert df.loc[cat, "time_ms"] > 0 and df.loc[cat, "mem_bytes"] > 0, cat
    assert df.loc["conv/matmul", "macs"] == 8 * 64 * 32 * 32
    assert df.loc["reshape/copy", "mem_bytes"] == 2 * 4 * x.numel()  # one contiguous copy
    # matmul has by far the highest arithmetic intensity (norms count 5 macs per element, fvcore-style)
    assert df.loc["conv/matmul", "flops_per_byte"] > 4 * df["flops_per_byte"].drop("conv/matmul").max()


def test_table_and_figure_for_a_model():
    df = breakdown_table(["shvitlab_s1", "deit_tiny_patch16_224"], batch_size=1, resolution=64, repeats=1,
                         progress=False)
    assert set(df["model"]) == {"shvitlab_s1", "deit_tiny_patch16_224"}
    assert df.groupby("model")["share"].sum().tolist() == pytest.approx([1.0, 1.0])
    s1 = df[df["model"] == "shvitlab_s1"]
    assert s1["macs"].sum() == CostAnalysis(timm.create_model("shvitlab_s1"), torch.randn(1, 3, 64, 64)).total()
    fig = plot_breakdown(df)
    assert len(fig.axes[0].patches) == 2 * len(CATEGORIES)


def test_cli_bad_model_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--model", "deit_tiny"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "unknown model" in err and err.count("\n") == 1
