"""Counting on the meta device: the same counts as a real run, no weights in memory, no arithmetic."""
import json

import pytest
import timm
import torch
import torch.nn as nn

from analysis.core.errors import UserError
from analysis.cost.__main__ import main
from analysis.cost.counter import CostAnalysis, meta_copy

pytestmark = pytest.mark.usefixtures("one_thread")

TOTALS = ("macs", "mem_bytes", "bytes_read", "bytes_written", "activations", "params")


@pytest.mark.parametrize("name,side", [("shvit_s1", 224), ("shvitlab_s1", 224), ("deit_tiny_patch16_224", 224),
                                       ("swin_tiny_patch4_window7_224", 224), ("efficientvit_m0", 224),
                                       ("levit_128s", 224), ("convnext_atto", 224)])
def test_meta_counts_equal_a_real_run(name, side):
    model, x = timm.create_model(name), torch.randn(1, 3, side, side)
    real, meta = CostAnalysis(model, x), CostAnalysis(model, x, meta=True)
    assert {t: meta.total(t) for t in TOTALS} == {t: real.total(t) for t in TOTALS}
    stages = ["stage", "params", "macs", "mem_bytes", "activations", "tokens", "channels"]
    assert meta.by_stage()[stages].equals(real.by_stage()[stages])
    assert meta.unsupported_ops() == real.unsupported_ops() == {}
    assert all(p.device.type == "cpu" for p in model.parameters())  # the user's model is untouched
    assert all(p.is_meta for p in meta.model.parameters())


def test_meta_copy_holds_no_weights_and_keeps_requires_grad():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
    model[0].bias.requires_grad_(False)
    copy = meta_copy(model)
    pairs = list(zip(model.state_dict().values(), copy.state_dict().values()))
    assert all(c.is_meta and c.shape == t.shape and c.dtype == t.dtype for t, c in pairs)
    assert [p.requires_grad for p in copy.parameters()] == [True, False, True, True]
    assert not any(t.is_meta for t in model.state_dict().values())


def test_a_model_built_on_meta_is_counted_there():
    with torch.device("meta"):
        model = timm.create_model("efficientvit_m0")
    ca = CostAnalysis(model, torch.randn(1, 3, 224, 224))
    assert ca.meta and ca.total() == 79196672  # EfficientViT-M0: 79 M (paper), 79.2 M fused (fvcore)


def test_a_forward_that_reads_values_is_a_user_error_on_meta():
    class ReadsValues(nn.Module):
        def forward(self, x):
            return x[: int(x.abs().argmax())]

    with pytest.raises(UserError, match="ReadsValues cannot be counted on the meta device"):
        CostAnalysis(ReadsValues(), torch.randn(8), meta=True).total()
    assert CostAnalysis(ReadsValues(), torch.arange(8.0)).total("activations") > 0  # a real run counts it


def test_cli_meta_counts_as_a_real_run_and_refuses_latency(capsys):
    assert main(["--model", "shvitlab_s1", "--resolution", "64", "--json"]) == 0
    real = json.loads(capsys.readouterr().out)
    assert main(["--model", "shvitlab_s1", "--resolution", "64", "--json", "--meta"]) == 0
    assert json.loads(capsys.readouterr().out) == real
    with pytest.raises(SystemExit) as exc:
        main(["--model", "shvitlab_s1", "--meta", "--latency"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "drop --latency" in err


@pytest.mark.slow  # builds a 1.1 B-parameter model on meta: seconds, under 1 GB
def test_cli_counts_a_giant_model_on_meta(capsys):
    assert main(["--model", "vit_giant_patch14_dinov2", "--json", "--meta"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["resolution"] == 518 and out["params"] == pytest.approx(1136.5e6, rel=1e-3)
    assert out["macs"] / 1e9 == pytest.approx(1784.2, rel=1e-3)  # timm's table: 1784.2 GMACs at 518 px
    assert out["unsupported_ops"] == {}
