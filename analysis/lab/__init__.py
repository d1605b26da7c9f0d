"""The training lab: offline cluttered digits, training (one process or DDP), the micro suite's
recipes, cache and experiment tables, class-activation maps (Grad-CAM, Grad-CAM++, rollout) and
localisation, the paper's single-head design comparison, and their figures.
CLIs: `python -m analysis.train`, `python -m analysis.ablations`, `python -m analysis.gradcam`."""
from .._lazy import attach_stub

__getattr__, __dir__, __all__ = attach_stub(__name__)
