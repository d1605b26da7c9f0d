"""Checkpoint loading: timm layout, official SHViT layout, safetensors; bad files rejected clearly."""
import pickle
import re

import pytest
import timm
import torch
from safetensors.torch import save_file

import shvit
from tests.helpers import randomize_batchnorm
from shvit import CheckpointError, load_checkpoint


def to_official_layout(sd):
    """The official repository's key layout, written out independently of shvit.weights."""
    out = {}
    for k, v in sd.items():
        m = re.match(r"stages\.(\d+)\.(downsample|blocks)\.(\d+)\.(.*)", k)
        if not m:
            out[k] = v
            continue
        stage, part, idx, rest = int(m[1]), m[2], int(m[3]), m[4]
        prefix = f"blocks{stage + 1}"
        if part == "blocks":
            offset = 3 if stage > 0 else 0
            out[f"{prefix}.{idx + offset}.{rest}"] = v
        else:
            official = {0: "0.0", 1: "0.1", 2: "1", 3: "2.0", 4: "2.1"}[idx]
            out[f"{prefix}.{official}.{rest}"] = v
    return out


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(1)
    model = randomize_batchnorm(timm.create_model("shvit_s1"), seed=1).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        y = model(x)
    return model.state_dict(), x, y


def _check_outputs(model, reference):
    _, x, y = reference
    with torch.no_grad():
        assert (model.eval()(x) - y).abs().max().item() <= 1e-5


def test_timm_state_dict_loads(tmp_path, reference):
    path = tmp_path / "timm.pth"
    torch.save(reference[0], path)
    _check_outputs(load_checkpoint(shvit.create("s1"), path), reference)


def test_official_layout_loads(tmp_path, reference):
    official = to_official_layout(reference[0])
    assert any(k.startswith("blocks2.1.conv1") for k in official)  # PatchMerging is blocks2.1
    path = tmp_path / "shvit_s1.pth"
    torch.save({"model": official, "epoch": 299}, path)
    _check_outputs(load_checkpoint(shvit.create("s1"), path), reference)


def test_safetensors_loads(tmp_path, reference):
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in reference[0].items()}, str(path))
    _check_outputs(load_checkpoint(shvit.create("s1"), path), reference)


def _untouched(model, before):
    return all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("damage, expected", [
    (lambda sd: {k: v for i, (k, v) in enumerate(sd.items()) if i < len(sd) // 2}, r"\d+ missing keys: head\.bn\.bias, .*\(\+\d+ more\)"),
    (lambda sd: {**sd, "extra.weight": torch.zeros(1)}, r"1 unexpected keys: extra\.weight"),
    (lambda sd: timm.create_model("shvit_s2").state_dict(), r"shape mismatches"),
])
def test_wrong_checkpoints_name_the_keys(tmp_path, reference, damage, expected):
    path = tmp_path / "bad.pth"
    torch.save(damage(dict(reference[0])), path)
    model = shvit.create("s1")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(model, path)
    assert _untouched(model, before), "a rejected checkpoint must not be partially loaded"


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize("content, expected", [
    (b"definitely not a checkpoint", "not a readable checkpoint"),
    (None, "not found"),
])
def test_unreadable_files(tmp_path, content, expected):
    path = tmp_path / "file.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(shvit.create("s1"), path)


def test_truncated_file_and_code_payload_rejected(tmp_path, reference, capsys):
    full = tmp_path / "full.pth"
    torch.save(reference[0], full)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(shvit.create("s1"), truncated)

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"model": Payload()}))
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(shvit.create("s1"), evil)
    assert "this must never run" not in capsys.readouterr().out


def test_non_tensor_checkpoint_rejected(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(CheckpointError, match="holds no state dict"):
        load_checkpoint(shvit.create("s1"), path)


def test_checkpoints_are_validated_not_just_keyed(tmp_path, capsys):
    """Wrong dtypes, NaN, sparse or meta tensors, non-string keys, a name twice after 'module.' and timm's
    silent resampling are refused in one line; half precision is converted and said."""
    import timm

    from analysis.core.models import create_model
    from shvit.weights import CheckpointError, load_state_dict_strict, read_state_dict

    def small(**kw):
        return timm.create_model("deit_tiny_patch16_224", patch_size=8, embed_dim=48, depth=1, num_heads=3, **kw)

    model = small(img_size=32)
    sd = model.state_dict()
    key = "blocks.0.attn.qkv.weight"
    for change, needle in (({key: sd[key].to(torch.int32)}, "tensors of the wrong type: blocks.0.attn.qkv.weight int32"),
                           ({key: sd[key].bool()}, "wrong type"),
                           ({key: sd[key].to(torch.complex64)}, "wrong type"),
                           ({key: torch.full_like(sd[key], float("nan"))}, "1 tensors hold NaN or inf")):
        with pytest.raises(CheckpointError, match=needle):
            load_state_dict_strict(small(img_size=32), {**sd, **change})
    for bad, needle in (({**sd, key: sd[key].to_sparse()}, "not plain dense ones"),
                        ({**sd, key: torch.empty(sd[key].shape, device="meta")}, "not plain dense ones"),
                        ({**sd, 3: sd[key]}, "keys that are not names"),
                        ({**sd, "module." + key: sd[key]}, "has both")):
        path = tmp_path / "bad.pth"
        torch.save(bad, path)
        with pytest.raises(CheckpointError, match=needle):
            read_state_dict(path)
    half = tmp_path / "half.pth"
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, half)
    load_state_dict_strict(small(img_size=32), read_state_dict(half), source="half.pth")
    assert "note: half.pth: weights converted to the model's precision (float16 -> float32)" in capsys.readouterr().err
    torch.save(sd, tmp_path / "at32.pth")
    with pytest.raises(CheckpointError, match=r"timm would resample pos_embed \(1, 17, 48\) -> \(1, 65, 48\)"):
        create_model("deit_tiny_patch16_224", str(tmp_path / "at32.pth"), img_size=64, patch_size=8, embed_dim=48,
                     depth=1, num_heads=3)


def test_resampling_is_opt_in_and_said(tmp_path, capsys):
    """`resample_pos_embed` lets timm's converter resample a checkpoint's position embedding to the model's
    grid, and a note says what was resampled; the resampled model runs at its own resolution."""
    from analysis.core.models import create_model

    small = dict(patch_size=8, embed_dim=48, depth=1, num_heads=3)
    torch.save(create_model("deit_tiny_patch16_224", "random", img_size=32, **small).state_dict(), tmp_path / "a.pth")
    model = create_model("deit_tiny_patch16_224", str(tmp_path / "a.pth"), img_size=64, resample_pos_embed=True,
                         **small)
    assert "note: resampled pos_embed (1, 17, 48) -> (1, 65, 48)" in capsys.readouterr().err
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)


def test_resample_flag_without_a_checkpoint_is_refused(tmp_path, capsys):
    from analysis.head_similarity import main
    from tests.helpers import assert_rejected

    assert_rejected(main, ["--model", "deit_tiny_patch16_224", "--resample-pos-embed", "--num-images", "2",
                           "--out", str(tmp_path / "o.csv")], "--resample-pos-embed would be ignored", capsys, tmp_path)
