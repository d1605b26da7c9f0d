"""Every list of names the command line offers, defined once and imported by both the CLIs (`--help`,
`choices`) and the library modules that implement them. Torch-free, so `--help` stays instant."""
__all__ = ["COMMANDS", "HEAD_METRICS", "PAPER_METRICS", "AMP_CHOICES", "ABLATION_MODES", "CAM_METHODS",
           "ATTENTION_BACKENDS", "RUNTIMES", "PAPER_MODELS", "ROOFLINE_MODELS", "SUITE_TABLES", "DIGITS_NAME"]

COMMANDS = ("head_similarity", "head_ablation", "attention_maps", "gradcam", "cost", "breakdown", "roofline",
            "throughput", "train", "ablations", "make_figures")
HEAD_METRICS = ("mean_pairwise_cosine", "mean_max_cosine", "linear_cka", "attention_entropy", "mean_attention_distance")
PAPER_METRICS = ("mean_pairwise_cosine", "mean_max_cosine")  # SHViT Fig. 3/4, EfficientViT Fig. 4
AMP_CHOICES = ("none", "fp16", "bf16")
ABLATION_MODES = ("remove1", "leave1")
CAM_METHODS = ("gradcam", "gradcam++", "rollout")
ATTENTION_BACKENDS = ("auto", "math", "flash", "efficient", "cudnn")
RUNTIMES = ("cpu", "cuda", "onnx")
PAPER_MODELS = ("deit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "efficientvit_m4", "shvit_s4")
ROOFLINE_MODELS = PAPER_MODELS + ("shvitlab_fig2_a", "shvitlab_fig2_b")
SUITE_TABLES = ("gradcam", "heads", "macro", "single_head")  # the micro suite's tables (`ablations --table`)
DIGITS_NAME = "cluttered-digits"


if __name__ == "__main__":  # a library module, not a command
    from .errors import not_a_command
    raise SystemExit(not_a_command(__spec__.name))
