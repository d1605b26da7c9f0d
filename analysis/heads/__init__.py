"""Head analysis: per-head attention maps of any supported family, head similarity, head ablation,
query-pixel maps and attention rollout of one image, and their figures."""
from .._lazy import attach_stub

__getattr__, __dir__, __all__ = attach_stub(__name__)
