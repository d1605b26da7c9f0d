"""Stage maps: which module of a model belongs to its stem, stage 1..n or head.

    >>> smap = stage_map(timm.create_model("shvit_s1"))
    >>> smap.names
    ('stem', 'stage1', 'stage2', 'stage3', 'head')
    >>> smap.stage_of("stages.1.blocks.0.mixer")
    'stage2'

Known families: timm ViT / DeiT (isotropic: stem, one stage `blocks`, head), Swin,
LeViT, EfficientViT-M (`efficientvit_msra`), timm SHViT and every `shvit` config
(`SHViTNet`). Any other timm model with `feature_info` gets a generic map (its
feature modules are the stages; the top-level children before them are the stem,
those after them the head).

Modules outside every stage (e.g. ViT's position-embedding add, which runs in the
root module) belong to the stage that ran just before them, or to the stem when
nothing ran before; `CostAnalysis` and `stage_latency` both apply that rule, so
stage sums are always the whole model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch.nn as nn

from .errors import UserError, not_a_command

__all__ = ["StageMap", "stage_map"]


@dataclass(frozen=True)
class StageMap:
    """Ordered stages, each a tuple of module names (prefixes of the model's qualified names).

    `layout` says how 4-D features are laid out ("NCHW", or "NHWC" for Swin), so that
    output tokens and channels can be read from a tensor's shape.
    """

    stages: Tuple[Tuple[str, Tuple[str, ...]], ...]
    layout: str = "NCHW"

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(name for name, _ in self.stages)

    def modules(self, stage: str) -> Tuple[str, ...]:
        return dict(self.stages)[stage]

    def stage_of(self, module_name: str) -> Optional[str]:
        """Stage of a module (or parameter) name; None for modules outside every stage (the root)."""
        for stage, prefixes in self.stages:
            for p in prefixes:
                if module_name == p or module_name.startswith(p + "."):
                    return stage
        return None

    def tokens_channels(self, shape: Sequence[int]) -> Tuple[int, int]:
        """(tokens, channels) of a feature tensor of `shape` (batch first)."""
        shape = tuple(shape)
        if len(shape) == 4:
            if self.layout == "NHWC":
                return shape[1] * shape[2], shape[3]
            return shape[2] * shape[3], shape[1]
        if len(shape) == 3:
            return shape[1], shape[2]
        if len(shape) == 2:
            return 1, shape[1]
        return 1, (shape[-1] if shape else 1)


def _hierarchical(model: nn.Module, stem: Sequence[str], container: str, head: Sequence[str],
                  layout: str = "NCHW") -> StageMap:
    children = dict(model.named_children())
    n = len(children[container])
    present = lambda names: tuple(m for m in names if m in children)  # noqa: E731
    stages = [("stem", present(stem))]
    stages += [(f"stage{i + 1}", (f"{container}.{i}",)) for i in range(n)]
    stages.append(("head", present(head)))
    return StageMap(tuple(stages), layout)


def _from_feature_info(model: nn.Module) -> StageMap:
    """Generic map: feature modules are the stages; earlier / later top-level children stem / head.

    Leading feature taps that are leaf modules (ResNet's `act1`) belong to the stem.
    """
    info = getattr(model, "feature_info", None)
    if not info:
        return StageMap((("stem", ()), ("stage1", tuple(n for n, _ in model.named_children())), ("head", ())))
    feats = [f["module"] for f in (info.get_dicts() if hasattr(info, "get_dicts") else info)]
    modules = dict(model.named_modules())
    if any(f not in modules for f in feats):
        feats = _renamed_taps(model, feats, modules)
    while len(feats) > 1 and not list(modules[feats[0]].children()):
        feats.pop(0)  # a stem tap (ResNet's `act1` at stride 2) is not a stage
    tops = [n for n, _ in model.named_children()]
    feat_tops = {f.split(".")[0] for f in feats}
    first = min(tops.index(t) for t in feat_tops)
    last = max(tops.index(t) for t in feat_tops)
    stages = [("stem", tuple(t for t in tops[:first] if t not in feat_tops))]
    stages += [(f"stage{i + 1}", (f,)) for i, f in enumerate(feats)]
    stages.append(("head", tuple(tops[last + 1:])))
    return StageMap(tuple(stages))


def _renamed_taps(model: nn.Module, feats: list, modules: dict) -> list:
    """Feature taps whose names the model does not have (timm's MViTv2 says `block.N` for `stages.N`): the
    children of the one top-level container with as many children, else a UserError."""
    containers = [n for n, m in model.named_children()
                  if isinstance(m, (nn.Sequential, nn.ModuleList)) and len(m) == len(feats)]
    if len(containers) != 1:
        missing = next(f for f in feats if f not in modules)
        raise UserError(f"{type(model).__name__}'s feature_info names {missing!r}, which it does not have, and no "
                        "single top-level container has one child per feature: give CostAnalysis a StageMap")
    return [f"{containers[0]}.{i}" for i in range(len(feats))]


def stage_map(model: nn.Module) -> StageMap:
    """The stage map of `model` (see the module docstring for the known families)."""
    cls = type(model).__name__
    if cls.startswith("VisionTransformer"):
        children = dict(model.named_children())
        present = lambda names: tuple(m for m in names if m in children)  # noqa: E731
        return StageMap((("stem", present(("patch_embed", "pos_drop", "patch_drop", "norm_pre"))),
                         ("stage1", ("blocks",)),
                         ("head", present(("norm", "fc_norm", "attn_pool", "head_drop", "head", "head_dist")))))
    if cls == "SwinTransformer":
        return _hierarchical(model, ("patch_embed", "absolute_pos_embed", "pos_drop"), "layers",
                             ("norm", "head"), layout="NHWC")
    if cls in ("Levit", "LevitDistilled"):
        return _hierarchical(model, ("stem",), "stages", ("head", "head_dist"))
    if cls in ("EfficientVitMsra", "SHViT", "SHViTNet"):
        return _hierarchical(model, ("patch_embed",), "stages", ("global_pool", "flatten", "head"))
    return _from_feature_info(model)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
