"""analysis.core.models: names, seeded random weights, hub cache / offline behaviour, local checkpoints."""
import pytest
import timm
import torch
from huggingface_hub import constants
from safetensors.torch import save_file

from shvit.weights import CheckpointError

from analysis.core.errors import UserError
from analysis.core.models import create_model, input_size


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
