"""`python -m analysis.gradcam`: a class-activation map of your own image (Grad-CAM, Grad-CAM++, or
attention rollout) for a timm / shvitlab model, at the model's input resolution
(library: `analysis.lab.gradcam`); a figure (PNG + PDF) and the map as a tidy CSV."""
from __future__ import annotations

import sys

from ._cli import (ArgumentParser, add_device_arg, add_overwrite_arg, add_resample_arg, add_seed_arg, add_threads_arg,
                   command, model_on_image, non_negative_int, output_stem, write_figure_and_table, MODEL_HELP)
from .core.names import CAM_METHODS as METHODS


EPILOG = """examples:
  # Grad-CAM of DeiT-T's predicted class (read at the last block's input: the class token's last attention)
  python -m analysis.gradcam --model deit_tiny_patch16_224 --weights pretrained --image cat.jpg --out cat_cam
  # Grad-CAM++ of ImageNet class 281 (tabby) on SHViT-S1's last stage, your checkpoint
  python -m analysis.gradcam --model shvit_s1 --weights ckpt/shvit_s1.pth --image cat.jpg --target 281 \\
      --method gradcam++ --out cat_campp
  # attention rollout (isotropic ViT/DeiT models; not class-specific)
  python -m analysis.gradcam --model deit_tiny_patch16_224 --weights pretrained --image cat.jpg \\
      --method rollout --out cat_rollout
writes STEM.png, STEM.pdf and STEM.csv (row, col, value per input pixel)
"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m analysis.gradcam", epilog=EPILOG,
                       description="Class-activation map of your image: Grad-CAM (captum), Grad-CAM++ or attention "
                                   "rollout, at the model's input resolution.")
    p.add_argument("--model", required=True, metavar="NAME", help=MODEL_HELP)
    p.add_argument("--weights", default="random", metavar="random|pretrained|PATH",
                   help="PATH: a local checkpoint (timm state dict, {'model': sd}, safetensors)")
    p.add_argument("--image", required=True, metavar="PATH",
                   help="your image; the model sees it scaled and centre-cropped to its input size, as timm's eval "
                        "transform does (the map and the figure are on that view)")
    p.add_argument("--target", type=non_negative_int, metavar="CLASS",
                   help="class index to explain (default: the model's prediction); not with rollout")
    p.add_argument("--method", choices=METHODS, default="gradcam",
                   help="gradcam: Grad-CAM (captum LayerGradCam) on the last stage; gradcam++: Chattopadhay et al. "
                        "2018; rollout: attention rollout (isotropic ViT/DeiT) (default: gradcam)")
    p.add_argument("--layer", metavar="NAME",
                   help="the module the CAM reads, a name from model.named_modules() (default: the last stage of "
                        "timm's feature_info; a model without one, e.g. your own, needs it); not with rollout")
    add_device_arg(p)
    add_threads_arg(p)
    add_seed_arg(p, "seed for the random weights")
    p.add_argument("--out", required=True, metavar="STEM", type=output_stem,
                   help="writes STEM.png, STEM.pdf (the figure) and STEM.csv (the map)")
    add_overwrite_arg(p)
    add_resample_arg(p)
    return p


def run(args) -> int:
    from pathlib import Path

    import pandas as pd
    import torch

    from .core.errors import UserError
    from .core.models import describe_weights
    from .core.plotting import provenance
    from .lab.gradcam import CAM_METHODS
    from .lab.plots import plot_cam_overlay

    if args.method == "rollout" and args.target is not None:
        raise UserError("--target does not apply to --method rollout: attention rollout is not class-specific")
    if args.method == "rollout" and args.layer is not None:
        raise UserError("--layer does not apply to --method rollout: attention rollout reads every attention layer")
    model, view, x = model_on_image(args)
    layer = _cam_layer(model, args)
    with torch.no_grad():
        probs = model(x).float().softmax(-1)[0].cpu()
    if args.target is not None and args.target >= len(probs):
        raise UserError(f"--target {args.target} is out of range: {args.model} has {len(probs)} classes "
                        f"(0..{len(probs) - 1})")
    pred = int(probs.argmax())
    cam = CAM_METHODS[args.method](model) if args.method == "rollout" else CAM_METHODS[args.method](model, layer)
    target = None if args.method == "rollout" else torch.tensor([pred if args.target is None else args.target])
    values = cam.attribute(x, target=target)[0].cpu()
    h, w = values.shape
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    table = pd.DataFrame({"row": rows.flatten().numpy(), "col": cols.flatten().numpy(),
                          "value": values.flatten().numpy()})
    explained = "class-agnostic" if target is None else f"class {_class_name(int(target), len(probs))}"
    fig = plot_cam_overlay(view.pixels, values, title=f"{args.model}: {args.method}, {explained}",
                           cbar_label=f"{args.method} (a.u.)")
    provenance(fig, scale="full", weights=describe_weights(args.weights),
               extra=f"{args.model} | image {Path(args.image).name} | {args.method} on {cam.layer_name} | {explained}")
    write_figure_and_table(fig, table, args.out)
    r, c = divmod(int(values.argmax()), w)
    print(f"predicted class {_class_name(pred, len(probs))} (p = {float(probs[pred]):.4f})"
          + (f", target class {_class_name(int(target), len(probs))} (p = {float(probs[int(target)]):.4f})"
             if target is not None else ""))
    print(f"{args.method} on {cam.layer_name}: {h}x{w} map, argmax at row {r}, col {c} "
          f"(value {float(values.max()):.4g})")
    return 0


def _cam_layer(model, args):
    """The module `--layer` names, None for the default (`lab.gradcam.cam_target`), or a UserError that says
    which modules there are where the model has no `feature_info` to choose from."""
    from .core.errors import UserError

    top = ", ".join(name for name, _ in model.named_children())
    if args.layer is not None:
        try:
            return model.get_submodule(args.layer)
        except AttributeError:
            raise UserError(f"--layer {args.layer}: {args.model} has no such module; its top-level modules: "
                            f"{top}") from None
    if args.method != "rollout" and not getattr(model, "feature_info", None):
        raise UserError(f"{args.model} has no feature_info (timm's list of feature stages): name the layer the CAM "
                        f"reads with --layer NAME; its top-level modules: {top}")
    return None


def _class_name(index: int, num_classes: int) -> str:
    """`988 (acorn)` for a 1,000-class model (ImageNet's names, from timm's offline table), else `988`."""
    if num_classes != 1000:
        return str(index)
    from timm.data import ImageNetInfo

    return f"{index} ({ImageNetInfo().index_to_description(index).split(',')[0]})"


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
