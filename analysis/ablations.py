"""`python -m analysis.ablations`: the micro-scale reproductions of the SHViT ablations, trained on
cluttered digits on two CPU cores (library: `analysis.lab.recipes`, `.cache`, `.experiments`).

Trains the recipes whose checkpoints are missing, then writes each table as
`results/micro/<table>.csv` (under `--root`; default from `core.paths.micro_root`). `--meso` runs
the meso suite instead (a learning-rate search on a tune split, then the claims' models and the
Fig. 2 speed-accuracy sweep at 112 px from 5 seeds, trained two at a time) into `results/meso/`,
with its provenance in `suite.json`.
"""
from __future__ import annotations

import json
import os
import sys
import time

from ._cli import ArgumentParser, command, cpu_threads
from .core.errors import UserError
from .core.names import SUITE_TABLES as TABLE_NAMES

EPILOG = """examples:
  python -m analysis.ablations --all                 # train missing recipes, write results/micro/*.csv
  python -m analysis.ablations --list
  python -m analysis.ablations --train stem4 stem8   # just these models
  python -m analysis.ablations --table macro --refresh
  python -m analysis.ablations --seeds               # the scorecard's seed replicates and per-image tables
  python -m analysis.ablations --meso                # the meso suite (112 px, 5 seeds; ~100 min on 2 cores)"""


def _rounds(text: str) -> int:
    import argparse

    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 10:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 10 rounds")
    return n


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m analysis.ablations", epilog=EPILOG,
                       description="Micro-scale reproductions of the SHViT ablations, trained on cluttered digits.")
    p.add_argument("--all", action="store_true", help="train every recipe and build every table")
    p.add_argument("--train", nargs="+", metavar="KEY", help="train (or load) these recipes")
    p.add_argument("--table", nargs="+", choices=TABLE_NAMES, help="build these tables")
    p.add_argument("--seeds", action="store_true",
                   help="train every recipe from seeds 1 and 2 as well (~25 min on 2 cores) "
                        "and write their per-image tables (predictions, head_similarity_images, ablation_images, "
                        "ablation_heads_images)")
    p.add_argument("--meso", action="store_true",
                   help="run the meso suite: the learning-rate search on the tune split, the claims' models and the "
                        "Fig. 2 sweep at 112 px from 5 seeds, their tables and timing rounds (~100 min on 2 cores; "
                        "resumes from its cache), into results/meso (or --root)")
    p.add_argument("--rounds", type=_rounds, default=12,
                   help="--meso: interleaved timing rounds of the Fig. 2 sweep (at least 10; default 12)")
    p.add_argument("--list", action="store_true", help="list the recipes and their cache state")
    p.add_argument("--retrain", action="store_true", help="ignore cached checkpoints")
    p.add_argument("--refresh", action="store_true", help="recompute cached tables")
    p.add_argument("--threads", type=cpu_threads, default=min(2, len(os.sched_getaffinity(0))),
                   help="torch CPU threads (the suite's budget: 2 cores)")
    p.add_argument("--root", default=None,
                   help="results folder (default: results/micro of the project, or $SHVIT_LAB_ROOT/results/micro)")
    return p


def run(args) -> int:
    import contextlib

    with contextlib.ExitStack() as held:   # the results folder's lock, until the run ends
        return _run(args, held)


def _run(args, held) -> int:
    from .core.files import write_json
    from .core.paths import micro_root
    from .core.tables import read_csv
    from .lab.cache import checkpoint_path, table_path, train_suite
    from .lab.experiments import REPLICATE_TABLES, TABLES
    from .lab.recipes import RECIPES, SEEDED_KEYS, SEEDS, recipe

    root = micro_root(args.root)
    for key in args.train or ():  # unknown keys fail before anything is trained
        if key not in RECIPES:
            raise UserError(f"unknown micro recipe {key!r}; known: {', '.join(RECIPES)} (meso recipes: --meso)")
    if args.list:
        for key, r in RECIPES.items():
            state = "cached" if checkpoint_path(key, root).is_file() else "missing"
            print(f"{key:16s} {r.digest()} {state:8s} {r.description}")
            for seed in SEEDS[1:] if key in SEEDED_KEYS else ():
                state = "cached" if checkpoint_path(key, root, seed).is_file() else "missing"
                print(f"{'  seed ' + str(seed):16s} {recipe(key, seed).digest()} {state:8s}")
        return 0
    if args.meso:
        return _meso(args, held)
    if not (args.all or args.train or args.table or args.seeds):
        raise UserError("nothing to do: pass --all, --train KEY..., --table NAME..., --seeds, --meso or --list")
    _prepare(root, args.threads, held)
    t0 = time.perf_counter()
    trained = sum(args.retrain or not checkpoint_path(key, root).is_file() for key in RECIPES) if args.all else 0
    if args.all or args.train:
        models = train_suite(args.train if args.train and not args.all else None, root=root, retrain=args.retrain)
        print(models[["key", "val_top1", "train_seconds"]].to_string(index=False), file=sys.stderr)
    for name in (TABLES if args.all else args.table or ()):
        df = TABLES[name](root=root, refresh=args.refresh or args.retrain)
        print(f"{name}: {len(df)} rows -> {table_path(name, root)}", file=sys.stderr)
    for name in REPLICATE_TABLES if args.seeds else ():
        df = REPLICATE_TABLES[name](root=root, refresh=args.refresh or args.retrain)
        print(f"{name}: {len(df)} rows -> {table_path(name, root)}", file=sys.stderr)
    if args.all:
        m, wall = read_csv(root / "models.csv"), time.perf_counter() - t0
        previous = _provenance(root)
        write_json({"models": len(m), "train_seconds_total": round(float(m["train_seconds"].sum()), 1),
                    "trained_this_run": trained, "wall_seconds_this_run": round(wall, 1),
                    **from_scratch(previous, trained, len(RECIPES), wall, _commit()),
                    "cache_bytes": sum(p.stat().st_size for p in (root / "checkpoints").glob("*.safetensors"))},
                   root / "suite.json")
    return 0


def _prepare(root, threads: int, held) -> None:
    """Create the results folder (a one-line error if it cannot be written), lock it for this run (`held`: the
    run's ExitStack; a second run into it is refused) and set the CPU threads."""
    from .core.files import check_writable, exclusive_folder
    from .core.runtime import set_threads

    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create results folder {root} ({e.strerror})") from None
    check_writable(root / "models.csv")
    held.enter_context(exclusive_folder(root, f"another `python -m analysis.ablations` run is writing {root}; wait "
                                              "for it or choose another --root"))
    set_threads(threads)


def _commit() -> str:
    """The project's git commit (marked when tracked files differ from it), or "unknown"."""
    import subprocess

    from .core.paths import project_root

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=project_root()).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = commit and git("status", "--porcelain", "--untracked-files=no")
    except OSError:  # no git
        return "unknown"
    return (commit + " with uncommitted changes" if dirty else commit) or "unknown"


def _meso(args, held) -> int:
    """The meso suite, resumable from its cache: the search (`lab.tuning`), every tuned recipe from every
    seed, the per-image tables, training curves, timing rounds, the frontier table and `suite.json`."""
    import platform

    import pandas as pd
    import torch

    from .core.files import write_json
    from .core.paths import meso_root
    from .core.runtime import cpu_name
    from .core.tables import write_csv
    from .lab import experiments, frontier, tuning
    from .lab.cache import checkpoint_path, load_or_train, micro_datasets, table_path, train_all
    from .lab.recipes import MESO_FAMILIES, MESO_GRADCAM_KEYS, MESO_GRADCAM_LAYERS, MESO_SEEDS

    root = meso_root(args.root)
    _prepare(root, args.threads, held)
    t0, commit = time.perf_counter(), _commit()   # the code that trains: the commit the run starts from
    search = tuning.search_table(root=root, workers=args.threads, refresh=args.refresh)
    recipes = tuning.tuned_recipes(tuning.choose(search))
    replicates = [r.with_seed(s) for s in MESO_SEEDS for r in recipes.values()]
    missing = sum(args.retrain or not checkpoint_path(r, root).is_file() for r in replicates)
    train_all(replicates, root=root, workers=args.threads, retrain=args.retrain, desc="meso suite")
    torch.set_num_threads(args.threads)
    rows = []
    for r in replicates:
        s = load_or_train(r, root=root, progress=False)[1]
        rows.append({"key": r.key, "seed": r.seed, "digest": s["digest"], "lr": r.config().lr,
                     "augment": r.config().augment, "val_top1": s["val_top1"], "train_seconds": s["train_seconds"],
                     "threads": s["threads"]})
    models = pd.DataFrame(rows)
    write_csv(models, root / "models.csv")
    tuned = list(recipes.values())
    deits = [recipes["meso_deit_3h"], recipes["meso_deit_6h"]]
    val = micro_datasets(tuned[0].config().data_kwargs)[1]
    seeds = MESO_SEEDS
    tables = {
        "predictions": lambda: experiments.predictions_table(tuned, seeds, root=root, refresh=args.refresh),
        "head_similarity_images": lambda: experiments.head_similarity_images_table(deits, seeds, root=root,
                                                                                   refresh=args.refresh),
        "ablation_images": lambda: experiments.ablation_images_table(deits, seeds, root=root, refresh=args.refresh),
        "ablation_heads_images": lambda: experiments.ablation_heads_images_table(deits[:1], seeds, root=root,
                                                                                 refresh=args.refresh),
        "gradcam": lambda: experiments.gradcam_table([(recipes[k], s) for k, s in MESO_GRADCAM_KEYS], min_side=7,
                                                     root=root, refresh=args.refresh),
        "gradcam_images": lambda: experiments.gradcam_images_table(MESO_GRADCAM_LAYERS, seeds, recipes=recipes,
                                                                   root=root, refresh=args.refresh)}
    for name, build in tables.items():
        print(f"{name}: {len(build())} rows -> {table_path(name, root)}", file=sys.stderr)
    write_csv(frontier.training_curves(replicates, root=root), root / "training_curves.csv.gz")
    write_csv(pd.DataFrame({"image": range(len(val)), "label": val.labels.numpy(), "source": val.sources.numpy()}),
              root / "val_sources.csv")
    train_wall = time.perf_counter() - t0
    sweep = {k: recipes[k] for keys in MESO_FAMILIES.values() for k in keys}
    if args.retrain or missing or not (root / "latency_rounds.csv").is_file():  # timed once the cores are quiet
        latency = frontier.sweep_latency(sweep, root=root, rounds=args.rounds)
        write_csv(latency.assign(cpu=cpu_name(), host=platform.node(), torch=torch.__version__),
                  root / "latency_rounds.csv")
    from .core.tables import read_csv
    latency = read_csv(root / "latency_rounds.csv")
    predictions = read_csv(table_path("predictions", root))
    write_csv(frontier.frontier_table(recipes, MESO_FAMILIES, predictions, latency, clusters=val.sources.numpy(),
                                      models=models), root / "frontier.csv")
    wall = time.perf_counter() - t0
    previous = _provenance(root)
    write_json({"command": "python -m analysis.ablations " + " ".join(sys.argv[1:]), "commit": commit,
                "seeds": list(seeds), "models": len(recipes), "replicates": len(replicates),
                "search_runs": len(search), "workers": args.threads, "host": platform.node(),
                "cpu": cpu_name(), "threads": args.threads, "torch": torch.__version__,
                "train_seconds_total": round(float(models.train_seconds.sum()), 1),
                "trained_this_run": missing, "wall_seconds_this_run": round(wall, 1),
                "wall_seconds_before_timing": round(train_wall, 1),
                **from_scratch(previous, missing, len(replicates), wall, commit)}, root / "suite.json")
    return 0


def _provenance(root) -> dict:
    """The suite.json a previous run left in `root` ({} if none or unreadable: it is rewritten)."""
    try:
        previous = json.loads((root / "suite.json").read_text())
    except (OSError, ValueError):
        return {}
    return previous if isinstance(previous, dict) else {}


def from_scratch(previous: dict, trained: int, total: int, wall: float, commit: str) -> dict:
    """The suite's from-scratch cost for its provenance: this run's wall time and commit when it
    trained all `total` models, else what the `previous` provenance recorded (a resumed or cached
    run says nothing about the cost from scratch)."""
    if trained == total:
        return {"wall_seconds_from_scratch": round(wall, 1), "from_scratch_commit": commit}
    return {k: previous[k] for k in ("wall_seconds_from_scratch", "from_scratch_commit") if k in previous}


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
