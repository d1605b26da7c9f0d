"""Named configs of the SHViT papers (registered with timm as `shvitlab_*` by `shvit.shvit`).

`timm.create_model("shvitlab_s1")` builds our S1; timm's own `shvit_s1..s4` are left
untouched. Keyword arguments override config fields:
`timm.create_model("shvitlab_fig2_b", num_classes=10, stem_stride=8)`.

S1..S4 follow paper Table 1 and the official code. The Fig. 2 macro models are our
reconstruction (the paper gives the designs, not every width): (b) is S1's
16x16-stem, 3-stage macro design; (a) puts a 4x4 stem and an extra 56x56 stage in front of
the same widths, attention in the last two stages as in (b).
Table 6 rows modify S3, Fig. 6 designs modify S2, as in the paper.
"""
from __future__ import annotations

from typing import Dict, NamedTuple

from .config import SHViTConfig

__all__ = ["VARIANTS", "Variant", "get_config", "PREFIX"]

PREFIX = "shvitlab_"


class Variant(NamedTuple):
    cfg: SHViTConfig
    description: str


def _s(dims, depths, pdims, img_size=224) -> SHViTConfig:
    return SHViTConfig(embed_dims=dims, depths=depths, partial_dims=pdims,
                       mixers=("conv", "shsa", "shsa"), img_size=img_size)


S1 = _s((128, 224, 320), (2, 4, 5), (32, 48, 68))
S2 = _s((128, 308, 448), (2, 4, 5), (32, 66, 96))
S3 = _s((192, 352, 448), (3, 5, 5), (48, 75, 96))
S4 = _s((224, 336, 448), (4, 7, 6), (48, 72, 96), img_size=256)
FIG2_A = SHViTConfig(embed_dims=(64, 128, 224, 320), depths=(1, 2, 4, 5), partial_dims=(16, 32, 48, 68),
                     mixers=("conv", "conv", "shsa", "shsa"), stem_stride=4)

VARIANTS: Dict[str, Variant] = {
    "s1": Variant(S1, "SHViT-S1 (Table 1)"),
    "s2": Variant(S2, "SHViT-S2 (Table 1)"),
    "s3": Variant(S3, "SHViT-S3 (Table 1)"),
    "s4": Variant(S4, "SHViT-S4 (Table 1), 256 px"),
    "fig2_a": Variant(FIG2_A, "Fig. 2 (a): 4x4 stem, 4 stages"),
    "fig2_b": Variant(S1, "Fig. 2 (b): 16x16 stem, 3 stages"),
    "fig2_b256": Variant(S1.replace(img_size=256), "Fig. 2 (b'): (b) at 256 px"),
    "fig2_b_attn1": Variant(S1.replace(mixers=("shsa", "shsa", "shsa")),
                            "Fig. 2 (b''): (b) with attention in stage 1"),
    **{f"stem{s}": Variant(S1.replace(stem_stride=s), f"S1 widths with a {s}x{s} stem")
       for s in (4, 8, 16, 32)},
    "t6_mhsa": Variant(S3.replace(mixers=("conv", "mhsa", "mhsa"), num_heads=4),
                       "Table 6 row 1: S3, single head -> MHSA (4 heads)"),
    "t6_none": Variant(S3.replace(mixers=("conv", "conv", "conv")),
                       "Table 6 row 2: S3, self-attention -> none (DWConv only)"),
    "t6_ratio8": Variant(S3.replace(partial_ratio=1 / 8), "Table 6 row 3: S3, partial ratio 1/8"),
    "t6_ratio4_67": Variant(S3, "Table 6 row 4: S3, partial ratio 1/4.67"),
    "t6_ratio2": Variant(S3.replace(partial_ratio=1 / 2), "Table 6 row 5: S3, partial ratio 1/2"),
    "fig6_bottleneck": Variant(S2.replace(mixers=("conv", "bottleneck", "bottleneck")),
                               "Fig. 6: S2 with attention in a ResNet bottleneck"),
    "fig6_full": Variant(S2.replace(mixers=("conv", "full", "full")),
                         "Fig. 6: S2 with full-channel single-head attention"),
    "fig6_partial": Variant(S2, "Fig. 6: S2, partial-channel single-head attention"),
}


def get_config(name: str) -> SHViTConfig:
    """Config of a named variant; accepts 's1' or 'shvitlab_s1'."""
    key = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if key not in VARIANTS:
        raise KeyError(f"unknown shvit variant {name!r}; known: {', '.join(PREFIX + k for k in VARIANTS)}")
    return VARIANTS[key].cfg
