"""Evidence: intervals (bootstrap over images and seeds, paired timing rounds), verdict rules fixed
in code before any number is seen, and the claim scorecard of the two papers (`results/claims.csv`)."""
from .._lazy import lazy_exports

EXPORTS = {
    ".intervals": ("Estimate", "bootstrap", "exact", "t_interval", "log_ratio_interval", "proportion_difference"),
    ".verdicts": ("Direction", "Equivalence", "verdict", "VERDICTS"),
    ".plots": ("plot_scorecard", "VERDICT_COLOURS"),
    ".claims": ("Claim", "CLAIMS", "scorecard", "fig2_speed_rounds", "memory_bound_rounds", "SCORECARD_COLUMNS",
                "MIN_GRID", "FIG2_SPEED_TABLE", "MEMORY_BOUND_TABLE", "EFFICIENTVIT_SIZES_TABLE", "MULTI_HEAD_MODELS"),
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
