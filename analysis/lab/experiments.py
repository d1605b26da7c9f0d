"""The micro suite's experiments: the SHViT ablations as tables, trained on cluttered digits
(recipes: `lab.recipes`; cached weights and tables: `lab.cache`).

    >>> macro_table()          # Fig. 2: (a) (b) (b') (b''), stem 4/8/16/32: top-1, macs, mem_bytes
    >>> heads_table()          # Fig. 3: DeiT-shaped micro ViT, 3 vs 6 heads: similarity, remove-1 / leave-1
    >>> single_head_table()    # Table 6 / Fig. 6: SHSA vs MHSA vs none, partial ratios, full, bottleneck
    >>> gradcam_table()        # stem 4 vs 16: pointing-game localisation (captum LayerGradCam)

Per-image seed replicates for the scorecard: `predictions_table`, `head_similarity_images_table`,
`ablation_images_table` (best head per layer), `ablation_heads_images_table` (every head),
`gradcam_images_table` (pointing-game hit per image at declared layers).

CLI: `python -m analysis.ablations --all` trains missing recipes and writes every table.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import pandas as pd
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from shvit import get_config

from ..core.errors import not_a_command
from ..core.names import SUITE_TABLES
from ..core.paths import PathLike
from ..cost.counter import CostAnalysis
from ..heads.ablation import HeadMask, best_heads, extreme_heads, head_ablation
from ..heads.attention import AttentionCapture
from ..heads.importance import head_importance
from ..heads.layers import attention_layers
from ..heads.maps import query_attention
from ..heads.metrics import HeadStatistics
from ..heads.similarity import similarity_per_image
from .cache import cached_table, load_or_train, micro_datasets
from .datasets import ClutteredDigits
from .gradcam import GradCAM, localisation, localisation_images
from .recipes import FIG6_ROWS, GRADCAM_KEYS, MACRO_ROWS, RECIPES, SEEDED_KEYS, SEEDS, STEM_ROWS, TABLE6_ROWS, resolve
from .augment import resize_inputs

__all__ = ["macro_table", "single_head_table", "heads_table", "importance_table", "importance_agreement",
           "gradcam_table", "predictions_table", "head_similarity_images_table", "ablation_images_table",
           "ablation_heads_images_table", "gradcam_images_table", "REPLICATE_TABLES", "head_query_maps",
           "gradcam_examples", "cam_layer", "TABLES", "CAM_MIN_SIDE"]


def _cost(model: nn.Module, side: int) -> dict:
    """macs and mem_bytes of the BN-fused model at batch 1 (speed is measured at full scale, not here)."""
    ca = CostAnalysis(model, torch.randn(1, 3, side, side))
    return {"macs": ca.total("macs"), "mem_bytes": ca.total("mem_bytes")}


def _model_rows(rows, root: Optional[PathLike], progress: bool) -> pd.DataFrame:
    out = []
    for key, extra in rows:
        model, s = load_or_train(key, root=root, progress=progress)
        r = RECIPES[key]
        out.append({**extra, "key": key, "model": r.model, "description": r.description,
                    "resolution": r.resolution, "val_top1": s["val_top1"], "params": s["params"],
                    **_cost(model, r.resolution)})
    return pd.DataFrame(out)


def macro_table(*, root: Optional[PathLike] = None, refresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """SHViT Fig. 2 at micro scale: (a), (b), (b'), (b'') and stem strides 4/8/16/32 (matched widths)."""
    rows = [(k, {"experiment": "fig2", "row": label}) for k, label in MACRO_ROWS]
    rows += [(k, {"experiment": "stem", "row": f"stem {s}x{s}", "stem_stride": s}) for k, s in STEM_ROWS]

    def compute():
        df = _model_rows(rows, root, progress)
        df["stem_stride"] = [_stem(k) for k in df["key"]]
        return df
    return cached_table("macro", [k for k, _ in rows], compute, root, refresh)


def _stem(key: str) -> int:
    return get_config(RECIPES[key].model).stem_stride


def single_head_table(*, root: Optional[PathLike] = None, refresh: bool = False,
                      progress: bool = True) -> pd.DataFrame:
    """SHViT Table 6 (SHSA vs MHSA vs none, partial ratios) and Fig. 6 (bottleneck / full / partial)."""
    rows = [(k, {"experiment": "table6", "row": label}) for k, label in TABLE6_ROWS]
    rows += [(k, {"experiment": "fig6", "row": label}) for k, label in FIG6_ROWS]

    def compute():
        df = _model_rows(rows, root, progress)
        ratios = []
        for k in df["key"]:
            cfg = get_config(RECIPES[k].model).replace(**{f: tuple(v) if isinstance(v, list) else v
                                                         for f, v in RECIPES[k].model_kwargs.items()})
            last = cfg.mixers[-1]  # share of the channels that attention sees (last stage; NaN: no attention)
            ratios.append(cfg.stage_partial_dims[-1] / cfg.embed_dims[-1] if last in ("shsa", "bottleneck")
                          else 1.0 if last in ("full", "mhsa") else float("nan"))
        df["partial_ratio"] = ratios
        return df
    return cached_table("single_head", [k for k, _ in rows], compute, root, refresh)


def heads_table(*, root: Optional[PathLike] = None, refresh: bool = False, similarity_images: int = 128,
          progress: bool = True) -> pd.DataFrame:
    """SHViT Fig. 3 at micro scale: per layer of the 3- and 6-head micro DeiT, the mean pairwise
    cosine similarity of head attention maps (%, over `similarity_images` val images, as the
    paper's 128) and the best remove-1 / leave-1 top-1 deltas (percentage points, full val set)."""
    keys = ("deit_3h", "deit_6h")

    def compute():
        frames = []
        for key in keys:
            _, val, _ = micro_datasets(RECIPES[key].config().data_kwargs)
            batches = list(DataLoader(val, batch_size=200))  # normalised once, reused by every ablation
            model, s = load_or_train(key, root=root, progress=progress)
            stats = HeadStatistics(metrics=("mean_pairwise_cosine",))
            x = torch.cat([b[0] for b in batches])[:similarity_images]
            with torch.no_grad(), AttentionCapture(model, stats.update):
                model(x)
            sim = stats.to_frame()
            sim = sim[sim["metric"] == "mean_pairwise_cosine"][["layer", "value"]]
            best = best_heads(head_ablation(model, batches, progress=progress))
            wide = best.pivot(index=["layer", "layer_index", "num_heads", "baseline_top1"], columns="mode",
                              values="best_delta").reset_index()
            df = wide.merge(sim, on="layer")
            frames.append(pd.DataFrame({
                "key": key, "heads": df["num_heads"], "layer": df["layer_index"],
                "similarity_pct": 100 * df["value"], "remove1_delta_pct": 100 * df["remove1"],
                "leave1_delta_pct": 100 * df["leave1"], "top1": 100 * df["baseline_top1"],
                "similarity_images": similarity_images, "ablation_images": len(val)}))
        return pd.concat(frames, ignore_index=True).sort_values(["heads", "layer"], ignore_index=True)
    return cached_table("heads", keys, compute, root, refresh)


def importance_table(*, root: Optional[PathLike] = None, refresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """Head importance in one backward pass (Michel et al. 2019) against remove-one-head ablation, per head
    of the 3- and 6-head micro DeiT over the full val set: importance (|dL/dxi|, mean per image, and
    normalised per layer) beside the top-1 lost when the head is removed (percentage points)."""
    keys = ("deit_3h", "deit_6h")

    def compute():
        frames = []
        for key in keys:
            _, val, _ = micro_datasets(RECIPES[key].config().data_kwargs)
            batches = list(DataLoader(val, batch_size=200))
            model, _ = load_or_train(key, root=root, progress=progress)
            imp = head_importance(model, batches, progress=progress)
            imp = imp.pivot_table(index=["layer", "layer_index", "head"], columns="metric", values="value")
            imp = imp.reset_index()
            ablation = head_ablation(model, batches, modes=("remove1",), progress=progress)
            df = imp.merge(ablation[["layer", "head", "delta"]], on=["layer", "head"], validate="one_to_one")
            frames.append(pd.DataFrame({
                "key": key, "heads": len(df["head"].unique()), "layer": df["layer_index"], "head": df["head"],
                "importance": df["head_importance"], "importance_normalized": df["head_importance_normalized"],
                "remove1_cost_pct": -100 * df["delta"], "images": len(val)}))
        return pd.concat(frames, ignore_index=True).sort_values(["heads", "layer", "head"], ignore_index=True)
    return cached_table("importance", keys, compute, root, refresh)


def importance_agreement(table: pd.DataFrame) -> pd.DataFrame:
    """Per micro model: Spearman rho between head importance and the top-1 its removal costs, over all
    heads (`rho_all`) and the mean of the per-layer rho (`rho_within_layer_mean`, layers whose costs
    are all equal left out), with the number of heads."""
    from scipy.stats import spearmanr

    rows = []
    for key, g in table.groupby("key", sort=False):
        within = [spearmanr(l["importance"], l["remove1_cost_pct"]).statistic for _, l in g.groupby("layer")
                  if l["remove1_cost_pct"].nunique() > 1]
        rows.append({"key": key, "heads": int(g["heads"].iloc[0]), "num_heads_scored": len(g),
                     "rho_all": float(spearmanr(g["importance"], g["remove1_cost_pct"]).statistic),
                     "rho_within_layer_mean": float(pd.Series(within).mean()), "layers_compared": len(within)})
    return pd.DataFrame(rows)


def head_query_maps(key: str = "deit_3h", layer_index: int = -1, num_images: int = 4, *,
                    root: Optional[PathLike] = None) -> dict:
    """For plotting (SHViT Fig. 3, right): in one layer of a trained micro DeiT, the most important
    head (removing it costs the most val top-1) and the most redundant one (costs the least), and
    where each attends from the centre query token on the first `num_images` val images.

    Returns {"images" [n, 3, H, W] in [0, 1], "layer", "layer_index", "important" / "redundant":
    (head, top-1 delta), "maps": {"important" / "redundant": [n, gh, gw]}, "query_yx"}.
    """
    model, _ = load_or_train(key, root=root, progress=False)
    _, val, _ = micro_datasets(RECIPES[key].config().data_kwargs)
    batches = list(DataLoader(val, batch_size=200))
    layer = attention_layers(model)[layer_index].name
    ablation = head_ablation(model, batches, modes=("remove1",), layers=[layer])
    ext = extreme_heads(ablation).iloc[0]
    side = RECIPES[key].resolution
    x = torch.stack([val[i][0] for i in range(num_images)])
    heads = [int(ext.most_important_head), int(ext.most_redundant_head)]
    q = query_attention(model, x, layer, query_yx=(side / 2, side / 2), heads=heads)
    return {"images": ClutteredDigits.denormalize(x), "layer": layer, "layer_index": int(ext.layer_index),
            "important": (heads[0], float(ext.important_delta)), "redundant": (heads[1], float(ext.redundant_delta)),
            "maps": {"important": q.maps[:, 0], "redundant": q.maps[:, 1]}, "query_yx": q.query_yx}


CAM_MIN_SIDE = 3


def cam_layer(model: nn.Module, side: int, min_side: int = CAM_MIN_SIDE) -> tuple[str, int]:
    """(stage name, map side) for Grad-CAM: the last stage whose feature map is at least
    `min_side` tokens wide. At 224 px the paper's last stages are 7x7 (4x4 stem) and 4x4 (16x16
    stem); at 48 px the 16x16 stem's last stage is 1x1, where Grad-CAM is a constant, so micro
    scale compares both stems on a 3x3 map (4x4 stem: stage 3; 16x16 stem: stage 1)."""
    sides = model.cfg.stage_resolutions(side)
    i = max([j for j, s in enumerate(sides) if s >= min_side], default=0)
    return f"stages.{i}", sides[i]


def gradcam_table(keys=GRADCAM_KEYS, *, min_side: int = CAM_MIN_SIDE, root: Optional[PathLike] = None,
                  refresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """Pointing game of the 4x4- vs 16x16-stem models over the whole val set (captum LayerGradCam on
    `cam_layer` with maps of at least `min_side`, target = true class); `box_area` is the hit rate of a
    random point. `keys`: (recipe key or `MicroRecipe`, stem stride) pairs trained on the same data
    (micro by default)."""
    recipes = [(resolve(k), stride) for k, stride in keys]

    def compute():
        _, val, _ = micro_datasets(recipes[0][0].config().data_kwargs)
        frames = []
        for r, stride in recipes:
            model, _ = load_or_train(r, root=root, progress=progress)
            name, side = cam_layer(model, r.resolution, min_side)
            df = localisation(model, val, layer=model.get_submodule(name), progress=progress)
            for col, value in (("map_side", side), ("layer", name), ("stem_stride", stride), ("key", r.key)):
                df.insert(0, col, value)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)
    return cached_table("gradcam", [r for r, _ in recipes], compute, root, refresh)


def gradcam_examples(n: int = 8, *, root: Optional[PathLike] = None) -> dict:
    """For plotting: the first `n` val images (in [0, 1]), their boxes and labels, and the
    Grad-CAM maps (at `cam_layer`) of the 4x4- and 16x16-stem models ({key: (n, H, W)}), target = true class."""
    _, val, _ = micro_datasets()
    x = torch.stack([val[i][0] for i in range(n)])
    y = val.labels[:n]
    maps = {}
    for key, _ in GRADCAM_KEYS:
        model = load_or_train(key, root=root, progress=False)[0]
        layer = model.get_submodule(cam_layer(model, RECIPES[key].resolution)[0])
        maps[key] = GradCAM(model, layer).attribute(x, target=y)
    return {"images": ClutteredDigits.denormalize(x), "boxes": val.boxes[:n], "labels": y, "maps": maps}


def _replicates(keys, seeds):
    """Each recipe (a key or a `MicroRecipe`) trained from each seed."""
    return [resolve(k, s) for k in keys for s in seeds]


def predictions_table(keys=SEEDED_KEYS, seeds=SEEDS, *, root: Optional[PathLike] = None, refresh: bool = False,
                      progress: bool = True) -> pd.DataFrame:
    """Per val image, the class each replicate (recipe `key` trained from `seed`) predicts: the
    paired, per-image data behind the scorecard's accuracy intervals (over seeds and images)."""
    def compute():
        frames = []
        for r in _replicates(keys, seeds):
            model, _ = load_or_train(r, root=root, progress=progress)
            _, val, _ = micro_datasets(r.config().data_kwargs)
            x, y = torch.stack([v[0] for v in val]), torch.as_tensor(val.labels)
            x = resize_inputs(x, r.resolution)
            with torch.no_grad():
                pred = torch.cat([model(b).argmax(-1) for b in x.split(200)])
            frames.append(pd.DataFrame({"key": r.key, "seed": r.seed, "image": range(len(y)), "label": y.numpy(),
                                        "pred": pred.numpy()}))
        return pd.concat(frames, ignore_index=True)
    return cached_table("predictions", _replicates(keys, seeds), compute, root, refresh)


def head_similarity_images_table(keys=("deit_3h", "deit_6h"), seeds=SEEDS, *, images: int = 128,
                                 root: Optional[PathLike] = None, refresh: bool = False,
                                 progress: bool = True) -> pd.DataFrame:
    """Per layer and val image, the mean pairwise cosine similarity of the head maps (%) of each
    replicate of the micro DeiTs: the per-image data behind `heads_table`'s similarity (its mean
    over images for seed 0) and the scorecard's bootstrap intervals."""
    def compute():
        frames = []
        for r in _replicates(keys, seeds):
            model, _ = load_or_train(r, root=root, progress=progress)
            _, val, _ = micro_datasets(r.config().data_kwargs)
            x = torch.stack([val[i][0] for i in range(images)])
            sim = similarity_per_image(model, x)  # [layers, images]
            heads = attention_layers(model)[0].num_heads
            frames += [pd.DataFrame({"key": r.key, "seed": r.seed, "heads": heads, "layer": i + 1,
                                     "image": range(images), "similarity_pct": 100 * row.numpy()})
                       for i, row in enumerate(sim)]
        return pd.concat(frames, ignore_index=True)
    return cached_table("head_similarity_images", _replicates(keys, seeds), compute, root, refresh)


def _removed_head_predictions(model: nn.Module, batches: list, heads: dict) -> torch.Tensor:
    """Predicted classes over `batches` with the heads {layer name: [head, ...]} removed (`HeadMask`)."""
    with torch.no_grad(), HeadMask(model, heads):
        return torch.cat([model(x).argmax(-1) for x, _ in batches])


def ablation_images_table(keys=("deit_3h", "deit_6h"), seeds=SEEDS, *, root: Optional[PathLike] = None,
                          refresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """Per layer of each micro-DeiT replicate, the head whose removal costs least (best remove-1
    top-1 on the val set, as `heads_table` chooses it) and the class predicted for every val image
    with that head removed: beside `predictions_table`'s unablated predictions, the paired
    per-image data behind the scorecard's remove-one-head interval."""
    def compute():
        frames = []
        for r in _replicates(keys, seeds):
            model, _ = load_or_train(r, root=root, progress=progress)
            _, val, _ = micro_datasets(r.config().data_kwargs)
            batches = list(DataLoader(val, batch_size=200))
            best = best_heads(head_ablation(model, batches, modes=("remove1",)))
            for row in best.itertuples():
                pred = _removed_head_predictions(model, batches, {row.layer: [int(row.best_head)]})
                frames.append(pd.DataFrame({"key": r.key, "seed": r.seed, "layer": row.layer_index,
                                            "head": int(row.best_head), "image": range(len(pred)),
                                            "pred": pred.numpy()}))
        return pd.concat(frames, ignore_index=True)
    return cached_table("ablation_images", _replicates(keys, seeds), compute, root, refresh)


def ablation_heads_images_table(keys=("deit_3h",), seeds=SEEDS, *, root: Optional[PathLike] = None,
                                refresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """`ablation_images_table` for every head: per replicate, attention layer (1-based) and head, the
    class predicted for every val image with that one head removed (`pred`), beside the image's label
    and the same replicate's unablated prediction (`intact_pred`): self-contained data to choose the
    least useful head on some images and measure its removal on others (cross-fitting), whichever
    weights the replicate has. Columns key, seed, layer, head, image, label, intact_pred, pred, sorted
    in that order."""
    def compute():
        frames = []
        for r in _replicates(keys, seeds):
            model, _ = load_or_train(r, root=root, progress=progress)
            _, val, _ = micro_datasets(r.config().data_kwargs)
            batches = list(DataLoader(val, batch_size=200))  # the batches `ablation_images_table` uses
            labels = torch.cat([y for _, y in batches]).numpy()
            intact = _removed_head_predictions(model, batches, {}).numpy()
            for layer in attention_layers(model):
                for head in range(layer.num_heads) if layer.num_heads > 1 else ():
                    pred = _removed_head_predictions(model, batches, {layer.name: [head]})
                    frames.append(pd.DataFrame({"key": r.key, "seed": r.seed, "layer": layer.index + 1,
                                                "head": head, "image": range(len(pred)), "label": labels,
                                                "intact_pred": intact, "pred": pred.numpy()}))
        return pd.concat(frames, ignore_index=True).sort_values(["key", "seed", "layer", "head", "image"],
                                                                ignore_index=True)
    return cached_table("ablation_heads_images", _replicates(keys, seeds), compute, root, refresh)


def gradcam_images_table(layers: Mapping[str, Sequence[str]], seeds=SEEDS, *, recipes: Optional[Mapping] = None,
                         root: Optional[PathLike] = None, refresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """Per replicate of each recipe in `layers` ({key: [layer names]}, e.g. `MESO_GRADCAM_LAYERS`), layer and
    val image: the strict pointing-game hit (1/0) of Grad-CAM on that layer, target = true class (as
    `gradcam_table`; `localisation_images`), and the side of the layer's map. Columns key, seed, layer,
    map_side, image, hit, sorted by key, seed, layer, image; a cached table with other layers is recomputed.
    `recipes`: {key: `MicroRecipe`} for recipes not in the registries as they are (tuned meso recipes)."""
    layers = {k: tuple(v) for k, v in layers.items()}
    keys = [(recipes or {}).get(k, k) for k in layers]
    wanted = {(k, name) for k, names in layers.items() for name in names}

    def compute():
        frames = []
        for r in _replicates(keys, seeds):
            model, _ = load_or_train(r, root=root, progress=progress)
            _, val, _ = micro_datasets(r.config().data_kwargs)
            for name in layers[r.key]:
                module = model.get_submodule(name)
                x = resize_inputs(val[0][0][None], r.resolution)
                side = GradCAM(model, module).attribute(x, target=torch.tensor([val[0][1]]), upsample=False).shape[-1]
                df = localisation_images(model, val, layer=module, resolution=r.resolution, progress=progress)
                frames.append(pd.DataFrame({"key": r.key, "seed": r.seed, "layer": name, "map_side": side,
                                            "image": df["image"], "hit": df["hit"]}))
        return pd.concat(frames, ignore_index=True).sort_values(["key", "seed", "layer", "image"], ignore_index=True)
    df = cached_table("gradcam_images", _replicates(keys, seeds), compute, root, refresh)
    if set(zip(df["key"], df["layer"])) != wanted:  # cached for other layers: the recipes alone do not say
        df = cached_table("gradcam_images", _replicates(keys, seeds), compute, root, refresh=True)
    return df


TABLES = {"macro": macro_table, "heads": heads_table, "single_head": single_head_table, "gradcam": gradcam_table}
assert tuple(sorted(TABLES)) == SUITE_TABLES, "core.names.SUITE_TABLES lists the suite's tables"
# Seed replicates for the scorecard (`ablations --seeds`): not part of the CI-default micro suite.
REPLICATE_TABLES = {"predictions": predictions_table, "head_similarity_images": head_similarity_images_table,
                    "ablation_images": ablation_images_table, "ablation_heads_images": ablation_heads_images_table}


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
