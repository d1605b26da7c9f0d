"""analysis.core.stages: stage maps of every supported family, and per-stage latency adds up."""
import time

import pytest
import timm
import torch
import torch.nn as nn

import shvit
from analysis.cost.counter import CostAnalysis
from analysis.cost.latency import model_latency, stage_latency
from analysis.core.stages import StageMap, stage_map


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name,n_stages,cls", [
    ("deit_tiny_patch16_224", 1, "VisionTransformer"), ("swin_tiny_patch4_window7_224", 4, "SwinTransformer"),
    ("levit_128s", 3, "LevitDistilled"), ("efficientvit_m0", 3, "EfficientVitMsra"), ("shvit_s1", 3, "SHViT"),
    ("shvitlab_fig2_a", 4, "SHViTNet"), ("resnet18", 4, "ResNet"),
])
def test_every_parameter_and_module_has_a_stage(name, n_stages, cls):
    model = timm.create_model(name)
    assert type(model).__name__ == cls
    smap = stage_map(model)
    assert smap.names == ("stem", *[f"stage{i + 1}" for i in range(n_stages)], "head")
    modules = dict(model.named_modules())
    assert all(m in modules for _, ms in smap.stages for m in ms)
    unmapped = [n for n, _ in model.named_parameters() if smap.stage_of(n) is None]
    assert all("." not in n for n in unmapped)  # only root tensors (cls_token, pos_embed) -> stem


@pytest.mark.parametrize("key", sorted(shvit.VARIANTS))
def test_every_shvit_config_maps_to_its_stages(key):
    cfg = shvit.get_config(key)
    smap = stage_map(timm.create_model(f"shvitlab_{key}"))
    assert smap.stages == (("stem", ("patch_embed",)),
                           *[(f"stage{i + 1}", (f"stages.{i}",)) for i in range(cfg.num_stages)],
                           ("head", ("global_pool", "flatten", "head")))


@pytest.mark.parametrize("key", ["fig2_a", "stem4", "stem32"])
def test_stage_tokens_follow_the_config(key):
    cfg = shvit.get_config(key)
    st = CostAnalysis(timm.create_model(f"shvitlab_{key}"), torch.randn(1, 3, 224, 224)).by_stage()
    sides = cfg.stage_resolutions(224)
    assert list(st["tokens"]) == [sides[0] ** 2, *[s * s for s in sides], 1]
    assert list(st["channels"][1:-1]) == list(cfg.embed_dims)


def test_swin_tokens_read_channels_last():
    st = CostAnalysis(timm.create_model("swin_tiny_patch4_window7_224"), torch.randn(1, 3, 224, 224)).by_stage()
    assert list(st["tokens"]) == [3136, 3136, 784, 196, 49, 1]
    assert list(st["channels"]) == [96, 96, 192, 384, 768, 1000]


def test_stage_latencies_add_up_to_the_model_latency():
    """Sum of the stage medians vs the interleaved whole-model median. The machine is shared, so a
    noisy attempt is retried: a probe that loses or double-counts time fails every attempt."""
    model = timm.create_model("shvitlab_s1").eval()
    x = torch.randn(1, 3, 160, 160)
    ratios = []
    for _ in range(3):
        stages = stage_latency(model, x, repeats=25, warmup=3)
        ratios.append(stages["latency_ms"].sum() / stages.attrs["model_latency_ms"])
        if abs(ratios[-1] - 1) < 0.10:
            break
    assert abs(ratios[-1] - 1) < 0.10, ratios
    assert list(stages["stage"]) == ["stem", "stage1", "stage2", "stage3", "head"]
    assert (stages["latency_ms"] > 0).all()
    assert not torch.nn.modules.module._global_forward_pre_hooks   # the probe is removed
    assert model_latency(model, x, repeats=3, warmup=1) > 0


class _Sleep(nn.Module):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x


class _IteratedStages(nn.Module):
    """Stages whose containers the forward iterates without calling them, as timm's relative-position ViT, HRNet
    and Twins do: a probe on the containers alone never fires."""

    def __init__(self):
        super().__init__()
        self.stem, self.stage1, self.stage2 = _Sleep(0.002), nn.ModuleList([_Sleep(0.01)] * 2), \
            nn.ModuleList([_Sleep(0.03)])

    def forward(self, x):
        for block in [self.stem, *self.stage1, *self.stage2]:
            x = block(x)
        return x


def test_stages_a_model_iterates_are_timed():
    smap = StageMap((("stem", ("stem",)), ("stage1", ("stage1",)), ("stage2", ("stage2",))))
    lat = stage_latency(_IteratedStages(), torch.zeros(1), repeats=3, warmup=1, stages=smap).set_index("stage")
    slept = {"stem": 0.002, "stage1": 0.02, "stage2": 0.03}   # a sleep lasts at least that long
    assert all(slept[s] <= lat.latency_ms[s] / 1e3 < slept[s] + 0.02 for s in slept), lat


@pytest.mark.slow  # two full-size timm models
@pytest.mark.parametrize("name,side,gmacs", [("cait_xxs24_224", 224, 2.5), ("mvitv2_tiny", 224, 4.7),
                                            ("convnext_atto", 224, 0.55), ("crossvit_tiny_240", 240, 1.6)])
def test_models_outside_the_papers_are_counted(name, side, gmacs):
    """CaiT passes its class token (a parameter) straight to blocks, which tripped ModuleTracker under no_grad;
    timm's MViTv2 names its feature taps `block.N` for `stages.N`; ConvNeXt runs `as_strided_` and CrossViT
    `upsample_bicubic2d`, which had no rule. All count every op, at timm's published GMACs, and the model's
    parameters still require grad afterwards."""
    model = timm.create_model(name)
    ca = CostAnalysis(model, torch.randn(1, 3, side, side), fuse=False)
    assert ca.total("macs") / 1e9 == pytest.approx(gmacs, rel=0.02) and ca.unsupported_ops() == {}
    assert all(p.requires_grad for p in model.parameters())
    if name == "mvitv2_tiny":
        assert stage_map(model).modules("stage1") == ("stages.0",) and ca.by_stage().stage.tolist()[-1] == "head"


class Net(torch.nn.Module):
    """A custom model with neither feature_info nor a registered map: a stem, a body whose blocks sit in a
    Sequential one level down, and a head."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 4, stride=4)
        self.body = torch.nn.Module()
        self.body.blocks = torch.nn.Sequential(*[torch.nn.Conv2d(8, 8, 3, padding=1) for _ in range(3)])
        self.body.norm = torch.nn.BatchNorm2d(8)
        self.head = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10))

    def forward(self, x):
        return self.head(self.body.norm(self.body.blocks(self.stem(x))))


def test_a_model_without_stages_gets_per_block_rows_and_a_warning(capsys):
    """Not a silent `stage1` holding everything: one row per block of the largest container, the stem and head
    with their own parameters and macs, and one line on stderr saying so."""
    model = Net()
    ca = CostAnalysis(model, torch.randn(1, 3, 32, 32), fuse=False)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: Net has no feature_info") and "body.blocks" in err[0]
    st = ca.by_stage().set_index("stage")
    assert list(st.index) == ["stem", "block1", "block2", "block3", "head"]
    assert st.loc["stem", "params"] == 3 * 8 * 16 + 8 and st.loc["stem", "macs"] == 8 * 8 * 8 * 3 * 16
    assert (st.loc["block1":"block3", "macs"] == 8 * 8 * 8 * 8 * 9).all()
    assert st.loc["head", "params"] == 8 * 10 + 10 + 2 * 8  # the linear and the body's norm, after the blocks
    assert st["params"].sum() == ca.total("params") and st["macs"].sum() == ca.total("macs")


def test_registered_stage_map_wins_and_is_keyed():
    from analysis.core.errors import UserError
    from analysis.core.stages import StageMap, register_stage_map, unregister_stage_map

    def two_stages(model):
        return StageMap((("stem", ("stem",)), ("stage1", ("body.blocks.0", "body.blocks.1")),
                         ("stage2", ("body.blocks.2", "body.norm")), ("head", ("head",))))

    def ten_classes(m):
        return isinstance(m, Net) and m.head[-1].out_features == 10

    register_stage_map(Net, two_stages)
    try:
        assert stage_map(Net()).names == ("stem", "stage1", "stage2", "head")
        with pytest.raises(UserError, match="already registered for .*Net; pass replace=True"):
            register_stage_map(Net, two_stages)
        register_stage_map(ten_classes, lambda m: StageMap.of_container(m, "head"))  # registered later: wins
        assert stage_map(Net()).names == ("stem", "stage1", "stage2", "stage3", "head")
    finally:
        unregister_stage_map(ten_classes)
        assert unregister_stage_map(Net) is two_stages
    with pytest.raises(UserError, match="no stage map is registered"):
        unregister_stage_map(Net)


def test_a_timm_model_without_a_registered_map_reads_feature_info():
    model = timm.create_model("convnext_atto")
    assert stage_map(model).stages == (("stem", ("stem",)), *[(f"stage{i + 1}", (f"stages.{i}",)) for i in range(4)],
                                       ("head", ("norm_pre", "head")))


def test_a_feature_tap_at_the_root_is_not_a_stage():
    """TResNet's feature_info starts with '' (its input): the stages are body.layer1..4, not an error."""
    with torch.device("meta"):
        model = timm.create_model("tresnet_m")
    smap = stage_map(model)
    assert smap.names == ("stem", "stage1", "stage2", "stage3", "stage4", "head")
    assert smap.modules("stage1") == ("body.layer1",) and smap.modules("head") == ("head",)
