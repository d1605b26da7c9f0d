"""`python -m analysis.ablations`: the micro-scale reproductions of the SHViT ablations, trained on
cluttered digits on two CPU cores (library: `analysis.lab.recipes`, `.cache`, `.experiments`).

Trains the recipes whose checkpoints are missing, then writes each table as
`results/micro/<table>.csv` (under `--root`; default from `core.paths.micro_root`). `--meso` runs
the meso suite instead (a learning-rate search on a tune split, then the claims' models and the
Fig. 2 speed-accuracy sweep at 112 px from 5 seeds, trained two at a time) into `results/meso/`,
with its provenance in `suite.json`.
"""
from __future__ import annotations

import os
import sys

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
    from .core.paths import meso_root, micro_root
    from .lab import suites

    if args.list:
        suites.list_recipes(micro_root(args.root))
    elif args.meso:
        suites.meso_suite(meso_root(args.root), rounds=args.rounds, workers=args.threads, retrain=args.retrain,
                          refresh=args.refresh, command="python -m analysis.ablations " + " ".join(sys.argv[1:]))
    elif not (args.all or args.train or args.table or args.seeds):
        raise UserError("nothing to do: pass --all, --train KEY..., --table NAME..., --seeds, --meso or --list")
    else:
        suites.micro_suite(micro_root(args.root), everything=args.all, keys=args.train, table_names=args.table or (),
                           seeds=args.seeds, retrain=args.retrain, refresh=args.refresh, threads=args.threads)
    return 0


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
