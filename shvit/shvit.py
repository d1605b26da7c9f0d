"""The timm registration of the named variants as `shvitlab_*`, from a module named `shvit` as timm's own
model modules are: timm files a model under its module's name, so `timm.list_models(module="shvit")` and
the module filters of timm's `tests/test_models.py` (e.g. its feature tests) pick these up beside timm's
own `shvit_s1..s4`, which are left untouched."""
from __future__ import annotations

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from .model import SHViTNet
from .variants import PREFIX, VARIANTS, Variant

__all__: list[str] = []   # importing the module is what it is for


def _pretrained_cfg(v: Variant) -> dict:
    side = v.cfg.img_size
    pool = v.cfg.stage_resolutions(side)[-1]
    return {
        "url": "", "num_classes": 1000, "input_size": (3, side, side), "pool_size": (pool, pool),
        "crop_pct": 0.875, "interpolation": "bicubic",
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.0.c", "classifier": "head.l",
        "paper_ids": "arXiv:2401.16456", "description": v.description,
    }


default_cfgs = generate_default_cfgs({PREFIX + k: _pretrained_cfg(v) for k, v in VARIANTS.items()})


def _register(key: str, variant: Variant):
    name = PREFIX + key

    def factory(pretrained: bool = False, **kwargs) -> SHViTNet:
        return build_model_with_cfg(
            SHViTNet, name, pretrained, cfg=variant.cfg,
            feature_cfg=dict(out_indices=tuple(range(variant.cfg.num_stages)), flatten_sequential=True),
            **kwargs)

    factory.__name__ = name
    factory.__qualname__ = name
    factory.__module__ = __name__
    factory.__doc__ = variant.description
    register_model(factory)


for _key, _variant in VARIANTS.items():
    _register(_key, _variant)
