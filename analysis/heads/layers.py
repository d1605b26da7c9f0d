"""The attention layers of a model: every module an attention family reads, its heads and their layout,
and the base of the hooks that rewrite the per-head slices of the output projection's input."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch.nn as nn

from ..core.errors import UserError, not_a_command
from ..core.stages import StageMap, stage_map
from .families import _REFUSED, FamilyLike, _ancestors, _family_of, _precedence

__all__ = ["AttentionLayer", "ProjectionInputHooks", "attention_layers", "UnsupportedModelError"]


class UnsupportedModelError(UserError):
    """The model has no attention layer of a family this module knows."""


@dataclass
class AttentionLayer:
    """One attention module and how its heads are laid out.

    `index` is the layer's position in `attention_layers` (from 0, a Python index); `stage` counts from 1,
    from the model's stage map (`core.stages`, which cost and latency read too: its stage1 is 1; a model
    without stages is all stage 1),
    and tables give the layer as `layer_index` = index + 1: every number a user reads counts from 1.
    `family` is the key of the family that reads it. Head `h`'s output occupies channels
    `[h * head_dim, (h + 1) * head_dim)` of the input of `proj` along `channel_dim` (-1: tokens-last
    [B, N, C]; 1: channels-first [B, C, H, W]); nulling that slice removes the head (see `analysis.head_ablation`).
    """

    name: str
    index: int
    stage: int
    family: str
    module: nn.Module
    num_heads: int
    proj: nn.Module
    channel_dim: int
    head_dim: int
    unsliced_heads: str = ""  # the family's reason why heads have no such slice: maps read, ablation refused


class ProjectionInputHooks:
    """Base of the context managers that rewrite the input of some layers' output projection, where each
    head has its slice (`HeadMask` zeroes heads, `HeadGates` scales them): a subclass fills `self._plan`
    with (layer, argument) pairs and defines `_hook(layer, argument)`; leaving the context removes the hooks."""

    _plan: list

    def __enter__(self):
        for layer, _ in self._plan:
            if layer.unsliced_heads:
                raise UserError(f"{layer.name} ({layer.family}): {layer.unsliced_heads}, so its heads cannot be "
                                "nulled or scaled one by one")
        self._handles = [layer.proj.register_forward_pre_hook(self._hook(layer, arg)) for layer, arg in self._plan]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    @staticmethod
    def _hook(layer: AttentionLayer, arg):
        raise NotImplementedError


def _stage_number(stages: StageMap, name: str) -> int:
    """The stage of module `name` as a number: stage1..N are 1..N, the stem 0, the head N + 1."""
    stage = stages.stage_of(name)
    return stages.names.index(stage) if stage is not None else 1


def _refuse(model: nn.Module, name: str, m: nn.Module) -> None:
    """`UnsupportedModelError` if `m` is of a refused type (`families._REFUSED`), saying why."""
    for cls, reason in _REFUSED.items():
        if isinstance(m, cls):
            raise UnsupportedModelError(f"{type(model).__name__}: {name} ({cls.__name__}) {reason}, so it has "
                                        "no head attention maps to analyse")


def attention_layers(model: nn.Module, families: Iterable[FamilyLike] = ()) -> list[AttentionLayer]:
    """Every attention module of `model` that a family reads, in module order.

    `families` (instances or subclasses of `AttentionFamily`) are read for this call only, before the
    registered ones; the registry is untouched. Raises `UnsupportedModelError` (a `UserError`) naming
    the supported families when there is none, or saying why for a module whose attention is no
    softmax map over tokens (`families._REFUSED`: linear or cross-covariance attention).
    """
    lookup, layers, stages = _precedence(families), [], None
    modules = dict(model.named_modules())
    for name, m in modules.items():
        fam = _family_of(m, lookup, _ancestors(modules, name))
        if fam is None:
            _refuse(model, name, m)
            continue
        stages = stages or stage_map(model)   # the one stage map cost and latency use too
        proj, channel_dim, head_dim = fam.layout(m)
        layers.append(AttentionLayer(name=name, index=len(layers), stage=_stage_number(stages, name),
                                     family=fam.key, module=m, num_heads=fam.num_heads(m),
                                     proj=proj, channel_dim=channel_dim, head_dim=head_dim,
                                     unsliced_heads=fam.unsliced_heads))
    if not layers:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no supported attention layer; supported families: "
            + "; ".join(f.name for f in reversed(lookup)))
    return layers


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
