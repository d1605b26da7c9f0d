"""analysis.cost.macro_design: per-stage cost + latency, and the SHViT Fig. 2 table."""
import pytest
import timm
import torch

import shvit
from analysis.cost.counter import CostAnalysis
from analysis.cost.macro_design import macro_design_table, stage_costs


pytestmark = pytest.mark.usefixtures("one_thread")


def test_stage_costs_sum_to_the_model():
    model = timm.create_model("shvitlab_s1")
    x = torch.randn(1, 3, 96, 96)
    df = stage_costs(model, x, repeats=3, warmup=1)
    ca = CostAnalysis(model, x)
    assert df["macs"].sum() == ca.total() and df["mem_bytes"].sum() == ca.total("mem_bytes")
    assert (df["latency_ms"] > 0).all() and df.attrs["model_latency_ms"] > 0


def test_macro_design_table_fig2():
    df = macro_design_table(["shvitlab_fig2_a", "shvitlab_fig2_b256", "shvitlab_stem32"], repeats=0,
                            progress=False)
    assert {"model", "design", "resolution", "stage", "tokens", "macs", "mem_bytes", "latency_ms"} <= set(df.columns)
    a = df[df["model"] == "shvitlab_fig2_a"].set_index("stage")
    assert list(a.index) == ["stem", "stage1", "stage2", "stage3", "stage4", "head"]
    assert list(a["tokens"]) == [3136, 3136, 784, 196, 49, 1]  # 4x4 stem: 56x56 tokens in stage 1
    b256 = df[df["model"] == "shvitlab_fig2_b256"]
    assert (b256["resolution"] == 256).all() and list(b256["tokens"])[1:4] == [256, 64, 16]
    # Fig. 2's point: the 4x4 stem's early, token-heavy stages move more memory than (b')'s at 256 px
    early = ["stem", "stage1"]
    assert a.loc[early, "mem_bytes"].sum() > 1.4 * b256.set_index("stage").loc[early, "mem_bytes"].sum()
    s32 = df[df["model"] == "shvitlab_stem32"]
    assert list(s32["tokens"]) == [49, 49, 16, 4, 1] and s32["latency_ms"].isna().all()
    assert df["design"].iloc[0] == shvit.VARIANTS["fig2_a"].description
