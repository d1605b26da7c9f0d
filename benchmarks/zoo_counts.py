"""Count one model of every timm model module (issue 28): writes `results/zoo_counts.csv`.

Picks the smallest model of each module (fewest parameters, counted on the meta device; see
`analysis.cost.zoo`), counts it at its pretrained-config resolution, BatchNorm folded, and compares the
total with fvcore plus attention by hand. Progress bars on stderr; the CSV is written atomically after every
model, and a run that finds it keeps its rows (a stopped sweep goes on where it was).

    python benchmarks/zoo_counts.py                                 # every module (tens of minutes on 2 cores)
    python benchmarks/zoo_counts.py --modules shvit levit --out /tmp/zoo.csv
    python benchmarks/zoo_counts.py --models-from results/zoo_counts.csv   # re-count the committed picks
"""
import argparse
import sys

import pandas as pd

from analysis.cost.zoo import smallest_models, zoo_counts


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--modules", nargs="+", help="timm model modules (default: all of them)")
    p.add_argument("--models-from", metavar="CSV", help="take the models from a zoo table instead of picking them")
    p.add_argument("--no-fvcore", action="store_true", help="skip the comparison with fvcore")
    p.add_argument("--out", default="results/zoo_counts.csv")
    args = p.parse_args()
    if args.models_from:
        picks = pd.read_csv(args.models_from).set_index("module")["model"].to_dict()
        picks = {m: n for m, n in picks.items() if not args.modules or m in args.modules}
    else:
        picks = smallest_models(args.modules, progress=True)
    table = zoo_counts(picks, fvcore=not args.no_fvcore, out=args.out, progress=True)
    failed, unsupported = table["error"].fillna("").ne(""), table["unsupported_ops"].fillna("").ne("")
    diff = table["fvcore_rel_diff"].abs()
    print(f"wrote {args.out}: {len(table)} models, {int(failed.sum())} failed, {int(unsupported.sum())} with "
          f"unsupported ops, {int(diff.notna().sum())} compared with fvcore ({int((diff > 1e-9).sum())} differ)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
