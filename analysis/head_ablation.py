"""`python -m analysis.head_ablation`: top-1 with each attention head removed ("remove1") or left
alone in its layer ("leave1"), per layer (SHViT Fig. 3), on a labelled image folder, as a tidy
CSV (library: `analysis.heads.ablation`).

The folder has one subfolder per class in the model's class order (ImageNet-val laid out by
WordNet id, sorted, matches timm's ImageNet-1k models). Under `torchrun` each process takes its
share of the images and the counts are summed (the table equals one process's). A killed run
leaves `<out>.partial.json`; the same command continues after the last finished ablation."""
from __future__ import annotations

import sys

from ._cli import (ArgumentParser, add_device_arg, add_overwrite_arg, add_resample_arg, add_seed_arg, command,
                   output_path, positive_int, resample_pos_embed, warn_if_random, MODEL_HELP)
from .core.errors import UserError
from .core.names import ABLATION_MODES as MODES

EPILOG = """examples:
  # DeiT-T on 500 ImageNet-val images, both ablations (12 layers x 3 heads x 2 modes)
  python -m analysis.head_ablation --model deit_tiny_patch16_224 --weights pretrained \\
      --data ~/imagenet/val --num-images 500 --out deit_ablation.csv
  # your checkpoint, remove-one only, two layers
  python -m analysis.head_ablation --model deit_small_patch16_224 --weights ckpt.pth --data val/ \\
      --modes remove1 --layer blocks.0.attn --layer blocks.11.attn --out ablation.csv
  # all of ImageNet-val on 8 GPUs
  torchrun --nproc_per_node=8 -m analysis.head_ablation --model deit_tiny_patch16_224 --weights pretrained \\
      --data ~/imagenet/val --device cuda --batch-size 250 --out deit_ablation.csv
"""


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m analysis.head_ablation", epilog=EPILOG,
                       description="Top-1 change when each attention head is removed / left alone (SHViT Fig. 3).")
    p.add_argument("--model", required=True, metavar="NAME", help=MODEL_HELP)
    p.add_argument("--weights", default="random", metavar="pretrained|random|PATH",
                   help="default random; PATH: a local checkpoint (timm state dict, {'model': sd}, safetensors)")
    p.add_argument("--data", required=True, metavar="DIR", help="labelled image folder: one subfolder per class")
    p.add_argument("--num-images", type=positive_int, default=None, help="images to use (default: all)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--modes", default="remove1,leave1", help="comma-separated subset of remove1,leave1")
    p.add_argument("--layer", action="append", metavar="NAME", help="only these attention layers (repeatable)")
    add_device_arg(p)
    add_seed_arg(p, "image choice/order and random weights")
    p.add_argument("--out", required=True, metavar="CSV", type=output_path, help="tidy results (written atomically)")
    add_overwrite_arg(p)
    add_resample_arg(p)
    return p


def run(args) -> int:
    import timm
    import torch

    from .core.distributed import World
    from .core.files import write_json
    from .core.images import ImageFolderSource
    from .core.memory import check_memory
    from .core.models import create_model, input_size
    from .core.runtime import resolve_device
    from .core.tables import write_csv
    from .heads.ablation import best_heads, head_ablation
    from .heads.layers import attention_layers

    modes = _modes(args)
    out, sidecar, partial = _outputs(args)
    world, device = World.with_device(resolve_device(args.device))
    source = ImageFolderSource(args.data, args.num_images, seed=args.seed)
    if not source.labelled:
        raise UserError(f"{args.data} has no class subfolders: head ablation needs labelled images")
    model = create_model(args.model, args.weights, seed=args.seed,
                         resample_pos_embed=resample_pos_embed(args, args.weights))
    warn_if_random(args.weights)
    check_memory(args.model, (args.batch_size, *input_size(model)), device=device)
    names = {layer.name for layer in attention_layers(model)}
    unknown = sorted(set(args.layer or ()) - names)
    if unknown:
        raise UserError(f"no attention layer {', '.join(unknown)} in {args.model}; its layers: "
                        f"{', '.join(sorted(names)[:6])}{' ...' if len(names) > 6 else ''}")
    batches = list(source.batches(model, args.batch_size, world=world))  # decoded once, reused by every ablation
    identity = {"model": args.model, "weights": args.weights, "data": source.describe(),
                "num_images": args.num_images, "seed": args.seed}
    if args.weights not in ("random", "pretrained"):   # a partial run resumes only on the very same checkpoint
        identity["weights_sha256"] = _sha256(args.weights)
    df = head_ablation(model, batches, device=device, modes=modes, layers=args.layer, progress=True, world=world,
                       partial=partial, identity=identity)
    df.insert(0, "model", args.model)
    per_process = world.gather(sum(len(labels) for _, labels in batches))
    if world.main:
        write_csv(df, out)
        write_json({"command": "analysis.head_ablation", **identity, "modes": modes, "layers": args.layer,
                    "num_images_used": source.num_used, "unreadable_skipped": source.num_skipped,
                    "world_size": world.size, "images_per_process": per_process, "device": str(device),
                    "torch": torch.__version__, "timm": timm.__version__}, sidecar)
        best = best_heads(df)
        print(best[["layer", "mode", "best_head", "best_delta", "baseline_top1", "num_images"]]
              .to_string(index=False))
        print(f"wrote {out}, {sidecar}", file=sys.stderr)
    world.close()
    return 0


def _modes(args) -> list:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - set(MODES) or len(set(modes)) < len(modes):
        raise UserError(f"--modes must be a comma-separated subset of {','.join(MODES)} (each once), got {args.modes!r}")
    repeated = sorted({layer for layer in args.layer or () if args.layer.count(layer) > 1})
    if repeated:
        raise UserError(f"--layer {', '.join(repeated)} is given more than once; name each layer once")
    return modes


def _outputs(args):
    """(--out, its metadata sidecar, the partial-run file): checked distinct, not inputs, writable."""
    from pathlib import Path

    from .core.files import check_distinct, check_inputs_kept, check_sidecar

    out, sidecar, partial = args.out, args.out.with_suffix(".json"), Path(f"{args.out}.partial.json")
    outputs = {"--out": out, "the metadata file (--out with .json)": sidecar, "the partial run": partial}
    check_distinct(**outputs)
    check_inputs_kept({"--weights": args.weights, "--data": args.data}, outputs)
    check_sidecar(sidecar, "analysis.head_ablation")
    return out, sidecar, partial


def _sha256(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
