"""How held-out sets 6 and 7 of the calibrated predictor (`names.PREDICTOR_HELD_OUT_MODELS_6`, `_7`) were drawn,
before any of their models was predicted or timed; it prints the draw, and `names` holds what it printed.

No timm model module is left that no earlier set used (but deepseek_vit, 110 GMACs per image), so set 6 holds
models no set ever predicted or timed, from the modules of sets 1-4 whose results were only scored: not a module
of the tuning models (whose models design decisions looked at), and not a module of any model an earlier set
missed by more than 25% (those misses were looked into after scoring). Modules in a seeded random order; from
each, one of its own models (timm's entrypoints) in no set, in a seeded random order, the first one the cost
counter counts (on meta) at no more than `MAX_MACS` per image at its pretrained resolution; until `MODELS`. Not
candidates: timm's test models (`test_*`, built for its unit tests) and a distilled variant of a model in a set
(`*_dist`, `*_distilled`: the same network with a second head). Set N sees only the sets declared before it (its
"earlier misses" include set 6's for set 7) and uses seed N. Set 7 draws from the modules set 6 did not use
first; only 4 of them still hold a model no set used within `MAX_MACS`, so it goes on to set 6's modules (in a
seeded random order, one model each, again none a set used); with one model per module still too few, a second
pass takes the next model of each module in the same order until `MODELS`.

    python benchmarks/draw_held_out.py [--set 7]
"""
import argparse
import random
import re
import warnings
from pathlib import Path

import pandas as pd
import timm

from analysis.core.predictor_sets import HELD_OUT_SETS, PREDICTOR_SETS
from analysis.cost.zoo import _counted, _timm_models

RESULTS = Path(__file__).resolve().parents[1] / "results"
MODELS, MAX_MACS = 24, 2e9


def module_of(name: str):
    return timm.models._registry._model_to_module.get(name)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--set", type=int, choices=(6, 7), default=7)
    n = p.parse_args().set
    before = HELD_OUT_SETS[:n - 1]
    used = {m for s in (*before, PREDICTOR_SETS["tuning"], PREDICTOR_SETS["figure"]) for m in s.models}
    tuning = {module_of(m) for m in PREDICTOR_SETS["tuning"].models} - {None}
    missed = set()
    for s in before:
        summary = pd.read_csv(RESULTS / s.file("summary"))
        missed |= {module_of(m) for m in summary.loc[summary["error_pct"].abs() > 25, "model"]}
    earlier = {module_of(n) for s in HELD_OUT_SETS[:4] for n in s.models} - {None}
    drawn = {module_of(m) for s in before[5:] for m in s.models}   # sets 6 .. N-1
    rng = random.Random(n)
    fresh, again = sorted(earlier - tuning - missed - drawn), sorted((earlier - tuning - missed) & drawn)
    rng.shuffle(fresh)
    rng.shuffle(again)
    modules = fresh + again
    print(f"{len(modules)} modules eligible: not the tuning models' ({len(tuning)}), no miss over 25% "
          f"({len(missed)} modules)")
    picks, remaining = [], {}
    for round_ in range(2):   # a second model per module, in the same order, only if one each is too few
        for module in modules:
            if round_ == 0:
                names = sorted(n for n in _timm_models(module) if n not in used and not n.startswith("test_")
                               and re.sub(r"_dist(illed)?(?=_|$)", "", n) not in used)
                rng.shuffle(names)
                remaining[module] = iter(names)
            for name in remaining[module]:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        macs = _counted(name, meta=True)[0]["macs"]
                except Exception:  # noqa: BLE001  a model the counter cannot count on meta is no candidate
                    continue
                if macs <= MAX_MACS:
                    picks.append((name, module, macs))
                    break
            if len(picks) == MODELS:
                break
        if len(picks) == MODELS:
            break
    for name, module, macs in picks:
        print(f"{name:40s} {module:28s} {macs / 1e9:.2f} GMACs")
    print(tuple(n for n, _, _ in picks))


if __name__ == "__main__":
    main()
