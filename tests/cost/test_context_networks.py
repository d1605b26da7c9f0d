"""The calibration's context networks: seeded, within their MAC budget, built from every block, attention only on
maps small enough, and runnable."""
import numpy as np
import torch

from analysis.cost.context_networks import BLOCKS, MAX_NETWORK_MACS, MAX_TOKENS, NETWORKS, TransformerBlock, \
    network_plan
from analysis.cost.counter import CostAnalysis


def test_the_same_seed_builds_the_same_networks_and_another_seed_others():
    (m1, x1), (m2, x2) = network_plan(0, 1)[0](), network_plan(0, 1)[0]()
    assert torch.equal(x1, x2) and str(m1) == str(m2)
    assert all(torch.equal(p, q) for p, q in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert [str(b()[0]) for b in network_plan(1, 3)] != [str(b()[0]) for b in network_plan(0, 3)]


def test_the_plan_fits_its_budget_uses_every_block_and_puts_attention_on_small_maps():
    plan = [build() for build in network_plan(0, NETWORKS)]
    assert len(plan) == NETWORKS
    seen = set()
    for model, x in plan:
        assert x.shape[0] in (8, 16) and x.shape[1] == 3 and 160 <= x.shape[-1] <= 256
        cost = CostAnalysis(model, x, fuse=False)
        assert 0 < cost.total("macs") <= MAX_NETWORK_MACS
        seen |= {type(m) for m in model.modules()}
        for name, shape in cost.by_module().set_index("module")["out_shape"].items():
            if isinstance(model.get_submodule(name), TransformerBlock):
                assert shape[-1] * shape[-2] <= MAX_TOKENS
    assert set(BLOCKS) <= seen


def test_a_network_runs_and_its_output_is_finite():
    model, x = network_plan(0, 1)[0]()
    with torch.no_grad():
        y = model(x)
    assert y.shape == (x.shape[0], 1000) and np.isfinite(y.numpy()).all()
