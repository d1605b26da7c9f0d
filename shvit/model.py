"""SHViTNet: a model built from an `SHViTConfig`, with timm's SHViT parameter names."""
from __future__ import annotations

import functools
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import SelectAdaptivePool2d
from timm.utils.model import reparameterize_model

from .config import SHViTConfig
from .layers import NormLinear, Stage, Stem, make_mixer

__all__ = ["SHViTNet"]


class SHViTNet(nn.Module):
    """SHViT-family classifier: stem, 3 or 4 stages, average pool, BN-linear head.

    With the S1..S4 configs its state dict is key-for-key timm's `shvit_s1..s4`.
    Keyword arguments override fields of `cfg` (so timm's `create_model(name, num_classes=10)`
    works).
    """

    def __init__(self, cfg: Optional[SHViTConfig] = None, **overrides):
        super().__init__()
        cfg = (cfg or SHViTConfig()).replace(**overrides)
        self.cfg = cfg
        self.num_classes = cfg.num_classes
        self.drop_rate = cfg.drop_rate
        dims = cfg.embed_dims

        self.patch_embed = Stem(cfg.in_chans, dims[0], cfg.stem_stride)
        stages, prev = [], dims[0]
        for i in range(cfg.num_stages):
            mixer_fn = functools.partial(
                make_mixer, cfg.mixers[i], dims[i], cfg.stage_qk_dims[i],
                cfg.stage_partial_dims[i], cfg.stage_num_heads[i])
            stages.append(Stage(prev, dims[i], cfg.depths[i], mixer_fn, cfg.ffn_ratio, downsample=i > 0))
            prev = dims[i]
        self.stages = nn.Sequential(*stages)
        self.feature_info = [
            dict(num_chs=d, reduction=s, module=f"stages.{i}")
            for i, (d, s) in enumerate(zip(dims, cfg.stage_strides))]

        self.num_features = self.head_hidden_size = dims[-1]
        self.global_pool = SelectAdaptivePool2d(pool_type="avg")
        self.flatten = nn.Flatten(1)
        self.head = NormLinear(dims[-1], cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return set()

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.l if isinstance(self.head, NormLinear) else self.head

    def reset_classifier(self, num_classes: int, global_pool: str = "avg"):
        self.num_classes = num_classes
        self.cfg = self.cfg.replace(num_classes=num_classes)
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool)
        self.flatten = nn.Flatten(1) if global_pool else nn.Identity()
        self.head = NormLinear(self.head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.patch_embed(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.flatten(self.global_pool(x))
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.no_grad()
    def fuse(self) -> "SHViTNet":
        """Fold every BatchNorm into the preceding conv / following linear, in place.

        As the official speed test (`replace_batchnorm`) does; residual 3x3 DWConvs also
        absorb their identity. Call after `.eval()`: the fused model cannot be trained.
        """
        return reparameterize_model(self, inplace=True)
