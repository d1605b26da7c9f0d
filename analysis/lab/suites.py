"""The trained suites end to end, as `python -m analysis.ablations` runs them: the micro suite (recipes,
tables, seed replicates) and the meso suite (the learning-rate search on the tune split, every tuned recipe
from every seed, the per-image tables, training curves, the Fig. 2 sweep's timing rounds and frontier table),
each resumable from its cache, in a results folder locked for the run, with its provenance in `suite.json`;
every meso run that trains everything also adds a row to `from_scratch_runs.csv` (the suite's cost on each
machine it ran on, against its 120-minute budget).

    >>> micro_suite(micro_root(), everything=True, threads=2)
    >>> meso_suite(meso_root(), rounds=12, workers=2, command="python -m analysis.ablations --meso")
"""
from __future__ import annotations

import contextlib
import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd
import torch

from ..core.errors import UserError, not_a_command
from ..core.files import check_writable, exclusive_folder, write_json
from ..core.paths import project_root
from ..core.runtime import cpu_name, set_threads
from ..core import tables
from ..core.tables import write_csv
from . import cache, experiments, frontier, tuning
from .recipes import (MESO_FAMILIES, MESO_GRADCAM_KEYS, MESO_GRADCAM_LAYERS, MESO_SEEDS, RECIPES, SEEDED_KEYS,
                      SEEDS, recipe)

__all__ = ["list_recipes", "micro_suite", "meso_suite", "locked_results_folder", "from_scratch", "record_from_scratch",
           "MESO_BUDGET_SECONDS"]

MESO_BUDGET_SECONDS = 7200  # `ablations --meso` from scratch: within 120 minutes on 2 cores (issue 25)


def list_recipes(root: Path) -> None:
    """Print every micro recipe (and its seed replicates) with its digest and cache state."""
    for key, r in RECIPES.items():
        state = "cached" if cache.checkpoint_path(key, root).is_file() else "missing"
        print(f"{key:16s} {r.digest()} {state:8s} {r.description}")
        for seed in SEEDS[1:] if key in SEEDED_KEYS else ():
            state = "cached" if cache.checkpoint_path(key, root, seed).is_file() else "missing"
            print(f"{'  seed ' + str(seed):16s} {recipe(key, seed).digest()} {state:8s}")


@contextlib.contextmanager
def locked_results_folder(root: Path, threads: int):
    """Create the results folder (a one-line error if it cannot be written) and hold its lock for the run (a
    second run into it is refused); CPU threads set to `threads`."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create results folder {root} ({e.strerror})") from None
    check_writable(root / "models.csv")
    with exclusive_folder(root, f"another `python -m analysis.ablations` run is writing {root}; wait for it or "
                                "choose another --root"):
        set_threads(threads)
        yield root


def micro_suite(root: Path, *, everything: bool = False, keys: Optional[Sequence[str]] = None,
                table_names: Sequence[str] = (), seeds: bool = False, retrain: bool = False, refresh: bool = False,
                threads: int = 2) -> None:
    """Train the micro recipes (all with `everything`, or `keys`), build their tables (every one with
    `everything`), the seed replicates' per-image tables (`seeds`), and with `everything` the suite's `suite.json`.
    The lab's functions are looked up on their modules when called."""
    for key in keys or ():  # unknown keys fail before anything is trained
        if key not in RECIPES:
            raise UserError(f"unknown micro recipe {key!r}; known: {', '.join(RECIPES)} (meso recipes: --meso)")
    with locked_results_folder(root, threads):
        t0 = time.perf_counter()
        trained = sum(retrain or not cache.checkpoint_path(key, root).is_file() for key in RECIPES) if everything else 0
        if everything or keys:
            models = cache.train_suite(None if everything else keys, root=root, retrain=retrain)
            print(models[["key", "val_top1", "train_seconds"]].to_string(index=False), file=sys.stderr)
        builders = {**{name: experiments.TABLES[name] for name in (experiments.TABLES if everything else table_names)},
                    **(experiments.REPLICATE_TABLES if seeds else {})}
        for name, build in builders.items():
            df = build(root=root, refresh=refresh or retrain)
            print(f"{name}: {len(df)} rows -> {cache.table_path(name, root)}", file=sys.stderr)
        if everything:
            m, wall = tables.read_csv(root / "models.csv"), time.perf_counter() - t0
            write_json({"models": len(m), "train_seconds_total": round(float(m["train_seconds"].sum()), 1),
                        "trained_this_run": trained, "wall_seconds_this_run": round(wall, 1),
                        **from_scratch(_provenance(root), trained, len(RECIPES), wall, _commit()),
                        "cache_bytes": sum(p.stat().st_size for p in (root / "checkpoints").glob("*.safetensors"))},
                       root / "suite.json")


def meso_suite(root: Path, *, rounds: int = 12, workers: int = 2, retrain: bool = False, refresh: bool = False,
               command: str = "") -> None:
    """The meso suite, resumable from its cache, into `root` (see the module docstring)."""
    with locked_results_folder(root, workers):
        t0, commit = time.perf_counter(), _commit()   # the code that trains: the commit the run starts from
        search = tuning.search_table(root=root, workers=workers, refresh=refresh)
        recipes = tuning.tuned_recipes(tuning.choose(search))
        replicates = [r.with_seed(s) for s in MESO_SEEDS for r in recipes.values()]
        missing = sum(retrain or not cache.checkpoint_path(r, root).is_file() for r in replicates)
        cache.train_all(replicates, root=root, workers=workers, retrain=retrain, desc="meso suite")
        torch.set_num_threads(workers)
        models = _meso_models(replicates, root)
        val = cache.micro_datasets(replicates[0].config().data_kwargs)[1]
        _meso_tables(recipes, root, refresh)
        write_csv(frontier.training_curves(replicates, root=root), root / "training_curves.csv.gz")
        write_csv(pd.DataFrame({"image": range(len(val)), "label": val.labels.numpy(),
                                "source": val.sources.numpy()}), root / "val_sources.csv")
        train_wall = time.perf_counter() - t0
        if retrain or missing or not (root / "latency_rounds.csv").is_file():  # timed once the cores are quiet
            sweep = {k: recipes[k] for keys in MESO_FAMILIES.values() for k in keys}
            latency = frontier.sweep_latency(sweep, root=root, rounds=rounds)
            write_csv(latency.assign(cpu=cpu_name(), host=platform.node(), torch=torch.__version__),
                      root / "latency_rounds.csv")
        write_csv(frontier.frontier_table(recipes, MESO_FAMILIES, tables.read_csv(cache.table_path("predictions", root)),
                                          tables.read_csv(root / "latency_rounds.csv"), clusters=val.sources.numpy(),
                                          models=models), root / "frontier.csv")
        wall = time.perf_counter() - t0
        provenance = {"command": command, "commit": commit, "seeds": list(MESO_SEEDS), "models": len(recipes),
                      "replicates": len(replicates), "search_runs": len(search), "workers": workers,
                      "host": platform.node(), "cpu": cpu_name(), "threads": workers, "torch": torch.__version__,
                      "train_seconds_total": round(float(models.train_seconds.sum()), 1),
                      "trained_this_run": missing, "wall_seconds_this_run": round(wall, 1),
                      "wall_seconds_before_timing": round(train_wall, 1),
                      **from_scratch(_provenance(root), missing, len(replicates), wall, commit)}
        write_json(provenance, root / "suite.json")
        if missing == len(replicates):
            record_from_scratch(root, provenance, datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))


def _meso_models(replicates, root: Path) -> pd.DataFrame:
    """models.csv: one row per trained replicate (its recipe, learning rate, top-1 and training time)."""
    rows = []
    for r in replicates:
        s = cache.load_or_train(r, root=root, progress=False)[1]
        rows.append({"key": r.key, "seed": r.seed, "digest": s["digest"], "lr": r.config().lr,
                     "augment": r.config().augment, "val_top1": s["val_top1"], "train_seconds": s["train_seconds"],
                     "threads": s["threads"]})
    models = pd.DataFrame(rows)
    write_csv(models, root / "models.csv")
    return models


def _meso_tables(recipes: dict, root: Path, refresh: bool) -> None:
    """The per-image tables of every seed: predictions of every model, the DeiTs' head tables, Grad-CAM."""
    tuned, seeds = list(recipes.values()), MESO_SEEDS
    deits = [recipes["meso_deit_3h"], recipes["meso_deit_6h"]]
    tables = {
        "predictions": lambda: experiments.predictions_table(tuned, seeds, root=root, refresh=refresh),
        "head_similarity_images": lambda: experiments.head_similarity_images_table(deits, seeds, root=root,
                                                                                   refresh=refresh),
        "ablation_images": lambda: experiments.ablation_images_table(deits, seeds, root=root, refresh=refresh),
        "ablation_heads_images": lambda: experiments.ablation_heads_images_table(deits[:1], seeds, root=root,
                                                                                 refresh=refresh),
        "gradcam": lambda: experiments.gradcam_table([(recipes[k], s) for k, s in MESO_GRADCAM_KEYS], min_side=7,
                                                     root=root, refresh=refresh),
        "gradcam_images": lambda: experiments.gradcam_images_table(MESO_GRADCAM_LAYERS, seeds, recipes=recipes,
                                                                   root=root, refresh=refresh)}
    for name, build in tables.items():
        print(f"{name}: {len(build())} rows -> {cache.table_path(name, root)}", file=sys.stderr)


def _commit() -> str:
    """The project's git commit (marked when tracked files differ from it), or "unknown"."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=project_root()).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = commit and git("status", "--porcelain", "--untracked-files=no")
    except OSError:  # no git
        return "unknown"
    return (commit + " with uncommitted changes" if dirty else commit) or "unknown"


def _provenance(root: Path) -> dict:
    """The suite.json a previous run left in `root` ({} if none or unreadable: it is rewritten)."""
    try:
        previous = json.loads((root / "suite.json").read_text())
    except (OSError, ValueError):
        return {}
    return previous if isinstance(previous, dict) else {}


def record_from_scratch(root: Path, provenance: dict, finished: str, note: str = "") -> pd.DataFrame:
    """Add a from-scratch meso run (its `suite.json` provenance, the UTC date it finished) to
    `root/from_scratch_runs.csv` and return the table: one row per run, so a run on another machine adds to
    the record of the suite's cost instead of replacing it."""
    row = {"finished": finished, "commit": provenance["from_scratch_commit"], "host": provenance["host"],
           "cpu": provenance["cpu"], "torch": provenance["torch"], "workers": provenance["workers"],
           "search_runs": provenance["search_runs"], "replicates": provenance["replicates"],
           "train_seconds_total": provenance["train_seconds_total"],
           "wall_seconds": provenance["wall_seconds_from_scratch"],
           "within_budget": provenance["wall_seconds_from_scratch"] <= MESO_BUDGET_SECONDS, "note": note}
    path = root / "from_scratch_runs.csv"
    runs = pd.concat([tables.read_csv(path) if path.is_file() else None, pd.DataFrame([row])], ignore_index=True)
    write_csv(runs, path)
    return runs


def from_scratch(previous: dict, trained: int, total: int, wall: float, commit: str) -> dict:
    """The suite's from-scratch cost for its provenance: this run's wall time and commit when it
    trained all `total` models, else what the `previous` provenance recorded (a resumed or cached
    run says nothing about the cost from scratch)."""
    if trained == total:
        return {"wall_seconds_from_scratch": round(wall, 1), "from_scratch_commit": commit}
    return {k: previous[k] for k in ("wall_seconds_from_scratch", "from_scratch_commit") if k in previous}


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
