"""Infrastructure every analysis shares: model creation, errors, files and tables, paths, images,
intervals (seeds as a random effect, paired timing rounds), the papers' reference numbers, figure style, notebook plumbing (`core.notebook`)."""
from .._lazy import attach_stub

__getattr__, __dir__, __all__ = attach_stub(__name__)
