"""The micro suite's recipes: every SHViT ablation as a registry of small trained models.

The rows of each table are the `shvit` named variants (`shvitlab_fig2_a`, `shvitlab_stem4`,
`shvitlab_t6_mhsa`, ...) with the same overrides that shrink them to micro scale (narrower and
shallower stages, 48 px, 10 classes), so what differs between rows is exactly what differs in
the paper. A recipe's digest (SHA-256 of model config, data config, training hyperparameters,
seed) names its cached checkpoint (`lab.cache`).

Micro scale keeps the comparisons, not the absolute numbers: one base model (the micro
SHViT-S1, 3 stages of 32/64/96 channels, depths 1/2/2, partial ratio 1/4.67) stands for
Fig. 2 (b), the 16x16 stem row, Table 6's row 4 (S3 at ratio 1/4.67) and Fig. 6's partial
design (S2): at micro scale S1, S2 and S3 shrink to the same network.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Dict, Optional

from ..core.errors import UserError, not_a_command
from .checkpoints import with_legacy_names
from .datasets import DigitsConfig
from .train import TrainConfig

__all__ = ["MicroRecipe", "RECIPES", "MESO_RECIPES", "MESO_DATA", "MESO_GRADCAM_KEYS", "MESO_GRADCAM_LAYERS", "recipe",
           "SEEDED_KEYS", "SEEDS", "DATA", "TRAIN", "MACRO_ROWS", "STEM_ROWS",
           "TABLE6_ROWS", "MESO_SEEDS", "MESO_FAMILIES", "STEM16", "STEM4", "resolve",
           "FIG6_ROWS", "GRADCAM_KEYS", "CACHE_FORMAT"]

CACHE_FORMAT = 1
# Many fresh images, few epochs: the generator is cheap, and tiny models memorise small sets.
# One clutter fragment per image: with two, the 32x32-stem model (a 2x2 token grid at 48 px)
# stays below 3x chance (25.8% top-1) within the suite's budget; with one it reaches 38-42%.
DATA = {"resolution": 48, "num_train": 10000, "num_val": 1000, "digit_size": [26, 38], "clutter": 1, "seed": 0}
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
    resolution: Optional[int] = None  # input side in px; None: the data's own (filled in); else inputs are resized
    train: dict = field(default_factory=dict)  # overrides of TRAIN
    data: dict = field(default_factory=dict)  # overrides of DATA
    design: str = ""  # meso: the design whose one search (`lab.tuning`) sets this recipe's lr and augmentation

    def __post_init__(self):
        if self.resolution is None:
            object.__setattr__(self, "resolution", self.data_resolution)

    @property
    def data_resolution(self) -> int:
        return {**DATA, **self.data}["resolution"]

    def config(self) -> TrainConfig:
        resize = None if self.resolution == self.data_resolution else self.resolution
        return TrainConfig(model=self.model, model_kwargs=dict(self.model_kwargs), data_kwargs={**DATA, **self.data},
                           resolution=resize, **{**TRAIN, **self.train})

    def digest(self) -> str:
        cfg = with_legacy_names(self.config().to_dict())  # renamed fields keep their digests (cache keys)
        for k in ("workers", "amp", "sync_bn"):  # how it runs, not what it learns
            cfg.pop(k)
        if cfg["augment"] == "none":  # the default before augmentation existed: old digests stay valid
            cfg.pop("augment")
        blob = json.dumps({"format": CACHE_FORMAT, **cfg}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def seed(self) -> int:
        return {**TRAIN, **self.train}["seed"]

    def with_seed(self, seed: int) -> "MicroRecipe":
        """The same recipe trained from another seed (initialisation and batch order; same data)."""
        return self if seed == self.seed else replace(self, train={**self.train, "seed": seed})

    def with_train(self, **overrides) -> "MicroRecipe":
        """The same recipe with training hyperparameters overridden (lr, augment, epochs, seed, ...)."""
        return replace(self, train={**self.train, **overrides})

    @property
    def train_images(self) -> int:
        """Images seen in training: epochs x training-set size."""
        cfg = self.config()
        return cfg.epochs * DigitsConfig(**cfg.data_kwargs).num_train

    @property
    def label(self) -> str:
        """`key-digest`: how tables name the recipes they were computed from."""
        return f"{self.key}-{self.digest()}"


def _shvit(key: str, description: str, **kw) -> MicroRecipe:
    return MicroRecipe(key, f"shvitlab_{key}", description, {**BASE, **kw})


RECIPES: Dict[str, MicroRecipe] = {r.key: r for r in [
    _shvit("fig2_b", "micro SHViT: 16x16 stem, 3 stages, SHSA ratio 1/4.67 (Fig. 2 b; Table 6 row 4; Fig. 6 partial)"),
    _shvit("fig2_a", "Fig. 2 (a): 4x4 stem, extra stage in front",
           embed_dims=[16, 32, 64, 96], depths=[1, 1, 2, 2], partial_dims=[4, 7, 14, 21]),
    MicroRecipe("fig2_b256", "shvitlab_fig2_b256", "Fig. 2 (b'): (b) at a proportionally larger input",
                {**BASE, "img_size": B_PRIME}, resolution=B_PRIME),
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
GRADCAM_KEYS = (("stem4", 4), ("fig2_b", 16))
# Replicates: every recipe trained from SEEDS (seed 0 is the suite's own model), for the intervals of
# the figures and the claim scorecard. `python -m analysis.ablations --seeds`.
SEEDED_KEYS = tuple(RECIPES)
SEEDS = (0, 1, 2)


# Meso scale: the models the paper's claims compare, at 112 px, where the 16x16 stem keeps a 7x7 token grid
# (and Grad-CAM a 7x7 map), DeiT its 16x16 patches (7x7 tokens); 1.5x the images of the micro scale, the same
# epochs (so 1.5x the steps) and 2x the val images, plus a writer-disjoint tune split for the search
# (`lab.tuning`). Fig. 2 as the paper draws it, a speed-accuracy plane: a sweep of each macro design,
# the 16x16-stem 3-stage family at four sizes ((b), (b') at 128 px = 112 x 256/224, and two widths) and the
# 4x4-stem 4-stage family at two ((a) and half its widths). `python -m analysis.ablations --meso`.
MESO = 112
MESO_DATA = {"resolution": MESO, "digit_size": [61, 89], "num_train": 15000, "num_val": 2000,  # digits x 112/48
             "num_tune": 2000}
MESO_SEEDS = (0, 1, 2, 3, 4)
MESO_B_PRIME = 128
STEM16, STEM4 = "16x16 stem, 3 stages", "4x4 stem, 4 stages"
_MESO_A = {**BASE, "img_size": MESO, "embed_dims": [16, 32, 64, 96], "depths": [1, 1, 2, 2],
           "partial_dims": [4, 7, 14, 21]}
MESO_RECIPES: Dict[str, MicroRecipe] = {r.key: r for r in [
    MicroRecipe("meso_fig2_b", "shvitlab_fig2_b", "meso SHViT: 16x16 stem, 3 stages, SHSA ratio 1/4.67 (Fig. 2 b)",
                {**BASE, "img_size": MESO}, data=MESO_DATA, design=STEM16),
    MicroRecipe("meso_fig2_b128", "shvitlab_fig2_b", "meso Fig. 2 (b'): (b) at 128 px (112 x 256/224)",
                {**BASE, "img_size": MESO_B_PRIME}, resolution=MESO_B_PRIME, data=MESO_DATA, design=STEM16),
    MicroRecipe("meso_fig2_b_w64", "shvitlab_fig2_b", "meso (b) at twice its widths (64/128/192)",
                {**BASE, "img_size": MESO, "embed_dims": [64, 128, 192], "partial_dims": [14, 28, 41]},
                data=MESO_DATA, design=STEM16),
    MicroRecipe("meso_fig2_b_w96", "shvitlab_fig2_b", "meso (b) at three times its widths (96/192/288)",
                {**BASE, "img_size": MESO, "embed_dims": [96, 192, 288], "partial_dims": [21, 41, 62]},
                data=MESO_DATA, design=STEM16),
    MicroRecipe("meso_fig2_a", "shvitlab_fig2_a", "meso Fig. 2 (a): 4x4 stem, extra stage in front",
                _MESO_A, data=MESO_DATA, design=STEM4),
    MicroRecipe("meso_fig2_a_half", "shvitlab_fig2_a", "meso (a) at half its widths (8/16/32/48)",
                {**_MESO_A, "embed_dims": [8, 16, 32, 48], "partial_dims": [2, 4, 7, 10]}, data=MESO_DATA,
                design=STEM4),
    MicroRecipe("meso_t6_mhsa", "shvitlab_t6_mhsa", "meso Table 6 row 1: single head -> MHSA (4 heads)",
                {**BASE, "img_size": MESO}, data=MESO_DATA, design="MHSA"),
    MicroRecipe("meso_t6_none", "shvitlab_t6_none", "meso Table 6 row 2: no attention (DWConv only)",
                {**BASE, "img_size": MESO}, data=MESO_DATA, design="no attention"),
    MicroRecipe("meso_deit_3h", "deit_tiny_patch16_224", "meso Fig. 3: DeiT-T-shaped ViT, 16x16 patches, 3 heads",
                {**DEIT, "img_size": MESO, "patch_size": 16, "num_heads": 3}, train=DEIT_TRAIN,
                data={**MESO_DATA, **DEIT_DATA}, design="DeiT, 3 heads"),
    MicroRecipe("meso_deit_6h", "deit_tiny_patch16_224", "meso Fig. 3: DeiT-T-shaped ViT, 16x16 patches, 6 heads",
                {**DEIT, "img_size": MESO, "patch_size": 16, "num_heads": 6}, train=DEIT_TRAIN,
                data={**MESO_DATA, **DEIT_DATA}, design="DeiT, 6 heads"),
]}
# The sweep behind Fig. 2's speed-accuracy plane: (family, members) in order of size.
MESO_FAMILIES = {STEM16: ("meso_fig2_b", "meso_fig2_b128", "meso_fig2_b_w64", "meso_fig2_b_w96"),
                 STEM4: ("meso_fig2_a_half", "meso_fig2_a")}
MESO_GRADCAM_KEYS = (("meso_fig2_a", 4), ("meso_fig2_b", 16))
# Per-image Grad-CAM (`experiments.gradcam_images_table`), at layers declared before any of their numbers
# were read: each model's last stage ((a) stages.3, 4x4 at 112 px; (b) stages.2, 2x2) and (b)'s stages.1,
# whose 4x4 map matches (a)'s last stage.
MESO_GRADCAM_LAYERS = {"meso_fig2_a": ("stages.3",), "meso_fig2_b": ("stages.1", "stages.2")}


def recipe(key: str, seed: int = 0) -> MicroRecipe:
    """The recipe `key` (micro or meso, trained from `seed`); an unknown key is a user error naming the known ones."""
    known = {**RECIPES, **MESO_RECIPES}
    if key not in known:
        raise UserError(f"unknown recipe {key!r}; known: {', '.join(known)}")
    return known[key].with_seed(seed)


def resolve(key: "str | MicroRecipe", seed: Optional[int] = None) -> MicroRecipe:
    """A recipe named by its key (`recipe`) or given as is (a tuned meso recipe), from `seed` when given."""
    if isinstance(key, MicroRecipe):
        return key if seed is None else key.with_seed(seed)
    return recipe(key, 0 if seed is None else seed)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
