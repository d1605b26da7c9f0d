"""Meso suite: its recipes are the micro comparisons at 112 px (7x7 tokens after the 16x16 stem and
the 16x16 patches), and a slice of its committed numbers is recomputed from the committed seed-0
weights: predictions and head similarity of the first val images, within a stated tolerance."""
import json

import pandas as pd
import pytest
import torch

from analysis.ablations import from_scratch
from analysis.core.paths import meso_root
from analysis.heads.similarity import similarity_per_image
from analysis.lab import cache
from analysis.lab.datasets import ClutteredDigits, DigitsConfig
from analysis.lab.recipes import MESO_RECIPES, RECIPES, recipe
from shvit import get_config

SLICE = 400  # val images re-evaluated in CI


def _val(key: str) -> ClutteredDigits:
    """The recipe's val split alone (its training images are not needed here)."""
    return ClutteredDigits("val", DigitsConfig(**recipe(key).config().data_kwargs))


def test_meso_recipes_are_the_micro_comparisons_at_112_px():
    for key, r in MESO_RECIPES.items():
        micro = RECIPES[key.removeprefix("meso_")]
        assert r.model == micro.model and r.resolution == 112 and r.model_kwargs["img_size"] == 112
        assert {k: v for k, v in r.model_kwargs.items() if k not in ("img_size", "patch_size")} == \
            {k: v for k, v in micro.model_kwargs.items() if k not in ("img_size", "patch_size")}
        ours, theirs = r.config().to_dict(), micro.config().to_dict()
        assert {k for k in ours if ours[k] != theirs[k]} == {"model_kwargs", "data_kwargs"}  # same training recipe
        assert ours["data_kwargs"]["num_train"] > theirs["data_kwargs"]["num_train"]
    assert 112 // get_config("shvitlab_fig2_b").stem_stride == 7
    assert MESO_RECIPES["meso_deit_3h"].model_kwargs["patch_size"] == 16


def test_provenance_keeps_the_from_scratch_cost_until_a_run_trains_everything_again():
    scratch = from_scratch({}, trained=18, total=18, wall=2299.94, commit="abc")
    assert scratch == {"wall_seconds_from_scratch": 2299.9, "from_scratch_commit": "abc"}
    assert from_scratch(scratch, trained=0, total=18, wall=0.7, commit="def") == scratch   # cached run
    assert from_scratch(scratch, trained=5, total=18, wall=600.0, commit="def") == scratch  # resumed run
    assert from_scratch({}, trained=5, total=18, wall=600.0, commit="def") == {}              # never from scratch
    assert from_scratch(scratch, trained=18, total=18, wall=2400.0, commit="def")["wall_seconds_from_scratch"] == 2400.0


@pytest.mark.artifacts
def test_a_slice_of_the_committed_meso_numbers_is_recomputed_from_its_weights():
    root = meso_root()
    suite = json.loads((root / "suite.json").read_text())
    assert {"command", "commit", "seeds", "host", "wall_seconds_this_run", "wall_seconds_from_scratch"} <= set(suite)
    predictions = pd.read_csv(cache.table_path("predictions", root))
    for key in ("meso_fig2_b", "meso_deit_3h"):
        path = cache.checkpoint_path(key, root)
        assert path.is_file(), f"{path} is not committed"
        model, _ = cache.load_or_train(key, root=root, progress=False)  # served from the cache: the file exists
        val = _val(key)
        x = torch.stack([val[i][0] for i in range(SLICE)])
        with torch.no_grad():
            pred = model(x).argmax(-1).numpy()
        committed = predictions[(predictions.key == key) & (predictions.seed == 0)].sort_values("image").pred.to_numpy()
        assert (pred != committed[:SLICE]).mean() <= 0.005  # argmax near-ties may flip across hosts' kernels
    similarity = pd.read_csv(cache.table_path("head_similarity_images", root))
    model, _ = cache.load_or_train("meso_deit_3h", root=root, progress=False)
    val = _val("meso_deit_3h")
    ours = 100 * similarity_per_image(model, torch.stack([val[i][0] for i in range(8)]))  # [layers, images]
    ref = similarity[(similarity.key == "meso_deit_3h") & (similarity.seed == 0) & (similarity.image < 8)]
    ref = ref.pivot(index="layer", columns="image", values="similarity_pct").to_numpy()
    assert ours.numpy() == pytest.approx(ref, abs=1e-3)
