"""Head analysis: per-head attention maps of any supported family, head similarity, head ablation,
query-pixel maps and attention rollout of one image, and their figures."""
from .._lazy import lazy_exports

EXPORTS = {
    ".attention": ("AttentionCapture", "AttentionMaps", "AttentionLayer", "ProjectionInputHooks", "attention_layers",
                   "AttentionFamily", "register_attention_family", "supported_families", "UnsupportedModelError"),
    ".metrics": ("HeadStatistics", "METRICS", "PAIRWISE_METRICS", "pairwise_cosine", "linear_cka"),
    ".similarity": ("head_similarity", "similarity_per_image", "model_head_similarity", "head_similarity_table", "similarity_summary",
                    "COLUMNS",
                    "PAPER_METRICS", "AMP_DTYPES"),
    ".importance": ("HeadGates", "head_importance", "IMPORTANCE_METRICS"),
    ".ablation": ("HeadMask", "evaluate_top1", "head_ablation", "best_heads", "extreme_heads"),
    ".maps": ("select_layer", "query_attention", "QueryMaps", "attention_rollout", "Rollout"),
    ".plots": ("plot_head_similarity", "plot_head_redundancy", "plot_head_query_maps", "plot_family_similarity",
               "plot_attention_overlay"),
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
