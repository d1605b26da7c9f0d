"""Micro suite: recipes keep the paper's comparisons, the committed cache is used (never
retrained), every cached model beats chance 3x, and the result tables are complete."""
import dataclasses

import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from analysis.core.paths import micro_root
from analysis.lab import cache, experiments
from analysis.lab.datasets import ClutteredDigits, DigitsConfig
from analysis.lab.recipes import DATA, RECIPES
from analysis.lab.train import build_model, evaluate
from shvit import get_config


def _resolved(key):
    r = RECIPES[key]
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in r.model_kwargs.items()}
    return get_config(r.model).replace(**kw)


def _diff(a, b):
    return {f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)}


def test_rows_differ_from_the_base_only_where_the_paper_rows_differ():
    base = _resolved("fig2_b")
    assert _diff(_resolved("stem4"), base) == {"stem_stride"}
    assert _diff(_resolved("stem32"), base) == {"stem_stride"}
    assert _diff(_resolved("fig2_b_attn1"), base) == {"mixers"}
    assert _diff(_resolved("fig2_b256"), base) == {"img_size"} and RECIPES["fig2_b256"].resolution == 56
    assert _diff(_resolved("t6_none"), base) == {"mixers"}
    assert _diff(_resolved("t6_ratio8"), base) <= {"partial_ratio", "partial_dims"}
    assert _resolved("t6_ratio8").stage_partial_dims == (4, 8, 12)  # 1/8 of 32/64/96
    assert _diff(_resolved("fig6_full"), base) == {"mixers"}
    assert _resolved("t6_mhsa").mixers == ("conv", "mhsa", "mhsa")
    assert _diff(_resolved("t6_mhsa"), base) <= {"mixers", "num_heads"}
    deit = {k: RECIPES[k].model_kwargs for k in ("deit_3h", "deit_6h")}
    assert {k: v for k, v in deit["deit_3h"].items() if k != "num_heads"} == \
        {k: v for k, v in deit["deit_6h"].items() if k != "num_heads"}


def test_digest_is_stable_and_tracks_the_recipe():
    r = RECIPES["fig2_b"]
    assert r.digest() == RECIPES["fig2_b"].digest() and len(r.digest()) == 12
    other = dataclasses.replace(r, train={"lr": 1e-3})
    assert other.digest() != r.digest()
    assert len({r.digest() for r in RECIPES.values()}) == len(RECIPES)


def test_cam_layer_compares_both_stems_on_the_same_grid():
    for key, expected in (("stem4", ("stages.2", 3)), ("fig2_b", ("stages.0", 3))):
        model = build_model(RECIPES[key].config(), 10)
        assert experiments.cam_layer(model, 48) == expected


def test_cached_table_recomputes_only_when_recipes_change(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"x": [1, 2]})
    a = cache.cached_table("t", ["fig2_b"], compute, tmp_path, refresh=False)
    b = cache.cached_table("t", ["fig2_b"], compute, tmp_path, refresh=False)
    assert len(calls) == 1 and a.equals(b) and (b["recipes"] == f"fig2_b-{RECIPES['fig2_b'].digest()}").all()
    cache.cached_table("t", ["fig2_b", "stem4"], compute, tmp_path, refresh=False)
    assert len(calls) == 2


# ---- the committed suite (built by `python -m analysis.ablations --all`)

@pytest.mark.artifacts
def test_every_recipe_is_cached_and_has_really_trained():
    models = pd.read_csv(micro_root() / "models.csv").set_index("key")
    for key, r in RECIPES.items():
        assert cache.checkpoint_path(key).is_file(), key
        assert models.loc[key, "digest"] == r.digest(), key
        assert models.loc[key, "val_top1"] >= 3 * 100 / len(ClutteredDigits.classes), key  # 3x chance
    size = sum(p.stat().st_size for p in (micro_root() / "checkpoints").glob("*.safetensors"))
    assert size < 20e6


@pytest.mark.artifacts
def test_cached_model_loads_without_training_and_reproduces_its_top1(monkeypatch):
    monkeypatch.setattr(cache, "fit", lambda *a, **k: pytest.fail("a cached recipe was retrained"))
    model, summary = cache.load_or_train("fig2_b", progress=False)
    val = ClutteredDigits("val", DigitsConfig(**{**DATA, "num_train": 1}))
    top1 = evaluate(model, DataLoader(val, batch_size=250), torch.device("cpu"))["top1"]
    assert top1 == pytest.approx(summary["val_top1"], abs=0.21)


@pytest.mark.artifacts
def test_result_tables_are_complete_and_served_from_the_cache(monkeypatch):
    monkeypatch.setattr(experiments, "load_or_train", lambda *a, **k: pytest.fail("tables should come from the CSV cache"))
    macro = experiments.macro_table()
    assert set(macro["row"]) >= {"(a)", "(b)", "(b')", "(b'')", "stem 4x4", "stem 32x32"}
    assert (macro[["val_top1", "macs", "mem_bytes"]] > 0).all().all()
    single = experiments.single_head_table()
    assert len(single) == 8 and single["macs"].gt(0).all()
    heads = experiments.heads_table()
    assert sorted(heads["heads"].unique()) == [3, 6] and len(heads) == 12
    assert heads["similarity_pct"].between(0, 100).all()
    assert heads[["remove1_delta_pct", "leave1_delta_pct"]].notna().all().all()
    cam = experiments.gradcam_table()
    assert list(cam["stem_stride"]) == [4, 16] and cam["pointing_game"].between(0, 100).all()


def _tiny_datasets(data_kwargs=None):
    cfg = DigitsConfig(**{**DATA, "num_train": 8, "num_val": 8})
    return ClutteredDigits("train", cfg), ClutteredDigits("val", cfg), 10


@pytest.mark.parametrize("corruption", ["random bytes", "truncated", "no summary", "bad summary", "wrong tensors"])
def test_a_corrupt_cache_entry_is_reported_and_rebuilt(corruption, tmp_path, monkeypatch, capsys):
    from safetensors.torch import save_file
    trained = []

    def fake_fit(cfg, datasets=None, progress=True):
        trained.append(cfg.model)
        return build_model(cfg, 10).eval(), {"val_top1": 10.0, "num_classes": 10, "model": cfg.model}
    monkeypatch.setattr(cache, "fit", fake_fit)
    monkeypatch.setattr(cache, "micro_datasets", _tiny_datasets)
    path = cache.checkpoint_path("fig2_b", tmp_path)
    path.parent.mkdir(parents=True)
    cache.load_or_train("fig2_b", root=tmp_path, progress=False)  # a good entry first
    good = path.read_bytes()
    if corruption == "random bytes":
        path.write_bytes(bytes(range(256)) * 8)
    elif corruption == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif corruption == "no summary":
        save_file({"w": torch.ones(2)}, str(path))
    elif corruption == "bad summary":
        save_file({"w": torch.ones(2)}, str(path), metadata={"summary": "{not json"})
    else:
        save_file({"w": torch.ones(2)}, str(path), metadata={"summary": '{"num_classes": 10}'})
    capsys.readouterr()
    trained.clear()
    model, summary = cache.load_or_train("fig2_b", root=tmp_path, progress=False)
    err = capsys.readouterr().err
    assert trained == ["shvitlab_fig2_b"] and f"cache entry {path} is corrupt (" in err and err.count("\n") == 1
    assert summary["digest"] == RECIPES["fig2_b"].digest() and path.read_bytes() != b""
    trained.clear()
    cache.load_or_train("fig2_b", root=tmp_path, progress=False)  # rebuilt: served from the cache again
    assert trained == []


def test_a_seed_replicate_differs_only_in_its_training_seed(tmp_path):
    from analysis.lab.recipes import recipe

    base, rep = recipe("fig2_b").config().to_dict(), recipe("fig2_b", 2).config().to_dict()
    assert {k for k in base if base[k] != rep[k]} == {"seed"} and rep["seed"] == 2
    assert base["data_kwargs"] == rep["data_kwargs"]  # the same images: paired comparisons across seeds
    assert recipe("fig2_b", 2).digest() != recipe("fig2_b").digest() and recipe("fig2_b", 0) is RECIPES["fig2_b"]
    assert cache.checkpoint_path("fig2_b", tmp_path, 2).parent.name == "seed2"
    assert cache.checkpoint_path("fig2_b", tmp_path).parent.name == "checkpoints"


@pytest.mark.artifacts
def test_replicate_tables_agree_with_the_suites_own_tables():
    """Seed 0 of the per-image replicate tables recomputes the suite's tables: top-1 per recipe,
    per-layer head similarity, and the best remove-one-head change per layer."""
    from analysis.lab.replicates import correct_matrix, removed_correct, similarity_array

    predictions = experiments.predictions_table(progress=False)
    models = pd.read_csv(micro_root() / "models.csv").set_index("key")
    assert set(predictions.key) == set(RECIPES) and set(predictions.seed) == {0, 1, 2}
    for key in RECIPES:
        assert 100 * correct_matrix(predictions, key)[0].mean() == pytest.approx(models.loc[key, "val_top1"], abs=1e-9)
    heads = experiments.heads_table(progress=False)
    similarity = experiments.head_similarity_images_table(progress=False)
    ablation = experiments.ablation_images_table(progress=False)
    for key in ("deit_3h", "deit_6h"):
        ours = heads[heads.key == key].sort_values("layer")
        assert similarity_array(similarity, key)[0].mean(0) == pytest.approx(ours.similarity_pct.to_numpy(), abs=1e-3)
        delta = 100 * (removed_correct(ablation, predictions, key)[0].mean(0) - correct_matrix(predictions, key)[0].mean())
        assert delta == pytest.approx(ours.remove1_delta_pct.to_numpy(), abs=1e-9)


def test_list_shows_every_recipe_and_its_seed_replicates(tmp_path, capsys):
    from analysis.ablations import main
    from analysis.lab.recipes import SEEDS, recipe

    assert main(["--list", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(RECIPES) * len(SEEDS)
    assert lines[0].split()[:3] == ["fig2_b", recipe("fig2_b").digest(), "missing"]
    assert lines[1].split() == ["seed", "1", recipe("fig2_b", 1).digest(), "missing"]


def test_a_key_missing_from_a_replicate_table_is_a_user_error_naming_what_it_holds():
    import pandas as pd

    from analysis.core.errors import UserError
    from analysis.lab.replicates import correct_matrix, removed_all_heads

    p = pd.DataFrame({"key": ["a"] * 2, "seed": [0, 0], "image": [0, 1], "pred": [1, 0], "label": [1, 1]})
    assert correct_matrix(p, "a").tolist() == [[1.0, 0.0]]
    for read, table in ((correct_matrix, p), (removed_all_heads, p.assign(layer=0, head=0))):
        with pytest.raises(UserError, match=r"of 'b'; the table holds \['a'\]") as e:
            read(table, "b")
        assert isinstance(e.value, ValueError)
