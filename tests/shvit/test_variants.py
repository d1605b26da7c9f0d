"""SHViT S1..S4 against the paper (Table 1) and against timm's own shvit_s1..s4."""
from analysis.core.reference import load_reference
import pytest
import timm
import torch
from fvcore.nn import FlopCountAnalysis

import shvit
from tests.helpers import randomize_batchnorm

PAPER = load_reference("shvit_variants").set_index("variant")


def fvcore_macs(model, side):
    fca = FlopCountAnalysis(model, torch.randn(1, 3, side, side))
    fca.unsupported_ops_warnings(False)
    fca.uncalled_modules_warnings(False)
    return fca.total()


@pytest.mark.parametrize("variant", ["S1", "S2", "S3", "S4"])
def test_params_and_macs_match_paper(variant):
    paper = PAPER.loc[variant]
    model = timm.create_model(f"shvitlab_{variant.lower()}").eval()
    cfg = model.cfg
    assert cfg.embed_dims == tuple(int(x) for x in paper.embed_dim.split("-"))
    assert cfg.depths == tuple(int(x) for x in paper.depth.split("-"))
    assert cfg.stage_partial_dims == tuple(int(x) for x in paper.partial_dim.split("-"))
    assert cfg.img_size == paper.resolution
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert params == pytest.approx(paper.params_m, rel=0.01)
    # The paper (official code) counts fvcore MACs on the BN-folded deploy model.
    macs = fvcore_macs(model.fuse(), cfg.img_size) / 1e6
    assert macs == pytest.approx(paper.macs_m, rel=0.01)


@pytest.mark.parametrize("variant", ["s1", "s2", "s3", "s4"])
def test_equivalent_to_timm_shvit(variant):
    ref = randomize_batchnorm(timm.create_model(f"shvit_{variant}")).eval()
    ours = timm.create_model(f"shvitlab_{variant}").eval()
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    side = ours.cfg.img_size
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        diff = (ours(x) - ref(x)).abs().max().item()
    assert diff <= 1e-5


def test_registry_does_not_shadow_timm():
    assert type(timm.create_model("shvit_s1")).__module__ == "timm.models.shvit"
    assert isinstance(timm.create_model("shvitlab_s1"), shvit.SHViTNet)
    assert set(timm.list_models("shvitlab_*")) == {shvit.PREFIX + k for k in shvit.VARIANTS}
    assert timm.create_model("shvitlab_s4").pretrained_cfg["input_size"] == (3, 256, 256)
    assert timm.create_model("shvitlab_s1", num_classes=10).head.l.out_features == 10


def test_fused_model_gives_same_outputs_without_batchnorm():
    model = randomize_batchnorm(shvit.create("s1"), seed=3).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        before = model(x)
        model.fuse()
        after = model(x)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert (before - after).abs().max().item() <= 1e-4
    assert before.abs().max().item() > 1e-2  # the comparison is not between two near-zero outputs
