"""Evidence: power, verdict rules registered before the numbers (`registry.toml`), and the claim scorecard of the two papers
(`results/claims.csv`)."""
from .._lazy import attach_stub

__getattr__, __dir__, __all__ = attach_stub(__name__)
