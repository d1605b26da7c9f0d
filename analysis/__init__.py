"""The measurement library of the SHViT analysis lab (see README.md)."""
import warnings

# Noise from dependencies, shown in every notebook otherwise: huggingface_hub (imported by timm)
# imports tqdm.auto, which warns in Jupyter without ipywidgets (our progress bars are plain stderr
# tqdm); and a dependency decorates functions with torch.jit.script, which torch now marks deprecated.
warnings.filterwarnings("ignore", message="IProgress not found")
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)
