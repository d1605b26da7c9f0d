"""The micro suite's cache: trained weights by recipe digest, and tables by the digests they were
computed from, under `core.paths.micro_root()` (default `<project>/results/micro`).

Trained weights: `checkpoints/<key>-<digest>.safetensors` (fp16, summary in the metadata). A
recipe that did not change is never retrained; each table is cached as `<table>.csv` with the
digests it was computed from, and recomputed when any of them changes.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd
import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from tqdm import tqdm

from shvit.weights import CheckpointError, load_state_dict_strict, unreadable_reason

from ..core.errors import UserError, not_a_command
from ..core.files import atomic_path
from ..core.paths import PathLike, micro_root
from ..core.tables import read_csv, write_csv
from .recipes import DATA, RECIPES, MicroRecipe, recipe, resolve
from .datasets import ClutteredDigits
from .train import TrainConfig, build_datasets, build_model, evaluate, fit

__all__ = ["checkpoint_path", "table_path", "micro_datasets", "load_or_train", "train_suite", "train_all",
           "forward_macs", "cached_table",
           "COMPRESSED_TABLES"]

# The per-image replicate tables (tens of thousands of rows) are stored gzip-compressed.
COMPRESSED_TABLES = ("predictions", "head_similarity_images", "ablation_images", "ablation_heads_images",
                     "gradcam_images")


def checkpoint_path(key: "str | MicroRecipe", root: Optional[PathLike] = None, seed: Optional[int] = None) -> Path:
    """Seed 0 (the suite's models, committed) in `checkpoints/`; other seeds' replicates (a local cache:
    their tables are committed, their weights are not) in `checkpoints/seed<N>/`. `key`: a recipe's key
    or the recipe itself (`recipes.resolve`)."""
    r = resolve(key, seed)
    folder = micro_root(root) / "checkpoints"
    return (folder if r.seed == 0 else folder / f"seed{r.seed}") / f"{r.label}.safetensors"


_DATA_CACHE: dict = {}


def micro_datasets(data_kwargs: Optional[dict] = None):
    """The micro suite's cluttered digits (each configuration generated once per process)."""
    data_kwargs = data_kwargs or DATA
    key = json.dumps(data_kwargs, sort_keys=True)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = build_datasets(TrainConfig(model="-", data_kwargs=dict(data_kwargs)))
    return _DATA_CACHE[key]


def _round_fp16(model: nn.Module) -> dict:
    """State dict with floating tensors stored as fp16 (the cache format), loaded back into `model`."""
    sd = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    return sd


def _read_cached(path: Path, cfg: TrainConfig) -> tuple[nn.Module, dict]:
    """The cached model and its summary; `CheckpointError` if the entry is corrupt in any way."""
    try:
        with safe_open(str(path), "pt") as f:
            summary = json.loads((f.metadata() or {})["summary"])
            sd = {k: f.get_tensor(k) for k in f.keys()}
        model = build_model(cfg, int(summary["num_classes"]))
    except UserError:
        raise
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(unreadable_reason(e)) from None
    load_state_dict_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in sd.items()},
                           source="its tensors")
    return model.eval(), summary


def load_or_train(key: "str | MicroRecipe", *, seed: Optional[int] = None, root: Optional[PathLike] = None,
                  retrain: bool = False, progress: bool = True) -> tuple[nn.Module, dict]:
    """(model in eval mode, summary) of a recipe (a key or a `MicroRecipe`) trained from `seed`: from the
    cache, else trained and cached. A corrupt cache entry is reported (one line on stderr) and rebuilt."""
    r = resolve(key, seed)
    path = checkpoint_path(r, root)
    cfg = r.config()
    if path.is_file() and not retrain:
        try:
            return _read_cached(path, cfg)
        except CheckpointError as e:
            print(f"cache entry {path} is corrupt ({e}); retraining {r.label}", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    train_ds, val_ds, num_classes = micro_datasets(cfg.data_kwargs)
    model, summary = fit(cfg, datasets=(train_ds, val_ds, num_classes), progress=progress)
    sd = _round_fp16(model)  # report the accuracy of the weights that are cached
    val = evaluate(model, DataLoader(val_ds, batch_size=200), torch.device("cpu"), cfg.resolution)
    summary = {**summary, "key": r.key, "digest": r.digest(), "val_top1_fp32": summary["val_top1"],
               "val_top1": val["top1"], "threads": torch.get_num_threads()}
    summary.pop("checkpoint", None)
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata={"recipe": json.dumps(cfg.to_dict(), sort_keys=True),
                                          "summary": json.dumps(summary, sort_keys=True)})
    return model.eval(), summary


def forward_macs(r: MicroRecipe) -> int:
    """Multiply-accumulates of one forward pass of recipe `r`'s model on one image at its resolution
    (untrained weights, BatchNorm fused: as `cost.CostAnalysis` counts them)."""
    from ..cost.counter import CostAnalysis

    model = build_model(r.config(), len(ClutteredDigits.classes)).eval()
    return int(CostAnalysis(model, torch.randn(1, 3, r.resolution, r.resolution)).total("macs"))


def _train_in_worker(r: MicroRecipe, root) -> dict:
    return load_or_train(r, root=root, progress=False)[1]


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def train_all(recipes: Iterable[MicroRecipe], *, root: Optional[PathLike] = None, workers: int = 1,
              retrain: bool = False, progress: bool = True, desc: str = "training") -> int:
    """Train every recipe whose checkpoint is missing (all with `retrain`), into the cache; returns how
    many were trained. `workers` > 1 trains that many at once, one CPU thread each (small models use two
    single-thread processes better than one two-thread one: ~1.4x the throughput on 2 cores), the
    costliest first (forward MACs x images seen) so that the last ones to finish are short."""
    todo = [r for r in recipes if retrain or not checkpoint_path(r, root).is_file()]
    if not todo:
        return 0
    bar = tqdm(total=len(todo), disable=not progress, file=sys.stderr, desc=desc, unit="model")
    if workers <= 1:
        for r in todo:
            bar.set_postfix(model=r.label, seed=r.seed)
            load_or_train(r, root=root, retrain=retrain, progress=progress)
            bar.update()
        bar.close()
        return len(todo)
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    todo.sort(key=lambda r: forward_macs(r) * r.train_images, reverse=True)
    if retrain:
        for r in todo:
            checkpoint_path(r, root).unlink(missing_ok=True)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(1,)) as pool:
        pending = {pool.submit(_train_in_worker, r, root) for r in todo}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    f.result()  # a worker's error stops the suite
                    bar.update()
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    bar.close()
    return len(todo)


def train_suite(keys: Optional[Iterable[str]] = None, *, root: Optional[PathLike] = None, retrain: bool = False,
                progress: bool = True) -> pd.DataFrame:
    """Train (or load) every recipe; one row per model: top-1, train time, params, digest."""
    keys = list(keys or RECIPES)
    rows = []
    bar = tqdm(keys, disable=not progress, file=sys.stderr, desc="micro suite", unit="model")
    for key in bar:
        bar.set_postfix(model=key)
        _, s = load_or_train(key, root=root, retrain=retrain, progress=progress)
        rows.append({"key": key, "model": s["model"], "digest": s["digest"], "description": recipe(key).description,
                     "params": s["params"], "epochs": s["epochs_done"], "val_top1": s["val_top1"],
                     "train_seconds": s["train_seconds"], "threads": s["threads"]})
    df = pd.DataFrame(rows)
    write_csv(df, micro_root(root) / "models.csv")
    return df


def table_path(name: str, root: Optional[PathLike] = None) -> Path:
    """Where the cached table `name` lives under `root` (default `core.paths.micro_root`)."""
    return micro_root(root) / f"{name}.csv{'.gz' if name in COMPRESSED_TABLES else ''}"


def cached_table(name: str, keys: Iterable, compute, root: Optional[PathLike] = None,
                 refresh: bool = False) -> pd.DataFrame:
    """`results/micro/<name>.csv` if it was computed from the current recipes (keys, or
    `MicroRecipe`s for other seeds), else recompute and write it."""
    path = table_path(name, root)
    recipes = [recipe(k) if isinstance(k, str) else k for k in keys]
    digests = ";".join(dict.fromkeys(r.label for r in recipes))
    if path.is_file() and not refresh:
        df = read_csv(path)
        if "recipes" in df and (df["recipes"] == digests).all():
            return df
    df = compute()
    df["recipes"] = digests
    write_csv(df, path)
    return df


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
