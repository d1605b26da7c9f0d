"""Evidence: intervals (seeds as a random effect, paired timing rounds), power, verdict rules
registered before the numbers (`registry.toml`), and the claim scorecard of the two papers
(`results/claims.csv`)."""
from .._lazy import lazy_exports

EXPORTS = {
    ".intervals": ("Estimate", "seeded", "bootstrap", "exact", "t_interval", "log_ratio_interval",
                   "proportion_difference", "LEVEL", "random_effect", "cluster_indices"),
    ".power": ("detectable_effect", "replicates_needed", "POWER", "MAX_REPLICATES"),
    ".verdicts": ("Direction", "Equivalence", "rule_from_spec", "verdict", "VERDICTS", "DECIDED"),
    ".provenance": ("POST_HOC", "UNCOMMITTED", "UNKNOWN", "git", "measured_commit", "is_prospective", "file_at"),
    ".plots": ("plot_scorecard", "VERDICT_COLOURS"),
    ".claims": ("Claim", "CLAIMS", "REGISTRY", "MEASURES", "load_registry", "scorecard", "check_preconditions",
                "attention_grid", "fig2_speed_rounds", "memory_bound_rounds", "SCORECARD_COLUMNS", "FIG2_SPEED_TABLE",
                "MEMORY_BOUND_TABLE", "EFFICIENTVIT_SIZES_TABLE", "MULTI_HEAD_MODELS", "TIMING_ROUNDS"),
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
