"""The meso suite's one small search: per design, the learning rate (and, for the two Fig. 2 designs,
the augmentation) chosen on the writer-disjoint tune split, never on val.

The search is the same for every design: the design's base recipe (`MicroRecipe.design`; its first
recipe in `MESO_RECIPES`) trained from `SEARCH_SEED` for `SEARCH_EPOCH_SHARE` of its epochs (the
cosine schedule compressed to them) at its default learning rate times each of `LR_FACTORS`, scored by
top-1 on the tune split. Augmentation is decided first, on the two Fig. 2 designs: "shift" is used for
every design when, at each of those designs' best learning rate, it raises tune top-1 for both;
otherwise no design is augmented. Then every other design's learning rate is searched with that
augmentation. Each design's chosen learning rate is the best on tune (ties: the smaller). The members
of a design (e.g. the 16x16-stem sweep's sizes) share it.

    >>> table = search_table(root=meso_root())      # trains what is missing, one row per search run
    >>> choice = choose(table)                       # {design: {"lr": ..., "augment": ...}}
    >>> tuned_recipes(choice)                        # MESO_RECIPES with those settings
    >>> suite_recipes(meso_root())                   # the same, from a suite's committed lr_search.csv
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import pandas as pd
import torch
from torch.utils.data import DataLoader

from ..core.errors import UserError, not_a_command
from ..core.paths import PathLike, meso_root
from ..core.tables import read_csv
from .cache import cached_table, load_or_train, table_path, train_all
from .datasets import ClutteredDigits, DigitsConfig
from .recipes import MESO_RECIPES, STEM4, STEM16, MicroRecipe
from .augment import AUGMENTS
from .train import evaluate

__all__ = ["LR_FACTORS", "SEARCH_SEED", "SEARCH_EPOCH_SHARE", "AUGMENT_DESIGNS", "design_bases", "search_recipes",
           "search_table", "choose", "tuned_recipes", "suite_recipes"]

LR_FACTORS = (0.5, 1.0, 2.0)
SEARCH_SEED = 100  # not one of the replicates' seeds: the chosen setting's scored models are trained afresh
SEARCH_EPOCH_SHARE = 0.4
AUGMENT_DESIGNS = (STEM16, STEM4)


def design_bases(recipes: Mapping[str, MicroRecipe] = MESO_RECIPES) -> Dict[str, MicroRecipe]:
    """{design: the recipe its search trains}: each design's first recipe."""
    out: Dict[str, MicroRecipe] = {}
    for r in recipes.values():
        out.setdefault(r.design, r)
    return out


def search_recipes(base: MicroRecipe, augments=("none",)) -> list[MicroRecipe]:
    """The search runs of one design: its base recipe at each learning-rate factor and augmentation."""
    cfg = base.config()
    epochs = max(1, round(SEARCH_EPOCH_SHARE * cfg.epochs))
    return [base.with_train(lr=cfg.lr * f, augment=a, epochs=epochs, seed=SEARCH_SEED)
            for a in augments for f in LR_FACTORS]


def _tune_top1(runs: list[MicroRecipe], root, progress: bool) -> pd.DataFrame:
    rows = []
    for r in runs:
        model, _ = load_or_train(r, root=root, progress=progress)
        tune = ClutteredDigits("tune", DigitsConfig(**r.config().data_kwargs))
        top1 = evaluate(model, DataLoader(tune, batch_size=200), torch.device("cpu"), r.resolution)["top1"]
        cfg = r.config()
        rows.append({"design": r.design, "key": r.key, "lr": cfg.lr, "augment": cfg.augment, "epochs": cfg.epochs,
                     "seed": cfg.seed, "tune_top1": top1, "tune_images": len(tune), "digest": r.digest()})
    return pd.DataFrame(rows)


def search_table(recipes: Mapping[str, MicroRecipe] = MESO_RECIPES, *, root: Optional[PathLike] = None,
                 workers: int = 1, refresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """One row per search run (design, key, lr, augment, epochs, seed, tune_top1, tune_images, digest),
    training the runs that are missing; the augmentation search first, then the other designs at the
    augmentation it chose. Cached as `lr_search.csv` under `root`."""
    bases = design_bases(recipes)
    first = [r for d in AUGMENT_DESIGNS for r in search_recipes(bases[d], AUGMENTS)]
    train_all(first, root=root, workers=workers, progress=progress, desc="search: augmentation")
    head = cached_table("lr_search_augment", first, lambda: _tune_top1(first, root, False), root, refresh)
    augment = _augment_choice(head)
    rest = [r for d, base in bases.items() if d not in AUGMENT_DESIGNS for r in search_recipes(base, (augment,))]
    train_all(rest, root=root, workers=workers, progress=progress, desc="search: learning rate")
    return cached_table("lr_search", first + rest,
                        lambda: pd.concat([head.drop(columns="recipes"), _tune_top1(rest, root, False)],
                                          ignore_index=True), root, refresh)


def _best(rows: pd.DataFrame) -> pd.Series:
    """The row with the highest tune top-1 (ties: the smaller learning rate)."""
    return rows.sort_values(["tune_top1", "lr"], ascending=[False, True]).iloc[0]


def _augment_choice(table: pd.DataFrame) -> str:
    """"shift" if, for each Fig. 2 design, its best shifted run beats its best unaugmented run on tune."""
    helps = []
    for design in AUGMENT_DESIGNS:
        rows = table[table.design == design]
        best = {a: _best(rows[rows.augment == a]).tune_top1 for a in AUGMENTS}
        helps.append(best["shift"] > best["none"])
    return "shift" if all(helps) else "none"


def choose(table: pd.DataFrame) -> Dict[str, dict]:
    """{design: {"lr", "augment", "tune_top1"}}: the augmentation `_augment_choice` makes for all designs,
    and each design's best learning rate on tune with it."""
    augment = _augment_choice(table[table.design.isin(AUGMENT_DESIGNS)])
    out = {}
    for design, rows in table[table.augment == augment].groupby("design", sort=False):
        best = _best(rows)
        out[design] = {"lr": float(best.lr), "augment": augment, "tune_top1": float(best.tune_top1)}
    return out


def tuned_recipes(choice: Mapping[str, dict], recipes: Mapping[str, MicroRecipe] = MESO_RECIPES
                  ) -> Dict[str, MicroRecipe]:
    """`recipes` with each one's design's chosen learning rate and augmentation."""
    return {k: r.with_train(lr=choice[r.design]["lr"], augment=choice[r.design]["augment"])
            for k, r in recipes.items()}


def suite_recipes(root: Optional[PathLike] = None) -> Dict[str, MicroRecipe]:
    """The meso recipes as the suite in `root` (default `results/meso`) tuned them: its `lr_search.csv`, read
    without training anything; a one-line error if the suite has not run its search."""
    path = table_path("lr_search", meso_root(root))
    if not path.is_file():
        raise UserError(f"{path} does not exist: run `python -m analysis.ablations --meso` first")
    return tuned_recipes(choose(read_csv(path)))


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
