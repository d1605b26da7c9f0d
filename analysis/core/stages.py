"""Stage maps: which module of a model belongs to its stem, stage 1..n or head; one source for cost,
latency and the head tables.

    >>> smap = stage_map(timm.create_model("shvit_s1"))
    >>> smap.names
    ('stem', 'stage1', 'stage2', 'stage3', 'head')
    >>> smap.stage_of("stages.1.blocks.0.mixer")
    'stage2'

Where a map comes from, first match wins:

1. a registered map (`register_stage_map(model_class_or_predicate, fn)`; later registrations first). Built in:
   timm ViT / DeiT (isotropic: stem, one stage `blocks`, head), Swin, LeViT, EfficientViT-M
   (`efficientvit_msra`), timm SHViT and every `shvit` config (`SHViTNet`);
2. timm's `feature_info`: its feature modules are the stages, the top-level children before them the
   stem, those after them the head;
3. neither: one row per block, `block1..N`, the children of the model's largest `nn.Sequential` /
   `nn.ModuleList` (or its top-level children), with a one-line warning on stderr. Never a silent single
   stage holding everything.

Modules outside every stage (e.g. ViT's position-embedding add, which runs in the root module) belong to
the stage that ran just before them, or to the stem when nothing ran before; `CostAnalysis` and
`stage_latency` both apply that rule, so stage sums are always the whole model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple, Union

import torch.nn as nn

from .errors import UserError, not_a_command, note

__all__ = ["StageMap", "stage_map", "register_stage_map", "unregister_stage_map"]


@dataclass(frozen=True)
class StageMap:
    """Ordered stages, each a tuple of module names (prefixes of the model's qualified names).

    `layout` says how 4-D features are laid out ("NCHW", or "NHWC" for Swin), so that
    output tokens and channels can be read from a tensor's shape.
    """

    stages: Tuple[Tuple[str, Tuple[str, ...]], ...]
    layout: str = "NCHW"

    @classmethod
    def of_container(cls, model: nn.Module, container: str, stem: Sequence[str] = (), head: Sequence[str] = (),
                     layout: str = "NCHW") -> "StageMap":
        """stem, one stage per child of the top-level `container` (stage1..n), head; the `stem` and `head`
        names the model lacks are left out."""
        children = dict(model.named_children())
        present = lambda names: tuple(m for m in names if m in children)  # noqa: E731
        stages = [("stem", present(stem))]
        stages += [(f"stage{i + 1}", (f"{container}.{i}",)) for i in range(len(children[container]))]
        stages.append(("head", present(head)))
        return cls(tuple(stages), layout)

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


# ---------------------------------------------------------------------------------------------
# the registry
# ---------------------------------------------------------------------------------------------

MapFn = Callable[[nn.Module], StageMap]
Key = Union[type, Callable[[nn.Module], bool]]
_REGISTRY: dict = {}  # key (a class or a predicate) -> fn(model) -> StageMap; later ones first


def _matches(key: Key, model: nn.Module) -> bool:
    return isinstance(model, key) if isinstance(key, type) else bool(key(model))


def register_stage_map(model_class_or_predicate: Key, fn: Optional[MapFn] = None, *, replace: bool = False):
    """Make `stage_map(model)` return `fn(model)` for models of `model_class_or_predicate` (a class, matched
    with isinstance, or a function `model -> bool`), which is also the map's key. Without `fn`, a decorator.
    A key already registered raises `UserError` unless `replace=True`; a map registered later takes
    precedence (a replaced one counts as registered now). Returns `fn`."""
    if fn is None:
        return lambda f: register_stage_map(model_class_or_predicate, f, replace=replace)
    if not callable(model_class_or_predicate) or not callable(fn):
        raise TypeError(f"expected a class or predicate and a function, got {model_class_or_predicate!r}, {fn!r}")
    key = model_class_or_predicate
    if key in _REGISTRY and not replace:
        raise UserError(f"a stage map is already registered for {getattr(key, '__qualname__', key)}; "
                        "pass replace=True to replace it")
    _REGISTRY.pop(key, None)
    _REGISTRY[key] = fn
    return fn


def unregister_stage_map(model_class_or_predicate: Key) -> MapFn:
    """Remove the stage map registered for `model_class_or_predicate` and return it (`UserError` if none)."""
    if model_class_or_predicate not in _REGISTRY:
        raise UserError(f"no stage map is registered for {model_class_or_predicate!r}")
    return _REGISTRY.pop(model_class_or_predicate)


def _class_named(*names: str, prefix: bool = False) -> Callable[[nn.Module], bool]:
    """A predicate on the model's class name: the built-ins need no import of the model's module."""
    def match(model: nn.Module) -> bool:
        cls = type(model).__name__
        return cls.startswith(names) if prefix else cls in names
    match.__qualname__ = f"class {'prefix ' if prefix else ''}{' / '.join(names)}"
    return match


def _isotropic_vit(model: nn.Module) -> StageMap:
    children = dict(model.named_children())
    present = lambda names: tuple(m for m in names if m in children)  # noqa: E731
    return StageMap((("stem", present(("patch_embed", "pos_drop", "patch_drop", "norm_pre"))),
                     ("stage1", ("blocks",)),
                     ("head", present(("norm", "fc_norm", "attn_pool", "head_drop", "head", "head_dist")))))


register_stage_map(_class_named("VisionTransformer", prefix=True), _isotropic_vit)
register_stage_map(_class_named("SwinTransformer"), lambda m: StageMap.of_container(
    m, "layers", ("patch_embed", "absolute_pos_embed", "pos_drop"), ("norm", "head"), layout="NHWC"))
register_stage_map(_class_named("Levit", "LevitDistilled"),
                   lambda m: StageMap.of_container(m, "stages", ("stem",), ("head", "head_dist")))
register_stage_map(_class_named("EfficientVitMsra", "SHViT", "SHViTNet"),
                   lambda m: StageMap.of_container(m, "stages", ("patch_embed",), ("global_pool", "flatten", "head")))


# ---------------------------------------------------------------------------------------------
# feature_info, then per-block rows
# ---------------------------------------------------------------------------------------------

def _from_feature_info(model: nn.Module, feats: list) -> StageMap:
    """Feature modules are the stages; earlier / later top-level children stem / head. Leading feature taps
    that are leaf modules (ResNet's `act1`) belong to the stem."""
    modules = dict(model.named_modules())
    feats = [f for f in feats if f]  # a tap at the root (TResNet's '') is the model's input, not a stage
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
        raise UserError(f"feature_info names {missing!r}, which the model does not have")
    return [f"{containers[0]}.{i}" for i in range(len(feats))]


def _largest_container(model: nn.Module) -> str:
    """The `nn.Sequential` / `nn.ModuleList` of two or more children holding the most parameters (then the
    most children, then the first), "" (the model itself) when there is none."""
    best, best_key = "", None
    for name, m in model.named_modules():
        if isinstance(m, (nn.Sequential, nn.ModuleList)) and len(m) > 1:
            key = (sum(p.numel() for p in m.parameters()), len(m))
            if best_key is None or key > best_key:
                best, best_key = name, key
    return best


def _per_block(model: nn.Module, reason: str) -> StageMap:
    """One row per child of the largest container (`block1..N`); what runs before it is the stem, after it
    the head, at every level of its path from the root. Says so on stderr in one line."""
    container = _largest_container(model)
    stem, head, prefix, module = [], [], "", model
    for part in container.split(".") if container else ():
        names = [n for n, _ in module.named_children()]
        stem += [prefix + n for n in names[:names.index(part)]]
        head += [prefix + n for n in names[names.index(part) + 1:]]
        prefix, module = prefix + part + ".", getattr(module, part)
    blocks = [prefix + n for n, _ in module.named_children()]
    note(f"warning: {type(model).__name__} has {reason} and no registered stage map (core.stages."
         f"register_stage_map): one row per block, block1..{len(blocks)} = the children of "
         f"{container or 'the model'}")
    return StageMap((("stem", tuple(stem)), *[(f"block{i + 1}", (b,)) for i, b in enumerate(blocks)],
                     ("head", tuple(head))))


def stage_map(model: nn.Module) -> StageMap:
    """The stage map of `model`: a registered one, else timm's `feature_info`, else one row per block with a
    warning (see the module docstring)."""
    for key, fn in reversed(_REGISTRY.items()):
        if _matches(key, model):
            return fn(model)
    info = getattr(model, "feature_info", None)
    if not info:
        return _per_block(model, "no feature_info")
    feats = [f["module"] for f in (info.get_dicts() if hasattr(info, "get_dicts") else info)]
    if not any(feats):
        return _per_block(model, "a feature_info without modules")
    try:
        return _from_feature_info(model, feats)
    except UserError as e:
        return _per_block(model, f"a feature_info it does not match ({e})")


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
