"""Cost and speed: macs and memory traffic per op / module / stage, op rules, stage latency,
runtime breakdown, the roofline, throughput, the macro-design and variant tables, and their figures.
CLI: `python -m analysis.cost`."""
from .._lazy import lazy_exports

EXPORTS = {
    ".counter": ("CostAnalysis", "OpRecord"),
    ".op_rules": ("register_macs", "classify", "op_macs", "op_mem_bytes", "is_free", "sdpa_macs", "sdpa_mem_bytes",
                  "NO_ARITHMETIC_OPS", "ZERO_MAC_OPS", "SDPA_KERNELS", "COUNTED", "NO_ARITHMETIC",
                  "ZERO_BY_CONVENTION", "UNSUPPORTED"),
    ".model_cost": ("analyse", "report", "cost_text"),
    ".stages": ("StageMap", "stage_map"),
    ".latency": ("stage_latency", "model_latency", "interleaved_rounds"),
    ".breakdown": ("CATEGORIES", "MEMORY_BOUND", "PAPER_MODELS", "categorize", "runtime_breakdown", "breakdown_table",
                   "memory_bound_shares"),
    ".throughput": ("RUNTIMES", "DEFAULT_BATCH", "ONNX_MISSING", "measure_throughput", "cuda_graph_forward",
                    "model_throughput", "time_passes", "table2_comparison", "rank_agreement"),
    ".roofline": ("Machine", "measure_machine", "fit_overhead", "Roofline", "model_roofline", "measure_stage_latency",
                  "roofline_stages", "validate_roofline", "roofline_summary", "ROOFLINE_MODELS"),
    ".macro_design": ("FIG2_MODELS", "stage_costs", "macro_design_table"),
    ".variant_table": ("shvit_variant_table", "efficientvit_variant_table"),
    ".plots": ("plot_breakdown", "plot_runtime_and_traffic", "plot_variants", "plot_speed_accuracy",
               "plot_macro_design", "plot_roofline"),
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
