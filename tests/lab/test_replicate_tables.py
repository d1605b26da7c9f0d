"""Per-image replicate tables for cross-fitting and declared-layer Grad-CAM: every head's remove-one
predictions (`ablation_heads_images_table`) and the pointing-game hit per image (`gradcam_images_table`).
On tiny random models: their shapes, a known answer, and agreement with the suite's own tables
(`ablation_images_table`, `localisation`); on the committed results: completeness and a recomputed slice."""
import numpy as np
import pandas as pd
import pytest
import torch

from analysis.core.paths import meso_root, micro_root
from analysis.heads.layers import attention_layers
from analysis.lab import cache, experiments
from analysis.lab.datasets import ClutteredDigits, DigitsConfig
from analysis.lab.gradcam import localisation, localisation_images
from analysis.lab.recipes import MESO_GRADCAM_LAYERS, MESO_SEEDS, SEEDS, recipe, resolve
from analysis.lab.tuning import suite_recipes
from analysis.lab.train import build_model

IMAGES = 16


def _tiny(monkeypatch, scale: float = 1.0):
    """The lab's tables on tiny random models (one per recipe and seed) and IMAGES val images."""
    models = {}

    def load_or_train(key, *, seed=None, root=None, progress=True, retrain=False):
        r = resolve(key, seed)
        if (r.key, r.seed) not in models:
            torch.manual_seed(r.seed)
            model = build_model(r.config(), 10).eval()
            with torch.no_grad():  # larger weights: predictions that differ between images and heads
                for p in model.parameters():
                    p.mul_(scale)
            models[r.key, r.seed] = model
        return models[r.key, r.seed], {}

    def micro_datasets(data_kwargs=None):
        cfg = DigitsConfig(**{**data_kwargs, "num_train": 1, "num_val": IMAGES})
        return None, ClutteredDigits("val", cfg), 10
    monkeypatch.setattr(experiments, "load_or_train", load_or_train)
    monkeypatch.setattr(experiments, "micro_datasets", micro_datasets)
    return models


def test_every_head_is_removed_once_and_the_best_heads_agree_with_ablation_images(tmp_path, monkeypatch):
    models = _tiny(monkeypatch, scale=4.0)
    seeds = (0, 1)
    heads = experiments.ablation_heads_images_table(("deit_3h",), seeds, root=tmp_path, progress=False)
    assert list(heads.columns) == ["key", "seed", "layer", "head", "image", "label", "intact_pred", "pred", "recipes"]
    assert len(heads) == len(seeds) * 6 * 3 * IMAGES  # seeds x layers x heads x images
    order = ["key", "seed", "layer", "head", "image"]
    assert heads[order].equals(heads[order].sort_values(order, ignore_index=True))
    assert heads.groupby(["seed", "layer"])["head"].unique().map(list).map(sorted).eq([[0, 1, 2]] * 12).all()
    assert heads["pred"].nunique() > 1
    assert (cache.table_path("ablation_heads_images", tmp_path).name == "ablation_heads_images.csv.gz")

    best = experiments.ablation_images_table(("deit_3h",), seeds, root=tmp_path, progress=False)
    merged = best.merge(heads, on=["key", "seed", "layer", "head", "image"], suffixes=("_best", ""),
                        validate="one_to_one")
    assert len(merged) == len(best) == len(seeds) * 6 * IMAGES
    assert (merged["pred_best"] == merged["pred"]).all()

    # known answer: a head whose slice of the projection is zero changes nothing when it is removed
    model = models["deit_3h", 0]
    layer = attention_layers(model)[2]
    with torch.no_grad():
        model.get_submodule(layer.name).proj.weight[:, layer.head_dim:2 * layer.head_dim] = 0
        val = experiments.micro_datasets(recipe("deit_3h").config().data_kwargs)[1]
        plain = model(torch.stack([val[i][0] for i in range(IMAGES)])).argmax(-1).numpy()
    heads = experiments.ablation_heads_images_table(("deit_3h",), (0,), root=tmp_path, refresh=True, progress=False)
    removed = heads[(heads["layer"] == layer.index + 1) & (heads["head"] == 1)].sort_values("image")
    assert (removed["pred"].to_numpy() == plain).all() and (removed["intact_pred"].to_numpy() == plain).all()
    assert (removed["label"].to_numpy() == np.asarray(val.labels[:IMAGES])).all()


def test_gradcam_images_hit_rate_is_localisations_pointing_game(tmp_path, monkeypatch):
    models = _tiny(monkeypatch, scale=2.0)
    layers = {"fig2_a": ["stages.3"], "fig2_b": ["stages.0", "stages.1"]}
    table = experiments.gradcam_images_table(layers, (0, 1), root=tmp_path, progress=False)
    assert list(table.columns) == ["key", "seed", "layer", "map_side", "image", "hit", "recipes"]
    assert len(table) == 2 * 3 * IMAGES and set(table["hit"]) <= {0, 1}
    order = ["key", "seed", "layer", "image"]
    assert table[order].equals(table[order].sort_values(order, ignore_index=True))
    sides = table.groupby(["key", "layer"])["map_side"].unique().map(list).to_dict()
    assert sides == {("fig2_a", "stages.3"): [2], ("fig2_b", "stages.0"): [3], ("fig2_b", "stages.1"): [2]}
    val = experiments.micro_datasets(recipe("fig2_a").config().data_kwargs)[1]
    for (key, seed, name), g in table.groupby(["key", "seed", "layer"]):
        model = models[key, seed]
        pg = localisation(model, val, layer=model.get_submodule(name), batch_size=10)["pointing_game"].item()
        assert 100 * g["hit"].mean() == pytest.approx(pg, abs=1e-9)
    assert cache.table_path("gradcam_images", tmp_path).name == "gradcam_images.csv.gz"

    # served from the cache for the same layers; recomputed for others
    monkeypatch.setattr(experiments, "localisation_images", lambda *a, **k: pytest.fail("recomputed"))
    assert experiments.gradcam_images_table(layers, (0, 1), root=tmp_path, progress=False).equals(table)
    monkeypatch.undo()
    _tiny(monkeypatch)
    other = experiments.gradcam_images_table({"fig2_a": ["stages.3"], "fig2_b": ["stages.2"]}, (0, 1),
                                             root=tmp_path, progress=False)
    assert set(zip(other["key"], other["layer"])) == {("fig2_a", "stages.3"), ("fig2_b", "stages.2")}


def test_localisation_images_is_localisation_per_image():
    torch.manual_seed(0)
    model = build_model(recipe("fig2_b").config(), 10).eval()
    val = ClutteredDigits("val", DigitsConfig(resolution=48, num_train=1, num_val=10, clutter=1))
    per_image = localisation_images(model, val, batch_size=4, resolution=56)
    whole = localisation(model, val, batch_size=4, resolution=56).iloc[0]
    assert list(per_image.columns) == ["image", "label", "pred", "hit"] and list(per_image.image) == list(range(10))
    assert 100 * per_image.hit.mean() == pytest.approx(whole.pointing_game, abs=1e-9)
    assert 100 * (per_image.pred == per_image.label).mean() == pytest.approx(whole.top1, abs=1e-9)
    assert (per_image.label.to_numpy() == np.asarray(val.labels)).all()


def test_the_meso_gradcam_layers_are_the_declared_ones():
    assert MESO_GRADCAM_LAYERS == {"meso_fig2_a": ("stages.3",), "meso_fig2_b": ("stages.1", "stages.2")}
    sides = {k: build_model(recipe(k).config(), 10).cfg.stage_resolutions(112) for k in MESO_GRADCAM_LAYERS}
    assert sides["meso_fig2_a"][3] == sides["meso_fig2_b"][1] == 4 and sides["meso_fig2_b"][2] == 2
    assert len(sides["meso_fig2_a"]) == 4 and len(sides["meso_fig2_b"]) == 3  # the last stages


def test_the_suites_write_the_new_tables(tmp_path, monkeypatch):
    """`ablations --meso` writes both tables (meso DeiT 3 heads, tuned; the declared Grad-CAM layers) from
    every meso seed, and `ablations --seeds` the all-heads table of the micro 3-head DeiT (no Grad-CAM rows:
    3x3 tokens)."""
    import inspect

    from analysis import ablations
    from analysis.lab import frontier, tuning

    assert experiments.REPLICATE_TABLES["ablation_heads_images"] is experiments.ablation_heads_images_table
    assert inspect.signature(experiments.ablation_heads_images_table).parameters["keys"].default == ("deit_3h",)
    assert "gradcam_images" not in experiments.REPLICATE_TABLES
    calls = {}

    def record(name):
        def table(*args, root=None, refresh=False, progress=True, **kwargs):
            calls[name] = (args, kwargs)
            return pd.DataFrame({"x": [0]})
        return table
    for name in ("predictions", "head_similarity_images", "ablation_images", "ablation_heads_images", "gradcam",
                 "gradcam_images"):
        monkeypatch.setattr(experiments, f"{name}_table", record(name))
    search = pd.DataFrame([{"design": d, "augment": a, "lr": r.config().lr, "tune_top1": top1}
                           for d, r in tuning.design_bases().items() for a, top1 in (("none", 40.0), ("shift", 50.0))])
    monkeypatch.setattr(tuning, "search_table", lambda **k: search)
    monkeypatch.setattr(cache, "train_all", lambda *a, **k: 0)
    monkeypatch.setattr(cache, "load_or_train", lambda r, seed=None, **k: (None, {
        "digest": resolve(r, seed).digest(), "val_top1": 50.0, "train_seconds": 1.0, "threads": 1, "history": []}))
    monkeypatch.setattr(cache, "micro_datasets", lambda d: (None, ClutteredDigits(
        "val", DigitsConfig(**{**d, "num_train": 1, "num_val": 4, "num_tune": 1})), 10))
    for name in ("training_curves", "sweep_latency", "frontier_table"):
        monkeypatch.setattr(frontier, name, lambda *a, **k: pd.DataFrame({"x": [0]}))
    from analysis.core import tables
    monkeypatch.setattr(tables, "read_csv", lambda path: pd.DataFrame({"x": [0]}))   # the mocked tables above
    assert ablations.main(["--meso", "--root", str(tmp_path / "meso")]) == 0
    args, _ = calls["ablation_heads_images"]
    assert [r.key for r in args[0]] == ["meso_deit_3h"] and args[1] == MESO_SEEDS
    assert {r.config().augment for r in args[0]} == {"shift"}
    args, kwargs = calls["gradcam_images"]
    assert args == (MESO_GRADCAM_LAYERS, MESO_SEEDS) and kwargs["recipes"]["meso_fig2_a"].config().augment == "shift"
    assert (tmp_path / "meso" / "val_sources.csv").is_file() and (tmp_path / "meso" / "suite.json").is_file()

    calls.clear()
    for name in experiments.REPLICATE_TABLES:
        monkeypatch.setitem(experiments.REPLICATE_TABLES, name, record(name))
    assert ablations.main(["--seeds", "--root", str(tmp_path / "micro")]) == 0
    assert set(calls) == {"predictions", "head_similarity_images", "ablation_images", "ablation_heads_images"}


# ---- the committed tables (`ablations --meso`, `ablations --seeds`)

class _First:
    """The first `n` images of a dataset with boxes."""

    def __init__(self, dataset, n):
        self.dataset, self.n, self.boxes = dataset, n, dataset.boxes[:n]

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.dataset[i]


def _read(name, root):
    path = cache.table_path(name, root)
    assert path.is_file(), f"{path} is not committed"
    return pd.read_csv(path)


@pytest.mark.artifacts
@pytest.mark.parametrize("key,root,seeds", [("deit_3h", micro_root, SEEDS), ("meso_deit_3h", meso_root, MESO_SEEDS)])
def test_committed_all_heads_tables_are_complete_and_contain_the_best_heads(key, root, seeds):
    heads, best = _read("ablation_heads_images", root()), _read("ablation_images", root())
    images = recipe(key).config().data_kwargs["num_val"]
    heads = heads[heads.key == key]
    assert set(heads.seed) == set(seeds) and len(heads) == len(seeds) * 6 * 3 * images
    merged = best[best.key == key].merge(heads, on=["key", "seed", "layer", "head", "image"], suffixes=("_best", ""),
                                         validate="one_to_one")
    assert len(merged) == len(seeds) * 6 * images
    # Which replicates have the weights behind predictions.csv.gz: training differs per CPU, and only seed 0's
    # weights are committed, so a table may hold other seeds computed from weights trained on another host.
    p = _read("predictions", root())
    committed = p[p.key == key].rename(columns={"label": "committed_label", "pred": "committed_pred"})
    intact = heads[(heads.layer == 1) & (heads["head"] == 0)].merge(
        committed[["seed", "image", "committed_label", "committed_pred"]], on=["seed", "image"], validate="one_to_one")
    assert len(intact) == len(seeds) * images and (intact.label == intact.committed_label).all()
    same = (intact.intact_pred == intact.committed_pred).groupby(intact.seed).mean()
    same_weights = list(same[same >= 0.999].index)          # near-ties only: the same weights
    assert 0 in same_weights, f"{key}: seed 0 (committed weights) agrees on {same[0]:.1%} of intact predictions"
    differ = (merged.pred_best != merged.pred).groupby(merged.seed).mean()[same_weights].to_dict()
    # argmax near-ties may flip across hosts' kernels; more means the tables come from different weights
    assert max(differ.values()) <= 0.005, f"{key}: share of best-head rows that differ, per seed: {differ}"


@pytest.mark.artifacts
def test_committed_gradcam_images_cover_the_declared_layers_and_a_slice_recomputes():
    root = meso_root()
    table = _read("gradcam_images", root)
    assert {k: tuple(sorted(g.layer.unique())) for k, g in table.groupby("key")} == MESO_GRADCAM_LAYERS
    assert set(table.seed) == set(MESO_SEEDS) and len(table) == len(MESO_SEEDS) * 3 * 2000
    assert table.groupby("layer").map_side.unique().map(list).to_dict() == \
        {"stages.1": [4], "stages.2": [2], "stages.3": [4]}
    model, _ = cache.load_or_train(suite_recipes(root)["meso_fig2_b"], root=root, progress=False)
    val = _First(ClutteredDigits("val", DigitsConfig(**recipe("meso_fig2_b").config().data_kwargs)), 100)
    ours = localisation_images(model, val, layer=model.get_submodule("stages.1")).hit.to_numpy()
    ref = table[(table.key == "meso_fig2_b") & (table.seed == 0) & (table.layer == "stages.1")].sort_values("image")
    assert (ours != ref.hit.to_numpy()[:len(val)]).mean() <= 0.02  # map near-ties may flip across hosts' kernels


@pytest.mark.artifacts
@pytest.mark.slow
def test_committed_gradcam_images_seed0_equal_localisation_over_the_whole_val_set():
    root = meso_root()
    table = _read("gradcam_images", root)
    for key, names in MESO_GRADCAM_LAYERS.items():
        model, _ = cache.load_or_train(suite_recipes(root)[key], root=root, progress=False)
        val = ClutteredDigits("val", DigitsConfig(**recipe(key).config().data_kwargs))
        for name in names:
            pg = localisation(model, val, layer=model.get_submodule(name))["pointing_game"].item()
            rows = table[(table.key == key) & (table.seed == 0) & (table.layer == name)]
            assert 100 * rows.hit.mean() == pytest.approx(pg, abs=0.5)  # a few near-ties across hosts
