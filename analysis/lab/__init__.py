"""The training lab: offline cluttered digits, training (one process or DDP), the micro suite's
recipes, cache and experiment tables, class-activation maps (Grad-CAM, Grad-CAM++, rollout) and
localisation, the paper's single-head design comparison, and their figures.
CLIs: `python -m analysis.train`, `python -m analysis.ablations`, `python -m analysis.gradcam`."""
from .._lazy import lazy_exports

EXPORTS = {
    ".datasets": ("DigitsConfig", "ClutteredDigits", "render_example", "export_image_folder", "image_folder_datasets",
                  "DIGITS_NAME", "NUM_CLASSES"),
    ".train": ("TrainConfig", "fit", "evaluate", "build_model", "build_datasets", "load_checkpoint", "resize_inputs",
               "CHECKPOINT_FORMAT"),
    ".recipes": ("MicroRecipe", "RECIPES", "MESO_RECIPES", "MESO_DATA", "MESO_GRADCAM_KEYS", "MESO_GRADCAM_LAYERS",
                 "recipe", "SEEDED_KEYS", "SEEDS", "DATA", "TRAIN", "MACRO_ROWS", "STEM_ROWS", "TABLE6_ROWS",
                 "FIG6_ROWS", "GRADCAM_KEYS", "CACHE_FORMAT", "MESO_SEEDS", "MESO_FAMILIES", "STEM16", "STEM4",
                 "resolve"),
    ".cache": ("checkpoint_path", "table_path", "micro_datasets", "load_or_train", "train_suite", "cached_table",
               "COMPRESSED_TABLES", "train_all", "forward_macs"),
    ".gradcam": ("GradCAM", "GradCAMPlusPlus", "RolloutCAM", "CAM_METHODS", "last_stage", "cam_target",
                 "pointing_game", "localisation", "localisation_images"),
    ".experiments": ("macro_table", "single_head_table", "heads_table", "importance_table", "importance_agreement",
                     "gradcam_table", "predictions_table", "head_similarity_images_table", "ablation_images_table",
                     "ablation_heads_images_table", "gradcam_images_table", "REPLICATE_TABLES", "head_query_maps",
                     "gradcam_examples", "cam_layer", "TABLES", "CAM_MIN_SIDE"),
    ".replicates": ("correct_matrix", "top1_intervals", "top1_difference", "similarity_array", "removed_correct",
                    "removed_all_heads", "crossfit_remove_one", "head_bands"),
    ".single_head_designs": ("TABLE6_MODELS", "FIG6_MODELS", "paper_designs", "throughput_rounds", "speed_table",
                             "accuracy_table", "relative_speed", "speed_sentences", "draw_speed_intervals"),
    ".plots": ("plot_single_head_designs", "plot_gradcam_stem", "plot_cam_overlay", "plot_frontier"),
    ".frontier": ("sweep_latency", "training_curves", "interpolate", "matched_accuracy", "frontier_table",
                  "LATENCY_BATCH"),
    ".tuning": ("LR_FACTORS", "SEARCH_SEED", "SEARCH_EPOCH_SHARE", "AUGMENT_DESIGNS", "design_bases",
                "search_recipes", "search_table", "choose", "tuned_recipes", "suite_recipes"),
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
