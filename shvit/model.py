"""SHViTNet: a model built from an `SHViTConfig`, with timm's SHViT parameter names.

Annotations stay real objects (no `from __future__ import annotations`): TorchScript reads them,
also from the graph of an fx-traced model.
"""
import functools
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import SelectAdaptivePool2d
from timm.models._features import feature_take_indices
from timm.utils.model import reparameterize_model

from .config import SHViTConfig
from .layers import NormLinear, Stage, Stem, make_mixer

__all__ = ["SHViTNet"]


class SHViTNet(nn.Module):
    """SHViT-family classifier: stem, 3 or 4 stages, global pool, BN-linear head.

    With the S1..S4 configs its state dict is key-for-key timm's `shvit_s1..s4`, and it offers
    the same model API (`forward_intermediates`, `prune_intermediate_layers`, `reset_classifier`,
    `group_matcher`, `set_grad_checkpointing`, `device` / `dtype` factory kwargs).
    Keyword arguments other than `global_pool`, `device` and `dtype` override fields of `cfg`
    (so timm's `create_model(name, num_classes=10)` works).
    """

    def __init__(self, cfg: Optional[SHViTConfig] = None, global_pool: str = "avg",
                 device=None, dtype=None, **overrides):
        super().__init__()
        dd = {"device": device, "dtype": dtype}
        cfg = (cfg or SHViTConfig()).replace(**overrides)
        self.cfg = cfg
        self.num_classes = cfg.num_classes
        self.in_chans = cfg.in_chans
        self.drop_rate = cfg.drop_rate
        dims = cfg.embed_dims

        self.patch_embed = Stem(cfg.in_chans, dims[0], cfg.stem_stride, **dd)
        stages, prev = [], dims[0]
        for i in range(cfg.num_stages):
            mixer_fn = functools.partial(
                make_mixer, cfg.mixers[i], dims[i], cfg.stage_qk_dims[i],
                cfg.stage_partial_dims[i], cfg.stage_num_heads[i])
            stages.append(Stage(prev, dims[i], cfg.depths[i], mixer_fn, cfg.ffn_ratio, downsample=i > 0, **dd))
            prev = dims[i]
        self.stages = nn.Sequential(*stages)
        self.feature_info = [
            dict(num_chs=d, reduction=s, module=f"stages.{i}")
            for i, (d, s) in enumerate(zip(dims, cfg.stage_strides))]

        self.num_features = self.head_hidden_size = dims[-1]
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool)
        assert self.global_pool.feat_mult() == 1, "Pooling that changes the pooled width is not supported."
        self.flatten = nn.Flatten(1) if global_pool else nn.Identity()  # no flatten without pooling
        self.head = NormLinear(self.head_hidden_size, cfg.num_classes, **dd) if cfg.num_classes > 0 else nn.Identity()

    @torch.jit.ignore
    def no_weight_decay(self) -> Set:
        return set()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        """Parameter groups for layer-wise LR decay: stem, then per stage (or per downsample / block)."""
        return dict(
            stem=r"^patch_embed",
            blocks=r"^stages\.(\d+)" if coarse else [
                (r"^stages\.(\d+).downsample", (0,)),
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        for s in self.stages:
            s.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.l if isinstance(self.head, NormLinear) else self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        """New head for `num_classes` (0: none), on the model's device / dtype; keeps the pooling if None."""
        param = next(self.parameters())
        dd = {"device": param.device, "dtype": param.dtype}
        self.num_classes = num_classes
        self.cfg = self.cfg.replace(num_classes=num_classes)
        if global_pool is None:
            global_pool = self.global_pool.pool_type
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool)
        assert self.global_pool.feat_mult() == 1, "Pooling that changes the pooled width is not supported."
        self.global_pool.train(self.training)
        self.flatten = nn.Flatten(1) if global_pool else nn.Identity()
        self.flatten.train(self.training)
        self.head = NormLinear(self.head_hidden_size, num_classes, **dd) if num_classes > 0 else nn.Identity()
        self.head.train(self.training)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Forward features, also returning stage outputs.

        Args:
            x: input images.
            indices: last n stages if int, all if None, else the stage indices to take.
            norm: unused (no final norm), kept for timm's API.
            stop_early: stop after the last stage taken.
            output_fmt: only 'NCHW'.
            intermediates_only: return the intermediates alone.
        """
        assert output_fmt in ("NCHW",), "Output shape must be NCHW."
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.stages), indices)

        x = self.patch_embed(x)
        if torch.jit.is_scripting() or not stop_early:  # can't slice stages in torchscript
            stages = self.stages
        else:
            stages = self.stages[:max_index + 1]

        for feat_idx, stage in enumerate(stages):
            x = stage(x)
            if feat_idx in take_indices:
                intermediates.append(x)

        if intermediates_only:
            return intermediates

        return x, intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ):
        """Drop the stages after the last one `indices` takes; the head goes with them (or if `prune_head`).

        `cfg` keeps describing the architecture the model was built with.
        """
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        prune_end = max_index < len(self.stages) - 1
        self.stages = self.stages[:max_index + 1]
        if prune_end:  # features now end at the last stage kept, the head was sized for the final ones
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            self.reset_classifier(0, "")
        return take_indices

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
