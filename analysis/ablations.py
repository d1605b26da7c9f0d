"""`python -m analysis.ablations`: the micro-scale reproductions of the SHViT ablations, trained on
cluttered digits on two CPU cores (library: `analysis.lab.recipes`, `.cache`, `.experiments`).

Trains the recipes whose checkpoints are missing, then writes each table as
`results/micro/<table>.csv` (under `--root`; default from `core.paths.micro_root`).
"""
from __future__ import annotations

import sys
import time

from ._cli import ArgumentParser, command, positive_int
from .core.errors import UserError

TABLE_NAMES = ("gradcam", "heads", "macro", "single_head")  # = sorted(lab.experiments.TABLES)
EPILOG = """examples:
  python -m analysis.ablations --all                 # train missing recipes, write results/micro/*.csv
  python -m analysis.ablations --list
  python -m analysis.ablations --train stem4 stem8   # just these models
  python -m analysis.ablations --table macro --refresh
  python -m analysis.ablations --seeds               # the scorecard's seed replicates and per-image tables"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m analysis.ablations", epilog=EPILOG,
                       description="Micro-scale reproductions of the SHViT ablations, trained on cluttered digits.")
    p.add_argument("--all", action="store_true", help="train every recipe and build every table")
    p.add_argument("--train", nargs="+", metavar="KEY", help="train (or load) these recipes")
    p.add_argument("--table", nargs="+", choices=TABLE_NAMES, help="build these tables")
    p.add_argument("--seeds", action="store_true",
                   help="train every recipe from seeds 1 and 2 as well (~25 min on 2 cores) "
                        "and write their per-image tables (predictions, head_similarity_images)")
    p.add_argument("--list", action="store_true", help="list the recipes and their cache state")
    p.add_argument("--retrain", action="store_true", help="ignore cached checkpoints")
    p.add_argument("--refresh", action="store_true", help="recompute cached tables")
    p.add_argument("--threads", type=positive_int, default=2, help="torch CPU threads (the suite's budget: 2 cores)")
    p.add_argument("--root", default=None,
                   help="results folder (default: results/micro of the project, or $SHVIT_LAB_ROOT/results/micro)")
    return p


def run(args) -> int:
    from .core.files import check_writable, write_json
    from .core.paths import micro_root
    from .core.runtime import set_threads
    from .core.tables import read_csv
    from .lab.cache import checkpoint_path, train_suite
    from .lab.experiments import REPLICATE_TABLES, TABLES
    from .lab.recipes import RECIPES, SEEDED_KEYS, SEEDS, recipe

    root = micro_root(args.root)
    for key in args.train or ():
        recipe(key)  # unknown keys fail before anything is trained
    if args.list:
        for key, r in RECIPES.items():
            state = "cached" if checkpoint_path(key, root).is_file() else "missing"
            print(f"{key:16s} {r.digest()} {state:8s} {r.description}")
            for seed in SEEDS[1:] if key in SEEDED_KEYS else ():
                state = "cached" if checkpoint_path(key, root, seed).is_file() else "missing"
                print(f"{'  seed ' + str(seed):16s} {recipe(key, seed).digest()} {state:8s}")
        return 0
    if not (args.all or args.train or args.table or args.seeds):
        raise UserError("nothing to do: pass --all, --train KEY..., --table NAME..., --seeds or --list")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create results folder {root} ({e.strerror})") from None
    check_writable(root / "models.csv")
    set_threads(args.threads)
    t0 = time.perf_counter()
    if args.all or args.train:
        models = train_suite(args.train if args.train and not args.all else None, root=root, retrain=args.retrain)
        print(models[["key", "val_top1", "train_seconds"]].to_string(index=False), file=sys.stderr)
    for name in (TABLES if args.all else args.table or ()):
        df = TABLES[name](root=root, refresh=args.refresh or args.retrain)
        print(f"{name}: {len(df)} rows -> {root / (name + '.csv')}", file=sys.stderr)
    for name in REPLICATE_TABLES if args.seeds else ():
        df = REPLICATE_TABLES[name](root=root, refresh=args.refresh or args.retrain)
        print(f"{name}: {len(df)} rows -> {root / (name + '.csv')}", file=sys.stderr)
    if args.all:
        m = read_csv(root / "models.csv")
        write_json({"models": len(m), "train_seconds_total": round(float(m["train_seconds"].sum()), 1),
                    "wall_seconds_this_run": round(time.perf_counter() - t0, 1),
                    "cache_bytes": sum(p.stat().st_size for p in (root / "checkpoints").glob("*.safetensors"))},
                   root / "suite.json")
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
