"""Does the meso suite reproduce elsewhere? A from-scratch run of the same command on another machine, set
beside the committed one.

Another CPU picks other kernels, so its trained weights differ as another seed's do: agreement is judged
against the seeds' own spread, never byte for byte. Per model, each run's mean val top-1 over its seeds and
Welch's t-test of the difference (seeds the unit; `scipy.stats.ttest_ind`), Holm-adjusted over the models;
per registered meso row of the scorecard, each run's estimate, interval and verdict.

    >>> top1_agreement("/data/meso-rerun")            # against results/meso
    >>> verdict_agreement("/data/meso-rerun")
"""
from __future__ import annotations

from typing import Optional

import pandas as pd

from ..core.errors import UserError, not_a_command
from ..core.paths import PathLike, meso_root
from ..core.tables import read_csv

__all__ = ["top1_agreement", "verdict_agreement"]


def _models(root) -> pd.DataFrame:
    path = meso_root(root) / "models.csv"
    if not path.is_file():
        raise UserError(f"{path} does not exist: run `python -m analysis.ablations --meso --root {path.parent}` first")
    return read_csv(path)


def top1_agreement(replicate: PathLike, reference: Optional[PathLike] = None) -> pd.DataFrame:
    """One row per meso model: seeds, mean and between-seed SD of val top-1 in the `reference` suite (default
    results/meso) and the `replicate` suite, the difference (pp, replicate minus reference), Welch's p-value
    and its Holm adjustment over the models."""
    from scipy.stats import ttest_ind
    from statsmodels.stats.multitest import multipletests

    ref, rep = _models(reference), _models(replicate)
    rows = []
    for key, r in ref.groupby("key", sort=False):
        x, y = r["val_top1"].to_numpy(), rep.loc[rep["key"] == key, "val_top1"].to_numpy()
        if len(y) < 2:
            raise UserError(f"{replicate}: model {key} has {len(y)} trained seeds; the comparison needs at least 2")
        rows.append({"key": key, "seeds": len(x), "replicate_seeds": len(y), "reference_top1": x.mean(),
                     "replicate_top1": y.mean(), "difference_pp": y.mean() - x.mean(),
                     "reference_sd": x.std(ddof=1), "replicate_sd": y.std(ddof=1),
                     "p_value": float(ttest_ind(y, x, equal_var=False).pvalue)})
    out = pd.DataFrame(rows)
    out["p_holm"] = multipletests(out["p_value"], method="holm")[1]
    return out


def verdict_agreement(replicate: PathLike, reference: Optional[PathLike] = None) -> pd.DataFrame:
    """One row per registered meso row of the scorecard (`claims.scorecard`): its estimate, 95% interval and
    verdict computed from the `reference` suite and from the `replicate` suite, and whether the verdicts agree."""
    from .claims import scorecard

    columns = ["ours", "ci_low", "ci_high", "verdict"]
    cards = {}
    for name, root in (("reference", reference), ("replicate", replicate)):
        card = scorecard(meso=meso_root(root)).set_index("row")
        cards[name] = card[card.index.str.endswith("@meso")]
    out = pd.concat([cards["reference"][["title"]], cards["reference"][columns].add_suffix("_reference"),
                     cards["replicate"][columns].add_suffix("_replicate")], axis=1)
    out["same_verdict"] = out["verdict_reference"] == out["verdict_replicate"]
    return out.reset_index()


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
