"""Head analysis over several processes (torch.distributed, gloo on CPU): each process takes its
share of the images, sums are all-reduced, and the results equal one process's: head statistics
to rtol 1e-6, ablation top-1 counts exactly. Long ablations resume after a kill."""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import timm
import torch
import torch.multiprocessing as mp

from analysis.core.distributed import World
from analysis.core.errors import UserError
from analysis.core.tables import read_csv, table_differences
from analysis.heads import ablation
from analysis.heads.ablation import head_ablation
from analysis.heads.metrics import METRICS
from analysis.heads.similarity import head_similarity

ROOT = Path(__file__).resolve().parents[2]


def _setup():
    """A tiny seeded ViT, 12 images, and labels its unablated predictions mostly agree with."""
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=48,
                              num_heads=3, num_classes=10).eval()
    with torch.no_grad():  # heads that matter: random init keeps attention's share of the residual tiny
        for blk in model.blocks:
            blk.attn.proj.weight.mul_(40)
    x = torch.randn(12, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(-1)
    y[::3] = (y[::3] + 1) % 10  # baseline top-1 2/3: ablations can go either way
    return model, x, y


def _batches(x, y, rank=0, size=1, batch=2):
    idx = torch.arange(len(x))[rank::size]
    return [(x[idx[i:i + batch]], y[idx[i:i + batch]]) for i in range(0, len(idx), batch)]


def _worker(rank, size, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    world = World(size, rank)
    model, x, y = _setup()
    batches = _batches(x, y, rank, size)
    abl = head_ablation(model, batches, world=world)
    sim = head_similarity(model, [b[0] for b in batches], metrics=METRICS, world=world)
    if rank == 0:
        abl.to_pickle(out / "ablation.pkl")
        sim.to_pickle(out / "similarity.pkl")
    world.close()


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    model, x, y = _setup()
    one_abl = head_ablation(model, _batches(x, y))
    one_sim = head_similarity(model, [b[0] for b in _batches(x, y)], metrics=METRICS)
    port = 29500 + os.getpid() % 1000
    mp.spawn(_worker, args=(2, port, tmp_path), nprocs=2, join=True)
    two_abl, two_sim = pd.read_pickle(tmp_path / "ablation.pkl"), pd.read_pickle(tmp_path / "similarity.pkl")
    assert one_abl["delta"].abs().gt(0).any() and 0 < one_abl["baseline_top1"].iloc[0] < 1  # not a trivial table
    pd.testing.assert_frame_equal(one_abl, two_abl)  # counts summed: exactly the same accuracies
    assert table_differences(two_sim, one_sim, rtol=1e-6, atol=0) == []
    assert (two_sim["num_images"] == 12).all()


def test_a_killed_ablation_resumes_and_ends_with_the_same_table(tmp_path, monkeypatch):
    model, x, y = _setup()
    batches = _batches(x, y)
    identity = {"model": "tiny", "data": "random"}
    full = head_ablation(model, batches, identity=identity)
    partial = tmp_path / "a.csv.partial.json"
    real_enter, calls = ablation.HeadMask.__enter__, []

    def dies_on_the_fifth(self):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_enter(self)
    monkeypatch.setattr(ablation.HeadMask, "__enter__", dies_on_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        head_ablation(model, batches, partial=partial, identity=identity)
    assert partial.is_file()
    monkeypatch.setattr(ablation.HeadMask, "__enter__", real_enter)
    calls.clear()
    resumed = head_ablation(model, batches, partial=partial, identity=identity)
    pd.testing.assert_frame_equal(resumed, full)
    assert not partial.exists()
    with pytest.raises(KeyboardInterrupt):  # a partial run of another setup is refused, not mixed in
        monkeypatch.setattr(ablation.HeadMask, "__enter__", dies_on_the_fifth)
        head_ablation(model, batches, partial=partial, identity=identity)
    monkeypatch.setattr(ablation.HeadMask, "__enter__", real_enter)
    with pytest.raises(UserError, match="partial run of another ablation"):
        head_ablation(model, batches, partial=partial, identity={**identity, "model": "other"})


@pytest.mark.slow
def test_torchrun_cli_equals_one_process(tmp_path):
    """`torchrun --nproc_per_node=2 -m analysis.head_similarity` writes the single-process table."""
    common = ["-m", "analysis.head_similarity", "--model", "deit_tiny_patch16_224", "--num-images", "4",
              "--batch-size", "2", "--metrics", "all"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable] + common + ["--out", str(tmp_path / "one.csv")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    two = subprocess.run([torchrun, "--nproc_per_node=2"] + common + ["--out", str(tmp_path / "two.csv")], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-2000:]
    # the CSVs hold 6 significant digits: equal to that precision (the sums themselves agree to 1e-6, above)
    assert table_differences(read_csv(tmp_path / "two.csv"), read_csv(tmp_path / "one.csv"), rtol=2e-5) == []
    meta = pd.read_json(tmp_path / "two.json", typ="series")
    assert meta["world_size"] == 2 and meta["images_per_process"] == {"deit_tiny_patch16_224": [2, 2]}
    assert two.stderr.count("deit_tiny_patch16_224 (random): 4 images") == 1  # rank 0 reports


def _folder(root):
    """Class folders with readable and broken images interleaved."""
    from PIL import Image
    for c in range(2):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(7):
            path = root / f"c{c}" / f"{i}.png"
            if i % 3 == 2:
                path.write_bytes(b"broken")
            else:
                Image.new("RGB", (8, 8), (30 * i + c, 7 * i, 100)).save(path)
    return root


def _shard_worker(rank, size, port, root, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from analysis.core.images import ImageFolderSource
    world = World(size, rank)
    model, _, _ = _setup()
    source = ImageFolderSource(root, num_images=7, seed=3)
    items = [(float(x.sum()), int(y)) for xb, yb in source.batches(model, 3, world=world) for x, y in zip(xb, yb)]
    torch.save({"items": items, "used": source.num_used, "skipped": source.num_skipped}, out / f"r{rank}.pt")
    world.close()


@pytest.mark.slow
def test_image_folder_shards_are_the_single_process_images(tmp_path):
    from analysis.core.images import ImageFolderSource
    root = _folder(tmp_path / "data")
    model, _, _ = _setup()
    source = ImageFolderSource(root, num_images=7, seed=3)
    one = [(float(x.sum()), int(y)) for xb, yb in source.batches(model, 3) for x, y in zip(xb, yb)]
    assert len(one) == 7 and source.num_skipped > 0
    mp.spawn(_shard_worker, args=(2, 29400 + os.getpid() % 1000, root, tmp_path), nprocs=2, join=True)
    parts = [torch.load(tmp_path / f"r{r}.pt") for r in range(2)]
    assert sorted(parts[0]["items"] + parts[1]["items"]) == sorted(one)
    assert all(p["used"] == 7 and p["skipped"] == source.num_skipped for p in parts)
    assert {len(p["items"]) for p in parts} <= {3, 4}


RANK_ONE_FAILS = """
import sys
from analysis.core.distributed import World
from analysis.core.errors import UserError, exit_on_user_error

def main():
    world = World.from_env()
    if world.rank == 1:
        raise UserError("shard 1 has no readable image")
    world.barrier()

sys.exit(exit_on_user_error(main, prog="demo")())
"""


def _torchrun(tmp_path, *args: str, script: str = "", timeout: int = 300) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node=2 ARGS` in `tmp_path` (with `script` as demo.py), one thread per process."""
    if script:
        (tmp_path / "demo.py").write_text(script)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    return subprocess.run([torchrun, "--nproc_per_node=2", *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_an_error_on_one_rank_ends_the_job_with_that_ranks_message(tmp_path):
    """Before the ranks diverge every rank meets the same error and rank 0 alone says it; after, the rank
    that failed says it, and the others stop in one line (no traceback of a broken collective)."""
    r = _torchrun(tmp_path, "demo.py", script=RANK_ONE_FAILS)
    assert r.returncode != 0
    assert r.stderr.count("demo: error (rank 1): shard 1 has no readable image") == 1, r.stderr[-3000:]
    assert "[rank0]: Traceback" not in r.stderr and "[rank1]: Traceback" not in r.stderr, r.stderr[-3000:]
    common = _torchrun(tmp_path, "-m", "analysis.head_similarity", "--model", "deit_tiny", "--num-images", "4", "--out",
                       "x.csv")
    assert common.returncode != 0
    assert common.stderr.count("unknown model 'deit_tiny'") == 1, common.stderr[-3000:]
    parse = _torchrun(tmp_path, "-m", "analysis.head_similarity", "--model", "deit_tiny")
    assert parse.stderr.count("the following arguments are required: --out") == 1, parse.stderr[-3000:]


RANK_ONE_DIES = """
import os, signal, sys, time
from analysis.core.distributed import World
from analysis.core.errors import exit_on_user_error

def main():
    world = World.from_env()
    world.barrier()
    if world.rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)   # a rank the OOM killer or a user took away
    time.sleep(120)

sys.exit(exit_on_user_error(main, prog="demo")())
"""


@pytest.mark.slow
def test_a_killed_rank_ends_the_job_with_one_line_on_the_survivor(tmp_path):
    """torchrun stops the surviving ranks when one is killed; each survivor says so in one line, with no
    traceback of its own, and the job ends without waiting out the survivor's work."""
    r = _torchrun(tmp_path, "demo.py", script=RANK_ONE_DIES, timeout=100)
    assert r.returncode != 0
    assert r.stderr.count("demo: terminated (rank 0)") == 1, r.stderr[-3000:]
    assert "[rank0]: Traceback" not in r.stderr and "demo: terminated (rank 1)" not in r.stderr, r.stderr[-3000:]
