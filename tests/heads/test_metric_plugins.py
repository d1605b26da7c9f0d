"""Head metrics as plugins: a toy metric defined here, outside the package, runs end to end (one process
and under torchrun), the registry refuses duplicates unless told to replace, a class passed directly is
used without registering it, unknown names are user errors, and `all_reduce` sums every declared state."""
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from analysis.core.errors import UserError
from analysis.core.names import HEAD_METRICS
from analysis.core.tables import table_differences
from analysis.heads.attention import AttentionCapture, AttentionMaps
from analysis.heads.metrics import (METRICS, HeadMetric, HeadStatistics, Row, head_metric_names, register_head_metric,
                                    unregister_head_metric)
from analysis.heads.similarity import head_similarity
from tests.heads.test_distributed import _batches, _setup

ROOT = Path(__file__).resolve().parents[2]
F64 = torch.float64


class MeanMaxAttention(HeadMetric):
    """Toy: the mean over queries of the largest attention weight, per head (a tensor and an int state)."""

    key = "mean_max_attention"
    unit = "fraction"

    def __init__(self, maps):
        super().__init__(maps)
        self.add_state("total", torch.zeros(self.num_heads, dtype=F64, device=self.device))
        self.add_state("queries", 0)

    def update(self, batch):
        top = batch.attn.amax(-1)                         # [G, h, N]
        self.total += top.sum((0, 2), dtype=F64)
        self.queries += top.shape[0] * top.shape[2]

    def rows(self, counts):
        per_head = self.total / self.queries
        yield Row(self.key, per_head.mean())
        for i in range(self.num_heads):
            yield Row(self.key, per_head[i], head=i)


@pytest.fixture
def registered():
    """The toy, registered for one test."""
    register_head_metric(MeanMaxAttention)
    yield MeanMaxAttention
    unregister_head_metric(MeanMaxAttention.key)


def _images():
    model, x, y = _setup()
    return model, [b[0] for b in _batches(x, y)]


def _direct(model, batches):
    """{(layer, head): mean over images and queries of max_k A}, from the captured maps."""
    seen = {}
    with torch.no_grad(), AttentionCapture(model, lambda m: seen.setdefault(m.layer, []).append(m.attn),
                                           exact_outputs=False):
        for images in batches:
            model(images)
    out = {}
    for layer, maps in seen.items():
        per_head = torch.cat(maps).double().amax(-1).mean((0, 2))
        out.update({(layer, None): per_head.mean().item(), **{(layer, i): v for i, v in enumerate(per_head.tolist())}})
    return out


def test_builtin_metrics_are_registered_under_the_names_the_cli_offers():
    assert METRICS == HEAD_METRICS and head_metric_names()[:len(METRICS)] == METRICS


def test_a_registered_toy_metric_runs_end_to_end(registered):
    model, batches = _images()
    df = head_similarity(model, batches, metrics=["mean_pairwise_cosine", "mean_max_attention"])
    toy = df[df.metric == "mean_max_attention"]
    expected = _direct(model, batches)
    assert len(toy) == len(expected) == 2 * 4 and set(toy.num_images) == {12} and toy.applicable.all()
    assert set(toy.unit) == {"fraction"} and set(df[df.metric == "mean_pairwise_cosine"].unit) == {"fraction"}
    for row in toy.itertuples():
        key = (row.layer, None if pd.isna(row.head) else int(row.head))
        assert row.value == pytest.approx(expected[key], rel=1e-6)
    # the builtin rows come first and are those of a run without the toy
    alone = head_similarity(model, batches, metrics=["mean_pairwise_cosine"])
    pd.testing.assert_frame_equal(df[df.metric == "mean_pairwise_cosine"].reset_index(drop=True), alone,
                                  check_exact=True)
    assert list(df.groupby("layer", sort=False).metric.first()) == ["mean_pairwise_cosine"] * 2


def test_registering_a_key_twice_is_refused_unless_replace(registered):
    with pytest.raises(ValueError, match="already registered.*replace=True"):
        register_head_metric(MeanMaxAttention)

    @register_head_metric(replace=True)
    class Halved(MeanMaxAttention):
        def rows(self, counts):
            return [row._replace(value=row.value / 2) for row in super().rows(counts)]

    order = head_metric_names()
    model, batches = _images()
    half = head_similarity(model, batches, metrics=["mean_max_attention"])
    register_head_metric(MeanMaxAttention, replace=True)
    full = head_similarity(model, batches, metrics=["mean_max_attention"])
    assert head_metric_names() == order and order[-1] == "mean_max_attention"  # the key keeps its place
    assert (half.value * 2).tolist() == pytest.approx(full.value.tolist(), rel=1e-12)


def test_a_class_passed_directly_is_used_without_registering(registered):
    model, batches = _images()
    by_name = head_similarity(model, batches, metrics=["mean_max_attention"])
    unregister_head_metric("mean_max_attention")
    try:
        before = head_metric_names()
        scoped = head_similarity(model, batches, metrics=[MeanMaxAttention])
        assert head_metric_names() == before and "mean_max_attention" not in before
        pd.testing.assert_frame_equal(scoped, by_name, check_exact=True)
        with pytest.raises(UserError, match="unknown head metric 'mean_max_attention'"):
            HeadStatistics(["mean_max_attention"])
    finally:
        register_head_metric(MeanMaxAttention)


def test_a_scoped_class_overrides_a_builtin_in_its_place():
    class Entropy2(HeadMetric):
        key = "attention_entropy"
        unit = "nats"

        def update(self, batch):
            pass

        def rows(self, counts):
            yield Row(self.key, 2.0)

    stats = HeadStatistics([Entropy2, "mean_pairwise_cosine"])
    stats.update(AttentionMaps(layer="l", index=0, stage=1, family="t", num_heads=2,
                               attn=torch.full((1, 2, 3, 3), 1 / 3), batch_size=1, windows=1))
    df = stats.to_frame()
    assert df.metric.tolist() == ["mean_pairwise_cosine", "attention_entropy"] and df.value.iloc[1] == 2.0
    with pytest.raises(ValueError, match="two head metrics named 'attention_entropy'"):
        HeadStatistics(["attention_entropy", Entropy2])


def test_unknown_names_and_bad_declarations_are_refused():
    with pytest.raises(UserError, match="unknown head metric 'cosine'; known: mean_pairwise_cosine, "):
        HeadStatistics(["mean_max_cosine", "cosine"])
    with pytest.raises(UserError, match="unknown head metric 'cosine'"):
        unregister_head_metric("cosine")
    with pytest.raises(TypeError, match="HeadMetric subclass"):
        HeadStatistics([object])

    class Unitless(MeanMaxAttention):
        key, unit = "unitless", ""
    with pytest.raises(TypeError, match="Unitless has no `unit`"):
        register_head_metric(Unitless)

    class MaxState(MeanMaxAttention):
        def __init__(self, maps):
            HeadMetric.__init__(self, maps)
            self.add_state("peak", torch.zeros(1), reduce="max")
    with pytest.raises(ValueError, match="reduce='max'; supported: sum"):
        HeadStatistics([MaxState]).update(AttentionMaps(layer="l", index=0, stage=1, family="t", num_heads=1,
                                                        attn=torch.ones(1, 1, 1, 1), batch_size=1, windows=1))


class _TwinWorld:
    """Two processes that saw the same images: every sum doubles. Records what it reduced."""
    size, rank = 2, 0

    def __init__(self):
        self.reduced = []

    def gather(self, obj):
        return [obj, obj]

    def sum_(self, tensors):
        self.reduced += tensors
        for t in tensors:
            t.mul_(2)


def test_all_reduce_sums_every_declared_state_and_nothing_else():
    model, batches = _images()
    stats = HeadStatistics(list(METRICS) + [MeanMaxAttention])
    with torch.no_grad(), AttentionCapture(model, stats.update, head_outputs=stats.needs_head_outputs):
        for images in batches:
            model(images)
    one = stats.to_frame()
    declared = stats.declared_states()
    before = [torch.as_tensor(getattr(m, n)).clone() for m, n in declared]
    tensors = [getattr(m, n) for m, n in declared if isinstance(getattr(m, n), torch.Tensor)]
    ints = [n for m, n in declared if not isinstance(getattr(m, n), torch.Tensor)]
    assert len(tensors) > one.layer.nunique() * len(METRICS) and set(ints) == {"tokens", "queries"}
    world = _TwinWorld()
    stats.all_reduce(world)
    counts, *reduced = world.reduced  # one count tensor (per layer: images, instances; then the int states)
    assert len(reduced) == len(tensors) and all(a is b for a, b in zip(reduced, tensors))
    assert counts.numel() == 2 * one.layer.nunique() + len(ints)
    for (m, n), old in zip(declared, before):  # every declared state summed: doubled
        assert torch.equal(torch.as_tensor(getattr(m, n)), 2 * old)
    two = stats.to_frame()
    assert (two.num_images == 24).all()
    pd.testing.assert_frame_equal(two.drop(columns="num_images"), one.drop(columns="num_images"), check_exact=True)


TORCHRUN_SCRIPT = """
import sys
import torch
from analysis.core.distributed import World
from analysis.heads.metrics import register_head_metric
from analysis.heads.similarity import head_similarity
from tests.heads.test_distributed import _batches, _setup
from tests.heads.test_metric_plugins import MeanMaxAttention

register_head_metric(MeanMaxAttention)
torch.set_num_threads(1)
world = World.from_env()
model, x, y = _setup()
batches = [b[0] for b in _batches(x, y, world.rank, world.size)]
df = head_similarity(model, batches, metrics=["mean_max_cosine", "mean_max_attention"], world=world)
if world.main:
    df.to_pickle(sys.argv[1])
world.close()
"""


@pytest.mark.slow
def test_a_registered_toy_metric_under_torchrun_equals_one_process(tmp_path, registered):
    model, batches = _images()
    one = head_similarity(model, batches, metrics=["mean_max_cosine", "mean_max_attention"])
    (tmp_path / "toy.py").write_text(TORCHRUN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    r = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "toy.py", str(tmp_path / "two.pkl")], env=env,
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    two = pd.read_pickle(tmp_path / "two.pkl")
    assert (two.num_images == 12).all() and (two.metric == "mean_max_attention").sum() == 2 * 4
    assert table_differences(two, one, rtol=1e-6, atol=0) == []
    assert not math.isnan(two[two.metric == "mean_max_attention"].value.sum())
