"""analysis.cost.zoo: one model of every timm module counted; the committed table re-counted."""
import math

import pandas as pd
import pytest
import timm
import torch
import torch.nn.functional as F

from analysis.core.paths import project_root
from analysis.cost.counter import CostAnalysis
from analysis.cost.zoo import ZOO_COLUMNS, _fvcore_total, count_model, smallest_models

pytestmark = pytest.mark.usefixtures("one_thread")


def test_smallest_model_of_a_module_has_the_fewest_parameters():
    assert smallest_models(["shvit", "efficientvit_msra", "levit"]) == {
        "shvit": "shvit_s1", "efficientvit_msra": "efficientvit_m0",
        "levit": "levit_128s"}  # 7.8 M: levit_conv_128s has as many, and comes after it in name order


def test_a_row_agrees_with_fvcore_and_meta():
    row = count_model("efficientvit_m0", "efficientvit_msra")
    assert set(row) == set(ZOO_COLUMNS) and row["error"] == "" and row["unsupported_ops"] == ""
    assert (row["macs"], row["params"], row["resolution"], row["counted_on"]) == (79196672, 2334916, 224, "cpu")
    assert row["fvcore_macs"] == row["macs"] and row["fvcore_rel_diff"] == 0
    on_meta = count_model("efficientvit_m0", "efficientvit_msra", real_budget=0)
    assert on_meta["counted_on"] == "meta" and on_meta["fvcore_note"].startswith("not run")
    assert {k: on_meta[k] for k in ("macs", "params", "mem_bytes")} == {k: row[k] for k in ("macs", "params",
                                                                                           "mem_bytes")}


def test_attention_fvcore_cannot_see_is_added_by_hand():
    row = count_model("deit_tiny_patch16_224")
    assert row["attention_macs"] == 12 * 3 * 197 * 197 * 128  # 12 blocks, 3 heads, q k^T and attn v of dim 64
    assert row["fvcore_macs"] + row["attention_macs"] == row["macs"] and row["fvcore_rel_diff"] == 0


def _committed() -> pd.DataFrame:
    return pd.read_csv(project_root() / "results" / "zoo_counts.csv", keep_default_na=False,
                       converters={"fvcore_rel_diff": lambda v: float(v) if v else math.nan})


@pytest.mark.artifacts
def test_committed_table_counts_every_timm_module():
    """One row per timm model module, each counted (no error, macs > 0), each listing its unsupported ops; where
    fvcore ran, the totals agree (fvcore plus attention by hand), or differ by exactly the macs fvcore's einsums
    rounded away (its note says how many), or fvcore skipped an op counted here."""
    zoo = _committed()
    assert list(zoo.columns) == ZOO_COLUMNS and sorted(zoo["module"]) == sorted(timm.list_modules())
    assert (zoo["error"] == "").all() and (zoo["macs"].astype(int) > 0).all()
    compared = zoo[zoo["fvcore_rel_diff"].notna()]
    assert len(compared) >= 0.8 * len(zoo)
    rounded = compared["fvcore_note"].str.extract(r"^einsum rounded by fvcore: exact is ([+-]\d+) macs", expand=False)
    assert (compared["macs"].astype(int) - compared["fvcore_macs"].astype(int) - compared["attention_macs"].astype(int)
            == rounded.fillna(0).astype(int))[rounded.notna()].all()  # the whole difference, to the mac
    assert set(compared.loc[rounded.notna(), "model"]) == {"mvitv2_tiny", "samvit_base_patch16_224"}
    differ = compared[(compared["fvcore_rel_diff"].abs() > 1e-9) & rounded.isna()]
    assert (differ["fvcore_skipped"] != "").all(), differ[["model", "fvcore_rel_diff"]]
    assert (zoo.loc[zoo["fvcore_rel_diff"].isna(), "fvcore_note"] != "").all()


@pytest.mark.slow
@pytest.mark.artifacts
def test_committed_rows_recount_the_same():
    """A few rows (the small models, every fifth) counted again equal the committed numbers."""
    zoo = _committed()
    small = zoo[(zoo["counted_on"] == "cpu") & (zoo["macs"].astype(int) < 2e9)].iloc[::5]
    for r in small.itertuples():
        row = count_model(r.model, r.module)
        assert [row[k] for k in ("params", "macs", "mem_bytes", "attention_macs")] == \
            [int(getattr(r, k)) for k in ("params", "macs", "mem_bytes", "attention_macs")], r.model
        assert row["unsupported_ops"] == r.unsupported_ops
        assert row["fvcore_rel_diff"] == pytest.approx(r.fvcore_rel_diff, abs=1e-12, nan_ok=True), r.model


class Fn(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def test_rules_the_sweep_found_missing():
    """By hand: an LSTM layer multiplies every step's input by w_ih and hidden state by w_hh (Sequencer);
    linear 1-d interpolation reads 2 taps per output (NaFlexViT); fold sums patches back, additions only (VOLO)."""
    lstm = CostAnalysis(torch.nn.LSTM(8, 16, batch_first=True), torch.randn(2, 5, 8), fuse=False)
    assert lstm.total() == 2 * 5 * (4 * 16 * 8 + 4 * 16 * 16) and not lstm.unsupported_ops()
    linear = CostAnalysis(Fn(lambda x: F.interpolate(x, size=20, mode="linear")), torch.randn(1, 4, 10), fuse=False)
    assert linear.total() == 2 * 4 * 20 and not linear.unsupported_ops()
    fold = CostAnalysis(Fn(lambda x: F.fold(x, (4, 4), 2)), torch.randn(1, 3 * 4, 9), fuse=False)
    assert fold.total() == 0 and not fold.unsupported_ops()


def test_fvcore_rounds_einsum_to_four_significant_digits():
    """SAM's relative-position einsum at 224 px by hand: 12 heads x 14 x 14 queries x 14 positions x 64 channels
    = 2,107,392 macs; fvcore reads numpy's einsum_path printout (4.215e+06 flops) as 2,107,500, and the row
    notes the 108 macs it is short."""
    rel = torch.randn(14, 14, 64)
    model = Fn(lambda q: torch.einsum("bhwc,hkc->bhwk", q, rel))
    q = torch.randn(12, 14, 14, 64)
    exact = 12 * 14 * 14 * 14 * 64
    assert CostAnalysis(model, q, fuse=False).total() == exact
    total, skipped, why, off = _fvcore_total(model, q)
    assert (total, off, why) == (2107500, -108, "") and exact == total + off


@pytest.mark.slow
def test_mvitv2_differs_from_fvcore_by_its_einsum_rounding():
    """MViTv2-T's 20 relative-position einsums: fvcore's rounding leaves it 16 macs short, the whole difference."""
    row = count_model("mvitv2_tiny", "mvitv2")
    assert row["macs"] - row["fvcore_macs"] - row["attention_macs"] == 16 and row["fvcore_note"].startswith(
        "einsum rounded by fvcore: exact is +16 macs")
