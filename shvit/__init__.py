"""SHViT as a configurable design space (Yun & Ro, CVPR 2024, arXiv 2401.16456).

Importing this package registers the named variants with timm as `shvitlab_*`:

    >>> import shvit, timm
    >>> model = timm.create_model("shvitlab_s1")            # paper SHViT-S1
    >>> model = shvit.create("fig2_a", num_classes=10)       # Fig. 2 (a), 4x4 stem + 4 stages
    >>> model = shvit.SHViTNet(shvit.SHViTConfig(stem_stride=8, mixers=("conv", "mhsa", "mhsa")))
"""
from .config import MIXERS, STEM_STRIDES, SHViTConfig
from .model import SHViTNet
from .variants import PREFIX, VARIANTS, get_config
from . import shvit as _registration  # noqa: F401  (registers shvitlab_* with timm)
from .weights import CheckpointError, convert_official_state_dict, load_checkpoint, read_state_dict

__all__ = ["SHViTConfig", "SHViTNet", "MIXERS", "STEM_STRIDES", "VARIANTS", "PREFIX", "get_config", "create",
           "CheckpointError", "convert_official_state_dict", "load_checkpoint", "read_state_dict"]


def create(name: str, **overrides) -> SHViTNet:
    """Build a named variant ('s1' or 'shvitlab_s1'), with config fields overridden."""
    return SHViTNet(get_config(name), **overrides)
