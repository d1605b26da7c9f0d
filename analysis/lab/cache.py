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

from ..core.errors import not_a_command
from ..core.files import atomic_path
from ..core.paths import PathLike, micro_root
from ..core.tables import read_csv, write_csv
from .recipes import DATA, RECIPES, recipe
from .train import TrainConfig, build_datasets, build_model, evaluate, fit

__all__ = ["checkpoint_path", "table_path", "micro_datasets", "load_or_train", "train_suite", "cached_table",
           "COMPRESSED_TABLES"]

# The per-image replicate tables (tens of thousands of rows) are stored gzip-compressed.
COMPRESSED_TABLES = ("predictions", "head_similarity_images", "ablation_images", "ablation_heads_images",
                     "gradcam_images")


def checkpoint_path(key: str, root: Optional[PathLike] = None, seed: int = 0) -> Path:
    """Seed 0 (the suite's models, committed) in `checkpoints/`; other seeds' replicates (a local cache:
    their tables are committed, their weights are not) in `checkpoints/seed<N>/`."""
    folder = micro_root(root) / "checkpoints"
    return (folder if seed == 0 else folder / f"seed{seed}") / f"{recipe(key, seed).label}.safetensors"


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
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(unreadable_reason(e)) from None
    load_state_dict_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in sd.items()},
                           source="its tensors")
    return model.eval(), summary


def load_or_train(key: str, *, seed: int = 0, root: Optional[PathLike] = None, retrain: bool = False,
                  progress: bool = True) -> tuple[nn.Module, dict]:
    """(model in eval mode, summary) of a micro recipe trained from `seed`: from the cache, else
    trained and cached. A corrupt cache entry is reported (one line on stderr) and rebuilt."""
    r = recipe(key, seed)
    path = checkpoint_path(key, root, seed)
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
    val = evaluate(model, DataLoader(val_ds, batch_size=200), torch.device("cpu"), cfg.input_size)
    summary = {**summary, "key": key, "digest": r.digest(), "val_top1_fp32": summary["val_top1"],
               "val_top1": val["top1"], "threads": torch.get_num_threads()}
    summary.pop("checkpoint", None)
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata={"recipe": json.dumps(cfg.to_dict(), sort_keys=True),
                                          "summary": json.dumps(summary, sort_keys=True)})
    return model.eval(), summary


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
