"""timm's generic model checks, run on the `shvitlab_*` models and on timm's `shvit_s1` as a control.

A port (own code, same assertions) of the checks in timm 1.0.31's `tests/test_models.py`
(the copy in the timm-1.0.31 sdist) that timm runs on its `shvit_*` models:

    test_model_forward                      -> test_forward (+ grad checkpointing gives the same output)
    test_model_backward                     -> test_backward
    test_model_default_cfgs (+ the API contract, reset_classifier device / dtype, factory device and
        frozen-params helpers it calls)     -> test_default_cfgs
    test_reset_classifier_keeps_pool        -> test_reset_classifier_keeps_pool
    test_model_forward_features             -> test_features_only
    test_model_forward_intermediates_features -> test_features_only_getter
    test_model_forward_intermediates        -> test_forward_intermediates
    test_prune_intermediate_layers_contract -> test_prune_intermediate_layers
    test_head_hidden_size                   -> test_head_hidden_size
    test_mobile_model_fusion_features       -> test_fusion_features
    test_model_forward_torchscript          -> test_torchscript
    test_model_forward_fx                   -> test_forward_fx
    test_model_backward_fx                  -> test_backward_fx
    test_model_forward_fx_torchscript       -> test_fx_torchscript

Input sizes follow timm: the pretrained cfg's input size, each side capped at the check's target
(forward 384, backward / torchscript / fx 128, features 96; default_cfgs at the full size).
default_cfgs runs its forwards on real CPU tensors (timm's choice on torch without device
contexts: meta-device forwards are slower here) and its device / dtype checks on the meta device.
Additions beyond timm are marked "not in timm".

The control passing every check shows the port asks what timm asks. To stay near 90 s on 2 CPU
cores, by default the checks run on the control and every variant with a config of its own (fig2_b,
stem16, t6_ratio4_67 and fig6_partial repeat S1 / S3 / S2); the head checks (pool, head width) on
the control and S1..S4; the ones that script, trace or fuse (~15 s a model) on the control, S1 and
t6_mhsa (the mixer layout furthest from S1..S4's). SHVIT_CONTRACT_ALL=1 runs every check on every
registered name (~7 min).
"""
import copy
import fnmatch
import inspect
import math
import os

import pytest
import timm
import torch
from timm.layers import get_channel_dim, get_spatial_dim, set_scriptable
from timm.models import FeatureInfo, get_notrace_functions, get_notrace_modules
from timm.models._features import FeatureGetterNet
from timm.models._manipulate import group_parameters
from timm.utils import reparameterize_model
from torchvision.models.feature_extraction import NodePathTracer, create_feature_extractor, get_graph_node_names

import shvit

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")]

CONTROL = "shvit_s1"
PAPER = [shvit.PREFIX + k for k in ("s1", "s2", "s3", "s4")]
# Variants whose config repeats an earlier one's (fig2_b = S1, stem16 = S1, ...) build identical models.
_FIRST_WITH_CFG = {}
for _key, _variant in shvit.VARIANTS.items():
    _FIRST_WITH_CFG.setdefault(_variant.cfg, shvit.PREFIX + _key)
ALL_CHECKS_EVERYWHERE = os.environ.get("SHVIT_CONTRACT_ALL") == "1"
MODELS = [CONTROL, *(shvit.PREFIX + k for k in shvit.VARIANTS)] if ALL_CHECKS_EVERYWHERE else \
    [CONTROL, *_FIRST_WITH_CFG.values()]
HEAD_MODELS = MODELS if ALL_CHECKS_EVERYWHERE else [CONTROL, *PAPER]
HEAVY_MODELS = MODELS if ALL_CHECKS_EVERYWHERE else [CONTROL, "shvitlab_s1", "shvitlab_t6_mhsa"]

# timm's per-check targets for the input side (each pretrained-cfg side is capped at the target)
FWD_SIZE, MAX_FWD_OUT_SIZE = 384, 448
BWD_SIZE = JIT_SIZE = FX_SIZE = 128
FEAT_SIZE = 96


def _input_size(name: str, target: int) -> tuple:
    """The pretrained cfg's (C, H, W) with each side capped at `target` (none of these cfgs fix the size)."""
    input_size = timm.get_pretrained_cfg_value(name, "input_size")
    return tuple(min(s, target) for s in input_size)


def _fx_model(model: torch.nn.Module, train: bool = False) -> torch.nn.Module:
    """The model as a torchvision feature extractor returning its output node, traced as timm traces it.

    In train mode the return nodes are those feeding the graph's output (a model may output several).
    """
    tracer_kwargs = dict(
        leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions(), param_shapes_constant=True)
    train_nodes, eval_nodes = get_graph_node_names(model, tracer_kwargs=tracer_kwargs)
    train_return = [train_nodes[-1]]
    if train:
        graph_nodes = list(reversed(NodePathTracer(**tracer_kwargs).trace(model).nodes))
        names = [n.name for n in graph_nodes]
        train_return = [train_nodes[-names.index(n.name)] for n in graph_nodes[0].all_input_nodes]
    return create_feature_extractor(
        model, train_return_nodes=train_return, eval_return_nodes=[eval_nodes[-1]], tracer_kwargs=tracer_kwargs)


def _assert_feature_shapes(outputs, channels, reductions, input_size, batch_size, check_min_side=True):
    """NCHW features with their channels, at most ceil(side / reduction) + 1 on a side and, if
    `check_min_side`, more than side / (2 reduction) (the check timm's features_only test adds)."""
    feat_axis, spatial_axis = get_channel_dim("NCHW"), get_spatial_dim("NCHW")
    assert len(outputs) == len(channels)
    for c, r, o in zip(channels, reductions, outputs):
        assert o.shape[feat_axis] == c
        for axis, side in zip(spatial_axis, input_size[-2:]):
            assert o.shape[axis] <= math.ceil(side / r) + 1
            if check_min_side:
                assert o.shape[axis] > side / (2 * r), f"feature reduction {r} too small"
        assert o.shape[0] == batch_size
        assert not torch.isnan(o).any()


@pytest.mark.parametrize("name", MODELS)
def test_forward(name):
    model = timm.create_model(name).eval()
    x = torch.randn(1, *_input_size(name, FWD_SIZE))
    out = model(x)
    assert out.shape[0] == 1
    assert not torch.isnan(out).any(), "Output included NaNs"

    model.set_grad_checkpointing()
    torch.testing.assert_close(model(x), out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_backward(name):
    model = timm.create_model(name, num_classes=42).train()
    num_params = sum(p.numel() for p in model.parameters())
    out = model(torch.randn(2, *_input_size(name, BWD_SIZE)))
    out.mean().backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None], "params without gradient"
    assert out.shape[-1] == 42
    assert sum(p.grad.numel() for p in model.parameters()) == num_params
    assert not torch.isnan(out).any(), "Output included NaNs"


def _assert_api_contract(model, name):
    """Unknown kwargs raise; reset_classifier keeps the pool by default; group_matcher / no_weight_decay fit."""
    with torch.device("meta"), pytest.raises(TypeError):
        timm.create_model(name, device="meta", not_a_model_arg=1)
    assert inspect.signature(model.reset_classifier).parameters["global_pool"].default is None
    groups = group_parameters(model, model.group_matcher(coarse=False), reverse=True)
    assert len(set(groups.values())) > 1, "group_matcher() puts all params in a single group"
    names = [n for n, _ in model.named_parameters()]
    for pattern in model.no_weight_decay():
        assert any(fnmatch.fnmatch(n, pattern) for n in names), f"no_weight_decay() entry {pattern!r} matches nothing"


def _assert_reset_classifier_follows_model(model):
    """A new classifier takes the model's device, dtype and train / eval mode."""
    model.to(device="meta", dtype=torch.float64)
    ref = next(model.parameters())
    model.reset_classifier(0)
    model.reset_classifier(2)
    params = list(model.get_classifier().parameters())
    assert params
    assert all(p.device == ref.device and p.dtype == ref.dtype for p in params)
    assert all(m.training == model.training for m in model.modules())


@pytest.mark.parametrize("name", MODELS)
def test_default_cfgs(name):
    model = timm.create_model(name, device="cpu", dtype=torch.float32).eval()
    _assert_api_contract(model, name)
    assert model.num_classes >= 0 and model.num_features > 0 and model.head_hidden_size > 0
    state_dict = model.state_dict()
    cfg = model.default_cfg
    assert model.in_chans == cfg["input_size"][0]
    pool_size = cfg["pool_size"]
    (h_axis, w_axis), feat_axis = get_spatial_dim("NCHW"), get_channel_dim("NCHW")
    assert max(cfg["input_size"]) <= MAX_FWD_OUT_SIZE
    x = torch.randn(1, *cfg["input_size"])

    with torch.no_grad():
        # forward_features is unpooled at pool_size, forward_head(pre_logits) has head_hidden_size
        features = model.forward_features(x)
        pre_logits = model.forward_head(features, pre_logits=True)
        assert (features.shape[h_axis], features.shape[w_axis]) == pool_size
        assert features.shape[feat_axis] == model.num_features
        assert pre_logits.shape[1] == model.head_hidden_size
        model.to(torch.bfloat16)  # a dtype change after a forward reaches the output (64 px: bf16 is slow on CPU)
        assert model(x[..., :64, :64].to(torch.bfloat16)).dtype == torch.bfloat16
        model.to(torch.float32)

        # no classifier: pooled pre-logits; no classifier and no pooling: the unpooled features
        model.reset_classifier(0)
        assert model.num_classes == 0
        out = model(x)
        assert out.ndim == 2 and out.shape[1] == model.head_hidden_size and out.shape == pre_logits.shape
        model.reset_classifier(0, "")
        out = model(x)
        assert out.ndim == 4 and (out.shape[h_axis], out.shape[w_axis]) == pool_size

        # the same through the constructor
        model = timm.create_model(name, num_classes=0, device="cpu", dtype=torch.float32).eval()
        out = model(x)
        assert out.shape == pre_logits.shape and out.shape[1] == model.head_hidden_size
        model = timm.create_model(name, num_classes=0, global_pool="", device="cpu", dtype=torch.float32).eval()
        out = model(x)
        assert out.ndim == 4 and (out.shape[h_axis], out.shape[w_axis]) == pool_size

    # the cfg names real parameters
    if cfg.get("num_classes"):
        assert cfg["classifier"] + ".weight" in state_dict
    assert cfg["first_conv"] + ".weight" in state_dict

    _assert_reset_classifier_follows_model(model)
    # the factory places every tensor on the device it is given, without a device context
    model = timm.create_model(name, device="meta", dtype=torch.float32)
    assert all(t.device.type == "meta" for t in [*model.parameters(), *model.buffers()])
    # rebuilding the head keeps frozen params frozen
    model.requires_grad_(False)
    model.reset_classifier(0)
    model.reset_classifier(0, "")
    assert not [n for n, p in model.named_parameters() if p.requires_grad]


@pytest.mark.parametrize("name", HEAD_MODELS)
def test_reset_classifier_keeps_pool(name):
    model = timm.create_model(name, global_pool="max").eval()
    # timm's 64 px would leave these stride-64..128 models a 1x1 map, where max and avg pools agree
    side = 2 * model.feature_info[-1]["reduction"]
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(x), pre_logits=True)
        model.reset_classifier(5)
        torch.testing.assert_close(model.forward_head(model.forward_features(x), pre_logits=True), expected)
        assert model(x).shape == (2, 5)
        model.reset_classifier(5, "avg")
        assert not torch.allclose(model.forward_head(model.forward_features(x), pre_logits=True), expected)


@pytest.mark.parametrize("name", MODELS)
def test_features_only(name):
    model = timm.create_model(name, features_only=True).eval()
    channels, reductions = model.feature_info.channels(), model.feature_info.reduction()
    assert len(channels) >= 3
    input_size = _input_size(name, FEAT_SIZE)
    _assert_feature_shapes(model(torch.randn(1, *input_size)), channels, reductions, input_size, 1)


@pytest.mark.parametrize("name", MODELS)
def test_features_only_getter(name):
    """features_only through forward_intermediates (timm's FeatureGetterNet)."""
    model = timm.create_model(name, features_only=True, feature_cls="getter").eval()
    input_size = _input_size(name, FEAT_SIZE)
    _assert_feature_shapes(model(torch.randn(1, *input_size)), model.feature_info.channels(),
                           model.feature_info.reduction(), input_size, 1, check_min_side=False)


@pytest.mark.parametrize("name", MODELS)
def test_forward_intermediates(name):
    model = timm.create_model(name).eval()
    info = FeatureInfo(model.feature_info, len(model.feature_info))
    channels, reductions = info.channels(), info.reduction()
    assert len(channels) >= 3
    input_size = _input_size(name, FEAT_SIZE)
    x = torch.randn(1, *input_size)
    out, intermediates = model.forward_intermediates(x, output_fmt="NCHW")
    _assert_feature_shapes(intermediates, channels, reductions, input_size, 1, check_min_side=False)
    torch.testing.assert_close(out, model.forward_features(x), rtol=1e-5, atol=1e-8)

    model.set_grad_checkpointing()
    out3, _ = model.forward_intermediates(x, output_fmt="NCHW")
    torch.testing.assert_close(out, out3, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", HEAVY_MODELS)
def test_prune_intermediate_layers(name):
    """Pruned and stop_early taps equal the full model's; pruned models keep their output and train."""
    model = timm.create_model(name).eval()
    x = torch.randn(2, *_input_size(name, FEAT_SIZE))
    last = len(model.feature_info) - 1
    with torch.no_grad():
        expected = model(x)
        taps = model.forward_intermediates(x, intermediates_only=True)
        pruned = copy.deepcopy(model)
        pruned.prune_intermediate_layers([last], prune_head=False)
        torch.testing.assert_close(pruned(x), expected, msg="prune_head=False at the last index changed the output")

    for i in range(last + 1):
        with torch.no_grad():
            selected = model.forward_intermediates(x, indices=[i], stop_early=True, intermediates_only=True)
            torch.testing.assert_close(selected[0], taps[i], msg=f"stop_early tap {i}")

            pruned = copy.deepcopy(model)
            take_indices = pruned.prune_intermediate_layers([i])
            selected = pruned.forward_intermediates(x, indices=take_indices, intermediates_only=True)
            torch.testing.assert_close(selected[0], taps[i], msg=f"pruned tap {i}")

            pruned = copy.deepcopy(model)  # as features_only: no norm, features end at the tap
            take_indices = pruned.prune_intermediate_layers([i], prune_norm=True)
            if i < last:
                torch.testing.assert_close(pruned.forward_features(x), taps[i], msg=f"pruned features {i}")

        pruned.train()
        selected = pruned.forward_intermediates(x, indices=take_indices, intermediates_only=True)
        sum(f.sum() for f in [*selected, pruned.forward_features(x)]).backward()
        unused = [n for n, p in pruned.named_parameters() if p.requires_grad and p.grad is None]
        assert not unused, f"pruned to {i}, unused params: {unused}"


@pytest.mark.parametrize("name", HEAD_MODELS)
def test_head_hidden_size(name):
    """head_hidden_size is the pre-logits width without a classifier, after reset_classifier and pruning."""
    model = timm.create_model(name, num_classes=0).eval()
    x = torch.randn(2, 3, 64, 64)

    def check_width(num_classes):
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape[1] == model.head_hidden_size
        assert model(x).shape[1] == (num_classes or model.head_hidden_size)

    with torch.no_grad():
        check_width(0)
        model.reset_classifier(7, "avg")
        check_width(7)
        with pytest.raises(AssertionError):  # concat pooling would change the width: refused, as timm's shvit
            model.reset_classifier(7, "catavgmax")
        index = len(model.feature_info) - 2
        model.prune_intermediate_layers([index], prune_norm=True)
        model.reset_classifier(7, "avg")
        check_width(7)
        assert model.head_hidden_size == model.feature_info[index]["num_chs"]


@pytest.mark.parametrize("name", HEAVY_MODELS)
def test_fusion_features(name):
    """BN folding keeps outputs and intermediates; fused feature getters script and train."""
    model = timm.create_model(name, num_classes=5).eval()
    for m in model.modules():  # learned-looking BN statistics, not the identity of a fresh init
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            torch.nn.init.uniform_(m.running_mean, -0.2, 0.2)
            torch.nn.init.uniform_(m.running_var, 0.5, 1.5)
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.2, 0.2)
    x = torch.randn(2, 3, 64, 96)
    fused = reparameterize_model(model)
    is_bn = lambda m: isinstance(m, torch.nn.modules.batchnorm._BatchNorm)  # noqa: E731
    assert any(map(is_bn, model.modules())) and not any(map(is_bn, fused.modules()))
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=2e-5, rtol=2e-5)
        torch.testing.assert_close(reparameterize_model(fused)(x), fused(x), atol=0, rtol=0)
    for norm, indices in [(False, [0, 1]), (True, [0, -1])]:
        expected = model.forward_intermediates(x, indices=indices, norm=norm, intermediates_only=True)
        getter = FeatureGetterNet(copy.deepcopy(model), out_indices=indices, norm=norm).eval()
        torch.testing.assert_close(getter(x), expected)
        fused_getter = reparameterize_model(getter)
        torch.testing.assert_close(fused_getter(x), expected, atol=2e-5, rtol=2e-5)
        torch.testing.assert_close(torch.jit.script(fused_getter)(x), fused_getter(x))
        getter.train()
        sum(t.square().mean() for t in getter(x)).backward()
        assert all(p.grad is not None for p in getter.parameters() if p.requires_grad)
        getter.model.reset_classifier(7, global_pool="avg")  # sized for the width kept by the pruning
        assert getter.model(x).shape == (2, 7)


@pytest.mark.parametrize("name", HEAVY_MODELS)
def test_torchscript(name):
    with set_scriptable(True):
        model = timm.create_model(name).eval()
    x = torch.randn(1, *_input_size(name, JIT_SIZE))
    out = torch.jit.script(model)(x)
    assert out.shape[0] == 1
    assert not torch.isnan(out).any(), "Output included NaNs"
    torch.testing.assert_close(out, model(x))  # not in timm


@pytest.mark.parametrize("name", HEAVY_MODELS)
def test_forward_fx(name):
    model = timm.create_model(name).eval()
    x = torch.randn(1, *_input_size(name, FX_SIZE))
    with torch.inference_mode():
        out = model(x)
        fx_out = torch.cat(tuple(_fx_model(model)(x).values()))
    torch.testing.assert_close(fx_out, out, rtol=1e-4, atol=1e-5)
    assert out.shape[0] == 1
    assert not torch.isnan(out).any(), "Output included NaNs"


@pytest.mark.parametrize("name", HEAVY_MODELS)
def test_backward_fx(name):
    model = timm.create_model(name, num_classes=42).train()
    num_params = sum(p.numel() for p in model.parameters())
    fx_model = _fx_model(model, train=True)
    out = torch.cat(tuple(fx_model(torch.randn(2, *_input_size(name, FX_SIZE))).values()))
    out.mean().backward()
    assert not [n for n, p in fx_model.named_parameters() if p.grad is None], "params without gradient"
    assert out.shape[-1] == 42
    assert sum(p.grad.numel() for p in fx_model.parameters()) == num_params
    assert not torch.isnan(out).any(), "Output included NaNs"


@pytest.mark.parametrize("name", HEAVY_MODELS)
def test_fx_torchscript(name):
    with set_scriptable(True):
        model = timm.create_model(name).eval()
    x = torch.randn(1, *_input_size(name, JIT_SIZE))
    scripted = torch.jit.script(_fx_model(model))
    with torch.inference_mode():
        out = torch.cat(tuple(scripted(x).values()))
        eager = model(x)
    assert out.shape[0] == 1
    assert not torch.isnan(out).any(), "Output included NaNs"
    torch.testing.assert_close(out, eager)  # not in timm


def test_timm_files_the_variants_under_its_shvit_module_filter():
    """timm's tests/test_models.py selects its feature tests by model module (`FEAT_INTER_FILTERS` holds
    'shvit'): the variants are registered from `shvit.shvit`, so those filters pick them up."""
    from timm.models import list_models
    assert set(list_models(module="shvit")) == {CONTROL.replace("s1", s) for s in ("s1", "s2", "s3", "s4")} | {
        shvit.PREFIX + k for k in shvit.VARIANTS}
