"""`importance_agreement`: Spearman rho of head importance against the top-1 a head's removal costs, by hand."""
import pandas as pd
import pytest

from analysis.lab.experiments import importance_agreement


def test_rank_agreement_over_all_heads_and_within_layers():
    table = pd.DataFrame({
        "key": ["a"] * 6 + ["b"] * 4, "heads": [3] * 6 + [2] * 4,
        "layer": [1, 1, 1, 2, 2, 2, 1, 1, 2, 2], "head": [0, 1, 2, 0, 1, 2, 0, 1, 0, 1],
        "importance": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.1, 0.2, 0.3, 0.4],
        "remove1_cost_pct": [1, 2, 3, 4, 5, 6, 2, 1, 0.5, 0.5],  # b: reversed in layer 1, layer 2 all equal
    })
    out = importance_agreement(table).set_index("key")
    assert out.loc["a", ["rho_all", "rho_within_layer_mean", "layers_compared", "num_heads_scored"]].tolist() == \
        [pytest.approx(1.0), pytest.approx(1.0), 2, 6]
    assert out.loc["b", "rho_within_layer_mean"] == pytest.approx(-1.0) and out.loc["b", "layers_compared"] == 1
