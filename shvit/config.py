"""SHViTConfig: one dataclass that spans the SHViT design space.

Every paper model (S1..S4, the Fig. 2 macro models, the Table 6 / Fig. 6 rows) is a
value of this config; `shvit.variants` names them (`shvit.shvit` registers them with timm).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Tuple, Union

MIXERS = ("conv", "shsa", "mhsa", "full", "bottleneck")
"""Token mixers per stage.

conv        DWConv only (the block's 3x3 depthwise conv; no attention). timm's type 'i'.
shsa        single-head self-attention on the first `partial_dim` channels (SHViT).
mhsa        multi-head self-attention on all channels: `num_heads` heads, each with
            `qk_dim` query/key channels and `dim // num_heads` value channels
            (LeViT / EfficientViT layout), concatenated, ReLU, 1x1 conv-BN projection.
full        single-head attention on all channels (Fig. 6 "full channel").
bottleneck  1x1 conv-BN reduces to `partial_dim` channels, single-head attention, 1x1
            conv-BN expands back (Fig. 6 "attention replaces conv in a ResNet bottleneck").
"""

STEM_STRIDES = (4, 8, 16, 32)

IntOrTuple = Union[int, Tuple[int, ...]]


def _per_stage(value, n: int, name: str) -> tuple:
    if isinstance(value, (int, float, str)):
        return (value,) * n
    value = tuple(value)
    if len(value) != n:
        raise ValueError(f"{name} has {len(value)} entries but the model has {n} stages")
    return value


@dataclass(frozen=True)
class SHViTConfig:
    """Architecture of one SHViT-family model.

    Attributes:
        embed_dims: channels per stage (3 or 4 stages).
        depths: blocks per stage.
        mixers: token mixer per stage, one of `MIXERS`.
        partial_dims: channels that attention sees per stage (`shsa`, `bottleneck`).
        partial_ratio: if set, overrides `partial_dims` with round(dim * ratio).
        qk_dim: query/key channels (per head for `mhsa`), int or per stage.
        num_heads: heads of `mhsa` stages, int or per stage.
        ffn_ratio: FFN hidden width / dim.
        stem_stride: 4, 8, 16 or 32; the stem is log2(stride) stride-2 3x3 conv-BN layers.
        img_size: nominal input resolution (the pretrained config's and cost tables').
    """

    embed_dims: Tuple[int, ...] = (128, 224, 320)
    depths: Tuple[int, ...] = (2, 4, 5)
    mixers: Tuple[str, ...] = ("conv", "shsa", "shsa")
    partial_dims: Optional[Tuple[int, ...]] = (32, 48, 68)
    partial_ratio: Optional[float] = None
    qk_dim: IntOrTuple = 16
    num_heads: IntOrTuple = 4
    ffn_ratio: float = 2.0
    stem_stride: int = 16
    img_size: int = 224
    num_classes: int = 1000
    in_chans: int = 3
    drop_rate: float = 0.0

    def __post_init__(self):
        n = len(self.embed_dims)
        if n not in (3, 4):
            raise ValueError(f"SHViT models have 3 or 4 stages, got {n} embed_dims")
        for name in ("embed_dims", "depths", "mixers"):
            object.__setattr__(self, name, _per_stage(getattr(self, name), n, name))
        if self.partial_ratio is not None:  # the ratio wins; drop per-stage dims it replaces
            object.__setattr__(self, "partial_dims", None)
        if self.partial_dims is not None:
            object.__setattr__(self, "partial_dims", _per_stage(self.partial_dims, n, "partial_dims"))
        unknown = [m for m in self.mixers if m not in MIXERS]
        if unknown:
            raise ValueError(f"unknown mixer(s) {unknown}; choose from {list(MIXERS)}")
        if self.stem_stride not in STEM_STRIDES:
            raise ValueError(f"stem_stride must be one of {STEM_STRIDES}, got {self.stem_stride}")
        if any(d < 1 for d in self.depths):
            raise ValueError(f"every stage needs at least one block, got depths {self.depths}")
        if self.embed_dims[0] % (self.stem_stride // 2):
            raise ValueError(
                f"embed_dims[0]={self.embed_dims[0]} must be divisible by {self.stem_stride // 2} "
                f"(the stem halves the channels at each of its {self.stem_levels} layers)")
        if self.partial_ratio is None and self.partial_dims is None and any(
                m in ("shsa", "bottleneck") for m in self.mixers):
            raise ValueError("shsa / bottleneck mixers need partial_dims or partial_ratio")
        for i, m in enumerate(self.mixers):
            dim, heads = self.embed_dims[i], self.stage_num_heads[i]
            if m == "mhsa" and dim % heads:
                raise ValueError(f"stage {i}: dim {dim} is not divisible by num_heads {heads}")
            if m in ("shsa", "bottleneck") and not 0 < self.stage_partial_dims[i] <= dim:
                raise ValueError(f"stage {i}: partial dim {self.stage_partial_dims[i]} not in (0, {dim}]")

    @property
    def num_stages(self) -> int:
        return len(self.embed_dims)

    @property
    def stem_levels(self) -> int:
        return self.stem_stride.bit_length() - 1

    @property
    def stage_partial_dims(self) -> Tuple[int, ...]:
        if self.partial_ratio is not None:
            return tuple(max(1, round(d * self.partial_ratio)) for d in self.embed_dims)
        return self.partial_dims or tuple(self.embed_dims)

    @property
    def stage_qk_dims(self) -> Tuple[int, ...]:
        return _per_stage(self.qk_dim, self.num_stages, "qk_dim")

    @property
    def stage_num_heads(self) -> Tuple[int, ...]:
        return _per_stage(self.num_heads, self.num_stages, "num_heads")

    @property
    def stage_strides(self) -> Tuple[int, ...]:
        """Total downsampling at the output of each stage."""
        return tuple(self.stem_stride * 2 ** i for i in range(self.num_stages))

    def stage_resolutions(self, img_size: Optional[int] = None) -> Tuple[int, ...]:
        """Feature-map side per stage (conv arithmetic: ceil halving at each stride-2 layer)."""
        side = img_size or self.img_size
        out = []
        for _ in range(self.stem_levels):
            side = (side + 1) // 2
        out.append(side)
        for _ in range(self.num_stages - 1):
            side = (side + 1) // 2
            out.append(side)
        return tuple(out)

    def replace(self, **changes) -> "SHViTConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
