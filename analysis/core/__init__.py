"""Infrastructure every analysis shares: model creation, errors, files and tables, paths, images,
the papers' reference numbers, figure style, notebook plumbing (`core.notebook`)."""
from .._lazy import lazy_exports

EXPORTS = {
    ".errors": ("UserError", "LaunchError", "launch_environment", "FOLDER_VARIABLES", "Terminated", "is_user_error",
                "exit_on_user_error", "wait_for_rank_0", "not_a_command", "ranks_may_diverge",
                "interrupted_by", "recording_interrupts"),
    ".files": ("check_writable", "check_distinct", "check_inputs_kept", "check_sidecar", "atomic_path",
               "write_atomic", "write_set", "write_json", "OutputClaims", "OUTPUT_CLAIMS", "MANIFEST",
               "sweep_stale_temporaries", "exclusive_folder"),
    ".tables": ("write_csv", "csv_writer", "read_csv", "table_differences", "human_count", "human_bytes",
                "FLOAT_FORMAT", "RTOL", "ATOL"),
    ".paths": ("ENV_PROJECT_ROOT", "ENV_OUTPUT_ROOT", "project_root", "output_root", "micro_root", "meso_root"),
    ".models": ("create_model", "create_model_at", "fuse_model", "check_model_name", "suggest_model_names",
                "describe_weights", "input_size", "hub_reachable"),
    ".distributed": ("World",),
    ".runtime": ("resolve_device", "set_threads", "cpu_threads", "cpu_name", "attention_backend"),
    ".names": ("COMMANDS", "HEAD_METRICS", "PAPER_METRICS", "AMP_CHOICES", "ABLATION_MODES", "CAM_METHODS",
               "ATTENTION_BACKENDS", "RUNTIMES", "PAPER_MODELS", "ROOFLINE_MODELS", "SUITE_TABLES", "DIGITS_NAME"),
    ".images": ("ImageFolderSource", "SampleImages", "Batches", "model_transform", "to_rgb", "IMAGE_EXTENSIONS",
                "load_image", "view_image", "ImageView"),
    ".reference": ("load_reference", "REFERENCE_TABLES"),
    ".plotting": ("use_style", "provenance", "save_figure", "figure_writers", "PAPER_COLOR", "OURS_COLOR"),
    ".memory": ("MemoryEstimate", "estimate_memory", "available_bytes", "check_memory"),
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
