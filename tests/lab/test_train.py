"""Training harness: loss goes down, resume continues exactly, DDP (2 CPU processes) agrees
with one process, bad input exits 2 with one line and overwrites nothing."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from analysis.lab.checkpoints import load_checkpoint
from shvit.weights import CheckpointError
from analysis.lab.train import build_datasets, fit, TrainConfig

from analysis.train import main

ROOT = Path(__file__).resolve().parents[2]
DATA = {"resolution": 32, "num_train": 128, "num_val": 32, "digit_size": [16, 24]}
SHVIT = {"embed_dims": [16, 32, 48], "depths": [1, 1, 1], "partial_dims": [4, 8, 12], "stem_stride": 8,
         "img_size": 32}
# BatchNorm-free (LayerNorm) model: DDP with per-process batches is then exactly full-batch SGD.
VIT = ["--model", "deit_tiny_patch16_224", "--model-kwargs",
       '{"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}']
CLI_DATA = ["--data-resolution", "32", "--num-train", "128", "--num-val", "32", "--batch-size", "32", "--quiet"]


def _cfg(**kw):
    return TrainConfig(model="shvitlab_fig2_b", model_kwargs=SHVIT, data_kwargs=DATA, batch_size=32,
                       lr=3e-3, warmup_epochs=0, **kw)


@pytest.fixture(scope="module")
def data():
    return build_datasets(_cfg())


def test_training_lowers_the_loss(data):
    _, s = fit(_cfg(epochs=3), datasets=data, progress=False)
    losses = [h["train_loss"] for h in s["history"]]
    assert len(losses) == 3 and s["step"] == 12
    assert losses[-1] < 0.9 * losses[0], losses
    assert 0 <= s["val_top1"] <= 100


def test_resume_continues_from_the_saved_step(data, tmp_path):
    full, s_full = fit(_cfg(epochs=2), tmp_path / "full", datasets=data, progress=False)
    _, s1 = fit(_cfg(epochs=2), tmp_path / "part", datasets=data, progress=False, stop_after=1)
    ckpt = load_checkpoint(tmp_path / "part" / "last.pth")
    assert s1["step"] == ckpt["step"] == 4 and ckpt["epoch"] == 1
    resumed, s2 = fit(_cfg(epochs=2), tmp_path / "part", resume=tmp_path / "part" / "last.pth",
                      datasets=data, progress=False)
    assert s2["step"] == s_full["step"] == 8 and len(s2["history"]) == 2
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), k
    assert s2["history"][-1]["val_loss"] == pytest.approx(s_full["history"][-1]["val_loss"], rel=1e-5)


def test_a_checkpoint_with_the_old_names_of_the_input_side_resumes(data, tmp_path):
    """Checkpoints written when the input side was `input_size` (and `image_size` in data_kwargs) resume as
    the same setup; a genuinely different side is still refused."""
    _, s1 = fit(_cfg(epochs=2, resolution=40), tmp_path, datasets=data, progress=False, stop_after=1)
    path = tmp_path / "last.pth"
    ckpt = torch.load(path, weights_only=True)
    config = ckpt["config"]
    config["input_size"] = config.pop("resolution")
    config["data_kwargs"] = {("image_size" if k == "resolution" else k): v for k, v in config["data_kwargs"].items()}
    torch.save(ckpt, path)
    assert TrainConfig.from_dict(config) == _cfg(epochs=2, resolution=40)
    _, s2 = fit(_cfg(epochs=2, resolution=40), tmp_path, resume=path, datasets=data, progress=False)
    assert s2["step"] == 2 * s1["step"] and len(s2["history"]) == 2
    with pytest.raises(CheckpointError, match=r"resolution: 40 in checkpoint vs 48"):
        fit(_cfg(epochs=2, resolution=48), tmp_path / "other", resume=path, datasets=data, progress=False)


def _run(args, env_extra=None, launcher=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = (launcher or [sys.executable, "-m", "analysis.train"]) + args
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one_process(tmp_path):
    args = VIT + CLI_DATA + ["--epochs", "2", "--warmup-epochs", "0", "--lr", "1e-3"]
    single = _run(args + ["--output", str(tmp_path / "one")])
    assert single.returncode == 0, single.stderr[-2000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "analysis.train"]
    ddp = _run(args + ["--output", str(tmp_path / "two")], launcher=torchrun)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert two["world_size"] == 2 and one["world_size"] == 1 and two["step"] == one["step"] == 8
    assert two["val_loss"] == pytest.approx(one["val_loss"], rel=1e-4)
    assert two["history"][0]["train_loss"] == pytest.approx(one["history"][0]["train_loss"], rel=1e-4)
    a = load_checkpoint(tmp_path / "one" / "last.pth")["model"]
    b = load_checkpoint(tmp_path / "two" / "last.pth")["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def _exit2(capsys, argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_input_exits_2_and_overwrites_nothing(capsys, tmp_path, data):
    assert "did you mean" in _exit2(capsys, ["--model", "shvitlab_fig2_bb", "--quiet"])
    assert "does not exist" in _exit2(capsys, ["--model", "shvitlab_fig2_b", "--data", str(tmp_path / "nope")])
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "cannot create output folder" in _exit2(capsys, ["--model", "shvitlab_fig2_b",
                                                           "--output", str(blocker / "sub")])
    # a real checkpoint of another setup, and a corrupt one: exit 2, the output's checkpoint untouched
    fit(_cfg(epochs=1), tmp_path / "run", datasets=data, progress=False)
    ckpt = tmp_path / "run" / "last.pth"
    before = ckpt.read_bytes()
    base = ["--model", "shvitlab_fig2_b", "--output", str(tmp_path / "run"), "--quiet"] + CLI_DATA
    err = _exit2(capsys, base + ["--set", "depths=[1,1,1]", "--resume", str(ckpt)])
    assert "different setup" in err
    bad = tmp_path / "corrupt.pth"
    bad.write_bytes(b"not a checkpoint" * 10)
    assert "not a readable checkpoint" in _exit2(capsys, base + ["--resume", str(bad)])
    assert ckpt.read_bytes() == before
    assert "not valid JSON" in _exit2(capsys, ["--model", "shvitlab_fig2_b", "--model-kwargs", "{bad"])
