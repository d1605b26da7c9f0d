"""Micro-scale reproductions of the SHViT ablations, trained on cluttered digits.

Every paper ablation, end to end, on two CPU cores: the rows of each table are the
`shvit` named variants (`shvitlab_fig2_a`, `shvitlab_stem4`, `shvitlab_t6_mhsa`, ...) with
the same overrides that shrink them to micro scale (narrower and shallower stages, 48 px,
10 classes), so what differs between rows is exactly what differs in the paper.

    >>> macro()            # Fig. 2: (a) (b) (b') (b''), stem 4/8/16/32: top-1, macs, mem_bytes, CPU img/s
    >>> heads()            # Fig. 3: DeiT-shaped micro ViT, 3 vs 6 heads: similarity, remove-1 / leave-1
    >>> single_head()      # Table 6 / Fig. 6: SHSA vs MHSA vs none, partial ratios, full, bottleneck
    >>> gradcam()          # stem 4 vs 16: pointing-game localisation (captum LayerGradCam)

    python -m analysis.ablations --all          # (re)build: train missing recipes, write results/micro/*.csv

Trained weights are cached by recipe: `results/micro/checkpoints/<key>-<digest>.safetensors`
(fp16), digest = SHA-256 of the recipe (model config, data config, training
hyperparameters, seed). A recipe that did not change is never retrained; each table is
cached as `results/micro/<table>.csv` with the digests it was computed from.

Micro scale keeps the comparisons, not the absolute numbers: one base model (the micro
SHViT-S1, 3 stages of 32/64/96 channels, depths 1/2/2, partial ratio 1/4.67) stands for
Fig. 2 (b), the 16x16 stem row, Table 6's row 4 (S3 at ratio 1/4.67) and Fig. 6's partial
design (S2): at micro scale S1, S2 and S3 shrink to the same network.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Optional

import pandas as pd
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from tqdm import tqdm

from .cli import ArgumentParser
from .datasets import ClutteredDigits
from .errors import UserError, exit_on_user_error
from .io import atomic_path, read_csv, write_csv, write_json
from .train import TrainConfig, build_datasets, build_model, evaluate, fit

__all__ = ["MicroRecipe", "RECIPES", "RESULTS_DIR", "load_or_train", "train_suite", "macro", "heads",
           "single_head", "gradcam", "gradcam_examples", "cam_layer", "main"]

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results" / "micro"
CACHE_FORMAT = 1
# Many fresh images, few epochs: the generator is cheap, and tiny models memorise small sets.
# One clutter fragment per image: with two, the 32x32-stem model (a 2x2 token grid at 48 px)
# stays below 3x chance (25.8% top-1) within the suite's budget; with one it reaches 38-42%.
DATA = {"image_size": 48, "num_train": 10000, "num_val": 1000, "digit_size": [26, 38], "clutter": 1, "seed": 0}
TRAIN = {"epochs": 5, "batch_size": 128, "lr": 4e-3, "weight_decay": 0.05, "warmup_epochs": 0, "seed": 0}
# Micro SHViT: three stages of 32/64/96 channels, depths 1/2/2, partial ratio 1/4.67 (7/14/21 channels).
BASE = {"embed_dims": [32, 64, 96], "depths": [1, 2, 2], "partial_dims": [7, 14, 21], "img_size": 48}
B_PRIME = 56  # (b'): the input enlarged as 256/224 enlarges 224 (48 * 8/7 = 54.9 -> 56, a multiple of 8)
# DeiT-T shape (6 of its 12 blocks, 48 channels), average-pooled tokens, warm-up. Without a conv's
# translation equivariance a tiny ViT stays at chance on digits placed anywhere within this budget,
# so its digits are centred (DEIT_DATA: size still varies); clutter and backgrounds are unchanged.
JITTER = 0.0
DEIT = {"img_size": 48, "patch_size": 8, "embed_dim": 48, "depth": 6, "global_pool": "avg"}
DEIT_TRAIN = {"lr": 1e-3, "warmup_epochs": 1, "epochs": 10}
DEIT_DATA = {"jitter": JITTER}


@dataclass(frozen=True)
class MicroRecipe:
    """One trained micro model: a model name with overrides plus the shared data / training recipe."""

    key: str
    model: str
    description: str
    model_kwargs: dict = field(default_factory=dict)
    input_size: Optional[int] = None
    train: dict = field(default_factory=dict)  # overrides of TRAIN
    data: dict = field(default_factory=dict)  # overrides of DATA

    def config(self) -> TrainConfig:
        return TrainConfig(model=self.model, model_kwargs=dict(self.model_kwargs), data_kwargs={**DATA, **self.data},
                           input_size=self.input_size, **{**TRAIN, **self.train})

    def digest(self) -> str:
        cfg = self.config().to_dict()
        for k in ("workers", "amp", "sync_bn"):  # how it runs, not what it learns
            cfg.pop(k)
        blob = json.dumps({"format": CACHE_FORMAT, **cfg}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def resolution(self) -> int:
        return self.input_size or DATA["image_size"]


def _shvit(key: str, description: str, **kw) -> MicroRecipe:
    return MicroRecipe(key, f"shvitlab_{key}", description, {**BASE, **kw})


RECIPES: Dict[str, MicroRecipe] = {r.key: r for r in [
    _shvit("fig2_b", "micro SHViT: 16x16 stem, 3 stages, SHSA ratio 1/4.67 (Fig. 2 b; Table 6 row 4; Fig. 6 partial)"),
    _shvit("fig2_a", "Fig. 2 (a): 4x4 stem, extra stage in front",
           embed_dims=[16, 32, 64, 96], depths=[1, 1, 2, 2], partial_dims=[4, 7, 14, 21]),
    MicroRecipe("fig2_b256", "shvitlab_fig2_b256", "Fig. 2 (b'): (b) at a proportionally larger input",
                {**BASE, "img_size": B_PRIME}, input_size=B_PRIME),
    _shvit("fig2_b_attn1", "Fig. 2 (b''): (b) with attention in stage 1"),
    _shvit("stem4", "(b) widths, 4x4 stem"),
    _shvit("stem8", "(b) widths, 8x8 stem"),
    _shvit("stem32", "(b) widths, 32x32 stem"),
    _shvit("t6_mhsa", "Table 6 row 1: single head -> MHSA (4 heads)"),
    _shvit("t6_none", "Table 6 row 2: no attention (DWConv only)"),
    _shvit("t6_ratio8", "Table 6 row 3: partial ratio 1/8"),
    _shvit("t6_ratio2", "Table 6 row 5: partial ratio 1/2"),
    _shvit("fig6_full", "Fig. 6: full-channel single-head attention"),
    _shvit("fig6_bottleneck", "Fig. 6: single-head attention in a ResNet bottleneck"),
    MicroRecipe("deit_3h", "deit_tiny_patch16_224", "Fig. 3: DeiT-T-shaped micro ViT, 3 heads",
                {**DEIT, "num_heads": 3}, train=DEIT_TRAIN, data=DEIT_DATA),
    MicroRecipe("deit_6h", "deit_tiny_patch16_224", "Fig. 3: DeiT-T-shaped micro ViT, 6 heads",
                {**DEIT, "num_heads": 6}, train=DEIT_TRAIN, data=DEIT_DATA),
]}

MACRO_ROWS = (("fig2_a", "(a)"), ("fig2_b", "(b)"), ("fig2_b256", "(b')"), ("fig2_b_attn1", "(b'')"))
STEM_ROWS = (("stem4", 4), ("stem8", 8), ("fig2_b", 16), ("stem32", 32))
TABLE6_ROWS = (("t6_mhsa", "single head -> MHSA"), ("t6_none", "self-attention -> none"),
               ("t6_ratio8", "partial ratio 1/8"), ("fig2_b", "partial ratio 1/4.67"),
               ("t6_ratio2", "partial ratio 1/2"))
FIG6_ROWS = (("fig6_bottleneck", "bottleneck"), ("fig6_full", "full channel"), ("fig2_b", "partial channel"))


# ----------------------------------------------------------------------------- cache

def _recipe(key: str) -> MicroRecipe:
    if key not in RECIPES:
        raise UserError(f"unknown micro recipe {key!r}; known: {', '.join(RECIPES)}")
    return RECIPES[key]


def checkpoint_path(key: str, root: Path = RESULTS_DIR) -> Path:
    r = _recipe(key)
    return Path(root) / "checkpoints" / f"{key}-{r.digest()}.safetensors"


_DATA_CACHE: dict = {}


def _datasets(data_kwargs: Optional[dict] = None):
    """The micro suite's cluttered digits (each configuration generated once per process)."""
    data_kwargs = data_kwargs or DATA
    key = json.dumps(data_kwargs, sort_keys=True)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = build_datasets(TrainConfig(model="-", data_kwargs=dict(data_kwargs)))
    return _DATA_CACHE[key]


def _round_fp16(model: nn.Module) -> dict:
    """State dict with floating tensors stored as fp16 (the cache format), loaded back into `model`."""
    sd = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    return sd


def load_or_train(key: str, *, root: Path = RESULTS_DIR, retrain: bool = False,
                  progress: bool = True) -> tuple[nn.Module, dict]:
    """(model in eval mode, summary) of a micro recipe: from the cache, else trained and cached."""
    r = _recipe(key)
    path = checkpoint_path(key, root)
    cfg = r.config()
    if path.is_file() and not retrain:
        with safe_open(str(path), "pt") as f:
            summary = json.loads(f.metadata()["summary"])
            sd = {k: f.get_tensor(k) for k in f.keys()}
        model = build_model(cfg, summary["num_classes"])
        from shvit.weights import load_state_dict_strict
        load_state_dict_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in sd.items()},
                               source=str(path))
        return model.eval(), summary
    path.parent.mkdir(parents=True, exist_ok=True)
    train_ds, val_ds, num_classes = _datasets(cfg.data_kwargs)
    model, summary = fit(cfg, datasets=(train_ds, val_ds, num_classes), progress=progress)
    sd = _round_fp16(model)  # report the accuracy of the weights that are cached
    val = evaluate(model, DataLoader(val_ds, batch_size=200), torch.device("cpu"), cfg.input_size)
    summary = {**summary, "key": key, "digest": r.digest(), "val_top1_fp32": summary["val_top1"],
               "val_top1": val["top1"], "threads": torch.get_num_threads()}
    summary.pop("checkpoint", None)
    with atomic_path(path) as tmp:
        save_file(sd, str(tmp), metadata={"recipe": json.dumps(cfg.to_dict(), sort_keys=True),
                                          "summary": json.dumps(summary, sort_keys=True)})
    return model.eval(), summary


def train_suite(keys: Optional[Iterable[str]] = None, *, root: Path = RESULTS_DIR, retrain: bool = False,
                progress: bool = True) -> pd.DataFrame:
    """Train (or load) every recipe; one row per model: top-1, train time, params, digest."""
    keys = list(keys or RECIPES)
    rows = []
    bar = tqdm(keys, disable=not progress, file=sys.stderr, desc="micro suite", unit="model")
    for key in bar:
        bar.set_postfix(model=key)
        _, s = load_or_train(key, root=root, retrain=retrain, progress=progress)
        rows.append({"key": key, "model": s["model"], "digest": s["digest"], "description": RECIPES[key].description,
                     "params": s["params"], "epochs": s["epochs_done"], "val_top1": s["val_top1"],
                     "train_seconds": s["train_seconds"], "threads": s["threads"]})
    df = pd.DataFrame(rows)
    write_csv(df, Path(root) / "models.csv")
    return df


# ----------------------------------------------------------------------------- tables

def _cached_table(name: str, keys: Iterable[str], compute, root: Path, refresh: bool) -> pd.DataFrame:
    """`results/micro/<name>.csv` if it was computed from the current recipes, else recompute and write it."""
    path = Path(root) / f"{name}.csv"
    digests = ";".join(f"{k}-{_recipe(k).digest()}" for k in dict.fromkeys(keys))
    if path.is_file() and not refresh:
        df = read_csv(path)
        if "recipes" in df and (df["recipes"] == digests).all():
            return df
    df = compute()
    df["recipes"] = digests
    write_csv(df, path)
    return df


def _cost(model: nn.Module, side: int, *, throughput_s: float) -> dict:
    """macs and mem_bytes of the BN-fused model at batch 1, and CPU images/s (batch 16, one thread)."""
    from .cost import CostAnalysis
    from .throughput import measure_throughput

    ca = CostAnalysis(model, torch.randn(1, 3, side, side))
    tp = measure_throughput(model, runtime="cpu", batch_size=16, resolution=side, threads=1,
                            warmup_s=throughput_s / 3, window_s=throughput_s)
    return {"macs": ca.total("macs"), "mem_bytes": ca.total("mem_bytes"), "cpu_img_s": tp["images_per_s"]}


def _model_rows(rows, root: Path, throughput_s: float, progress: bool) -> pd.DataFrame:
    out = []
    for key, extra in rows:
        model, s = load_or_train(key, root=root, progress=progress)
        r = RECIPES[key]
        out.append({**extra, "key": key, "model": r.model, "description": r.description,
                    "resolution": r.resolution, "val_top1": s["val_top1"], "params": s["params"],
                    **_cost(model, r.resolution, throughput_s=throughput_s)})
    return pd.DataFrame(out)


def macro(*, root: Path = RESULTS_DIR, refresh: bool = False, throughput_s: float = 2.0,
          progress: bool = True) -> pd.DataFrame:
    """SHViT Fig. 2 at micro scale: (a), (b), (b'), (b'') and stem strides 4/8/16/32 (matched widths)."""
    rows = [(k, {"experiment": "fig2", "row": label}) for k, label in MACRO_ROWS]
    rows += [(k, {"experiment": "stem", "row": f"stem {s}x{s}", "stem_stride": s}) for k, s in STEM_ROWS]

    def compute():
        df = _model_rows(rows, root, throughput_s, progress)
        df["stem_stride"] = [_stem(k) for k in df["key"]]
        return df
    return _cached_table("macro", [k for k, _ in rows], compute, root, refresh)


def _stem(key: str) -> int:
    from shvit import get_config
    return get_config(RECIPES[key].model).stem_stride


def single_head(*, root: Path = RESULTS_DIR, refresh: bool = False, throughput_s: float = 2.0,
                progress: bool = True) -> pd.DataFrame:
    """SHViT Table 6 (SHSA vs MHSA vs none, partial ratios) and Fig. 6 (bottleneck / full / partial)."""
    rows = [(k, {"experiment": "table6", "row": label}) for k, label in TABLE6_ROWS]
    rows += [(k, {"experiment": "fig6", "row": label}) for k, label in FIG6_ROWS]

    def compute():
        df = _model_rows(rows, root, throughput_s, progress)
        from shvit import get_config
        ratios = []
        for k in df["key"]:
            cfg = get_config(RECIPES[k].model).replace(**{f: tuple(v) if isinstance(v, list) else v
                                                         for f, v in RECIPES[k].model_kwargs.items()})
            last = cfg.mixers[-1]  # share of the channels that attention sees (last stage; NaN: no attention)
            ratios.append(cfg.stage_partial_dims[-1] / cfg.embed_dims[-1] if last in ("shsa", "bottleneck")
                          else 1.0 if last in ("full", "mhsa") else float("nan"))
        df["partial_ratio"] = ratios
        return df
    return _cached_table("single_head", [k for k, _ in rows], compute, root, refresh)


def heads(*, root: Path = RESULTS_DIR, refresh: bool = False, similarity_images: int = 128,
          progress: bool = True) -> pd.DataFrame:
    """SHViT Fig. 3 at micro scale: per layer of the 3- and 6-head micro DeiT, the mean pairwise
    cosine similarity of head attention maps (%, over `similarity_images` val images, as the
    paper's 128) and the best remove-1 / leave-1 top-1 deltas (percentage points, full val set)."""
    keys = ("deit_3h", "deit_6h")

    def compute():
        from .attention import AttentionCapture
        from .head_ablation import best_heads, head_ablation
        from .head_metrics import HeadStatistics

        frames = []
        for key in keys:
            _, val, _ = _datasets(RECIPES[key].config().data_kwargs)
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
    return _cached_table("heads", keys, compute, root, refresh)


def head_query_maps(key: str = "deit_3h", layer_index: int = -1, num_images: int = 4, *,
                    root: Path = RESULTS_DIR) -> dict:
    """For plotting (SHViT Fig. 3, right): in one layer of a trained micro DeiT, the most important
    head (removing it costs the most val top-1) and the most redundant one (costs the least), and
    where each attends from the centre query token on the first `num_images` val images.

    Returns {"images" [n, 3, H, W] in [0, 1], "layer", "layer_index", "important" / "redundant":
    (head, top-1 delta), "maps": {"important" / "redundant": [n, gh, gw]}, "query_yx"}.
    """
    from .attention import attention_layers
    from .head_ablation import extreme_heads, head_ablation, query_attention

    model, _ = load_or_train(key, root=root, progress=False)
    _, val, _ = _datasets(RECIPES[key].config().data_kwargs)
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


GRADCAM_KEYS = (("stem4", 4), ("fig2_b", 16))
CAM_MIN_SIDE = 3


def cam_layer(model: nn.Module, side: int, min_side: int = CAM_MIN_SIDE) -> tuple[str, int]:
    """(stage name, map side) for Grad-CAM: the last stage whose feature map is at least
    `min_side` tokens wide. At 224 px the paper's last stages are 7x7 (4x4 stem) and 4x4 (16x16
    stem); at 48 px the 16x16 stem's last stage is 1x1, where Grad-CAM is a constant, so micro
    scale compares both stems on a 3x3 map (4x4 stem: stage 3; 16x16 stem: stage 1)."""
    sides = model.cfg.stage_resolutions(side)
    i = max([j for j, s in enumerate(sides) if s >= min_side], default=0)
    return f"stages.{i}", sides[i]


def gradcam(*, root: Path = RESULTS_DIR, refresh: bool = False, progress: bool = True) -> pd.DataFrame:
    """Pointing game of the 4x4- vs 16x16-stem micro models over the whole val set (captum
    LayerGradCam on `cam_layer`, target = true class); `box_area` is the hit rate of a random point."""
    from .gradcam import localisation

    def compute():
        _, val, _ = _datasets()
        frames = []
        for key, stride in GRADCAM_KEYS:
            model, _ = load_or_train(key, root=root, progress=progress)
            name, side = cam_layer(model, RECIPES[key].resolution)
            df = localisation(model, val, layer=model.get_submodule(name), progress=progress)
            for col, value in (("map_side", side), ("layer", name), ("stem_stride", stride), ("key", key)):
                df.insert(0, col, value)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)
    return _cached_table("gradcam", [k for k, _ in GRADCAM_KEYS], compute, root, refresh)


def gradcam_examples(n: int = 8, *, root: Path = RESULTS_DIR) -> dict:
    """For plotting: the first `n` val images (in [0, 1]), their boxes and labels, and the
    Grad-CAM maps (at `cam_layer`) of the 4x4- and 16x16-stem models ({key: (n, H, W)}), target = true class."""
    from .gradcam import GradCAM

    _, val, _ = _datasets()
    x = torch.stack([val[i][0] for i in range(n)])
    y = val.labels[:n]
    maps = {}
    for key, _ in GRADCAM_KEYS:
        model = load_or_train(key, root=root, progress=False)[0]
        layer = model.get_submodule(cam_layer(model, RECIPES[key].resolution)[0])
        maps[key] = GradCAM(model, layer).attribute(x, target=y)
    return {"images": ClutteredDigits.denormalize(x), "boxes": val.boxes[:n], "labels": y, "maps": maps}


# ----------------------------------------------------------------------------- CLI

TABLES = {"macro": macro, "heads": heads, "single_head": single_head, "gradcam": gradcam}


def _parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m analysis.ablations", description=__doc__.split("\n\n")[0],
                       epilog="""examples:
  python -m analysis.ablations --all                 # train missing recipes, write results/micro/*.csv
  python -m analysis.ablations --list
  python -m analysis.ablations --train stem4 stem8   # just these models
  python -m analysis.ablations --table macro --refresh""")
    p.add_argument("--all", action="store_true", help="train every recipe and build every table")
    p.add_argument("--train", nargs="+", metavar="KEY", help="train (or load) these recipes")
    p.add_argument("--table", nargs="+", choices=sorted(TABLES), help="build these tables")
    p.add_argument("--list", action="store_true", help="list the recipes and their cache state")
    p.add_argument("--retrain", action="store_true", help="ignore cached checkpoints")
    p.add_argument("--refresh", action="store_true", help="recompute cached tables")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (the suite's budget: 2 cores)")
    p.add_argument("--root", default=str(RESULTS_DIR), help="results folder (default: results/micro)")
    return p


@exit_on_user_error
def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    root = Path(args.root)
    if args.list:
        for key, r in RECIPES.items():
            state = "cached" if checkpoint_path(key, root).is_file() else "missing"
            print(f"{key:16s} {r.digest()} {state:8s} {r.description}")
        return 0
    if not (args.all or args.train or args.table):
        raise UserError("nothing to do: pass --all, --train KEY..., --table NAME... or --list")
    root.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.all or args.train:
        models = train_suite(args.train if args.train and not args.all else None, root=root, retrain=args.retrain)
        print(models[["key", "val_top1", "train_seconds"]].to_string(index=False), file=sys.stderr)
    for name in (TABLES if args.all else args.table or ()):
        df = TABLES[name](root=root, refresh=args.refresh or args.retrain)
        print(f"{name}: {len(df)} rows -> {root / (name + '.csv')}", file=sys.stderr)
    if args.all:
        m = read_csv(root / "models.csv")
        write_json({"models": len(m), "train_seconds_total": round(float(m["train_seconds"].sum()), 1),
                    "wall_seconds_this_run": round(time.perf_counter() - t0, 1),
                    "cache_bytes": sum(p.stat().st_size for p in (root / "checkpoints").glob("*.safetensors"))},
                   root / "suite.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
