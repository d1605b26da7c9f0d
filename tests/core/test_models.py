"""analysis.core.models: names, seeded random weights, hub cache / offline behaviour, local checkpoints."""
import sys

import pytest
import timm
import torch
from huggingface_hub import constants
from safetensors.torch import save_file

from shvit.weights import CheckpointError

from analysis.core.errors import UserError
from analysis.core.memory import estimate_memory
from analysis.core.models import check_model_name, create_model, create_model_at, input_size, load_model_factory


def test_unknown_model_suggests_close_names():
    with pytest.raises(UserError, match=r"unknown model 'deit_tiny_patch16'; did you mean deit_tiny_patch16_224"):
        create_model("deit_tiny_patch16")


def test_random_weights_are_seeded():
    a, b, c = (create_model("shvitlab_s1", seed=s).state_dict() for s in (3, 3, 4))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert not create_model("shvitlab_s1").training


def test_pretrained_offline_names_the_alternatives(monkeypatch, tmp_path):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(UserError, match=r"not cached .* --weights random or --weights PATH"):
        create_model("efficientvit_m0", "pretrained")
    with pytest.raises(UserError, match="no pretrained weights"):
        create_model("shvitlab_s1", "pretrained")


def test_pretrained_served_from_hub_cache_offline(monkeypatch, tmp_path):
    """Once downloaded, `pretrained` works offline: build the hub cache layout by hand."""
    torch.manual_seed(5)
    source = timm.create_model("efficientvit_m0")
    repo = tmp_path / "models--timm--efficientvit_m0.r224_in1k"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(snapshot / "model.safetensors"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    model = create_model("efficientvit_m0", "pretrained")
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in model.state_dict().items())


def test_local_checkpoints_any_layout(tmp_path):
    torch.manual_seed(7)
    source = timm.create_model("efficientvit_m0").state_dict()
    torch.save({"model": source}, tmp_path / "official.pth")
    model = create_model("efficientvit_m0", str(tmp_path / "official.pth"))
    assert all(torch.equal(v, source[k]) for k, v in model.state_dict().items())
    with pytest.raises(CheckpointError, match="does not fit"):
        create_model("efficientvit_m1", str(tmp_path / "official.pth"))
    with pytest.raises(CheckpointError, match="not found"):
        create_model("efficientvit_m0", str(tmp_path / "missing.pth"))


def test_input_size_from_pretrained_config():
    assert input_size(create_model("shvitlab_s4")) == (3, 256, 256)
    assert input_size(create_model("shvitlab_s1"), resolution=160) == (3, 160, 160)
    with pytest.raises(UserError, match="too small"):
        input_size(create_model("shvitlab_s1"), resolution=8)


def test_unknown_names_suggest_the_intended_model_first():
    from analysis.core.models import check_model_name, suggest_model_names
    assert suggest_model_names("deit_tiny")[0] == "deit_tiny_patch16_224"
    assert suggest_model_names("shvit_s9")[:1] in (["shvit_s1"], ["shvit_s2"], ["shvit_s3"], ["shvit_s4"])
    assert suggest_model_names("EfficientViT_M4")[0] == "efficientvit_m4"
    with pytest.raises(UserError, match=r"unknown model 'deit_tiny'; did you mean deit_tiny_patch16_224, "):
        check_model_name("deit_tiny")
    assert suggest_model_names("zzzzzzzz") == []


# ----------------------------------------------------------------------------- your own model: a factory spec

OWN = '''
import torch.nn as nn

calls = []


def make(num_classes=3, pretrained=True, **kwargs):
    calls.append(dict(num_classes=num_classes, pretrained=pretrained, **kwargs))
    return nn.Sequential(nn.Flatten(), nn.Linear(12, num_classes))


def plain(num_classes=3):
    model = nn.Linear(4, num_classes)
    model.default_cfg = {"input_size": (3, 2, 2)}
    return model


def sized(img_size=8):
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * img_size * img_size, 2))
'''


@pytest.fixture
def own(tmp_path):
    (tmp_path / "own.py").write_text(OWN)
    return str(tmp_path / "own.py")


def test_a_timm_entrypoint_named_as_a_spec_is_timms_model():
    """`module:factory` imports and calls the function: timm's own entrypoint gives timm's model, seed for seed
    (a `pretrained` parameter gets False: nothing is downloaded)."""
    ours = create_model("timm.models.efficientvit_msra:efficientvit_m0", seed=4, num_classes=7).state_dict()
    torch.manual_seed(4)
    theirs = timm.create_model("efficientvit_m0", num_classes=7).eval().state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_a_factory_gets_the_callers_arguments_and_pretrained_false(own):
    model = create_model(f"{own}:make", num_classes=5)
    assert model[1].out_features == 5 and not model.training
    factory = load_model_factory(f"{own}:make")
    assert factory.__globals__["calls"] == [{"num_classes": 5, "pretrained": False}]
    assert factory is load_model_factory(f"{own}:make")   # the file is run once


def test_a_factory_is_seeded_and_its_default_cfg_sets_the_input_size(own):
    a, b, c = (create_model(f"{own}:plain", seed=s).weight for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert input_size(create_model(f"{own}:plain")) == (3, 2, 2)


def test_a_factory_that_names_img_size_is_rebuilt_at_a_resolution(own):
    model, shape = create_model_at(f"{own}:sized", 16)
    assert shape == (3, 16, 16) and model[1].in_features == 3 * 16 * 16


def test_a_checkpoint_loads_into_a_factory_model_and_pretrained_is_refused(own, tmp_path):
    source = create_model(f"{own}:plain", seed=9)
    torch.save({"model": source.state_dict()}, tmp_path / "plain.pth")
    loaded = create_model(f"{own}:plain", str(tmp_path / "plain.pth"), seed=0)
    assert torch.equal(loaded.weight, source.weight)
    with pytest.raises(CheckpointError, match="does not fit"):
        create_model(f"{own}:plain", str(tmp_path / "plain.pth"), num_classes=4)
    with pytest.raises(UserError, match="--weights pretrained is for timm models"):
        create_model(f"{own}:plain", "pretrained")


def test_memory_is_estimated_for_a_factory_model(own):
    est = estimate_memory(f"{own}:plain", (2, 4))
    assert est is not None and est.params == (4 * 3 + 3) * 4


@pytest.mark.parametrize("spec,message", [
    ("json.decoder", "model 'json.decoder' names no factory: give it after a colon, as json.decoder:FACTORY"),
    ("hf-hub:timm/vit_tiny_patch16_224", "timm hub names are not taken here"),
    ("json:", "is neither a timm name nor a spec"),
    ("no_such_package_4821:make", "no module named 'no_such_package_4821'"),
    ("json:loadz", "json has no 'loadz' (model 'json:loadz'); did you mean load, loads?"),
    ("json:__doc__", "model factory json:__doc__ is not callable (it is of type str)"),
    ("json:loads", "model factory json:loads raised TypeError: "),
    ("json:JSONDecoder", "model factory json:JSONDecoder returned a JSONDecoder, not a torch.nn.Module"),
])
def test_a_spec_that_cannot_give_a_model_is_one_line(spec, message):
    with pytest.raises(UserError) as exc:
        create_model(spec)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_a_module_whose_import_fails_names_its_error(tmp_path, monkeypatch):
    (tmp_path / "needs_missing.py").write_text("import no_such_dependency_4821\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with pytest.raises(UserError, match="importing needs_missing raised ModuleNotFoundError: No module named "
                                        "'no_such_dependency_4821'"):
        check_model_name("needs_missing:make")
    assert not (tmp_path / "__pycache__").exists()
