"""`python -m analysis.train` (or under `torchrun`): train any timm / `shvitlab_*` model on the
offline cluttered digits or an ImageNet-layout folder (library: `analysis.lab.train`)."""
from __future__ import annotations

import ast
import json
import os
import sys
from typing import Any

from ._cli import (ArgumentParser, add_device_arg, add_seed_arg, command, non_negative_float, non_negative_int,
                   positive_float, positive_int, resolution, seed, worker_count, MODEL_HELP)
from .core.errors import UserError
from .core.names import DIGITS_NAME



def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _overrides(pairs, what: str) -> dict:
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{what} expects key=value, got {pair!r}")
        if key in out:
            raise UserError(f"{what} {key}=... is given more than once; give each key once")
        value = _parse_value(value)
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def build_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="python -m analysis.train", description=__doc__.split("\n\n")[0],
        epilog="""examples:
  python -m analysis.train --model shvitlab_fig2_b --set embed_dims=[32,64,96] --set depths=[1,2,2] \\
      --set img_size=64 --epochs 8 --output runs/fig2_b
  python -m analysis.train --model deit_tiny_patch16_224 --model-kwargs '{"img_size": 64, "patch_size": 8}' \\
      --output runs/deit
  python -m analysis.train --model shvitlab_s1 --data /data/imagenet --epochs 300 --output runs/s1
  torchrun --nproc_per_node=2 -m analysis.train --model shvitlab_fig2_b --output runs/ddp
  python -m analysis.train --model shvitlab_fig2_b --output runs/fig2_b --resume runs/fig2_b/last.pth""")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--set", dest="sets", action="append", metavar="KEY=VALUE",
                   help="model constructor override (Python literal), repeatable: --set depths=[1,2,2]")
    p.add_argument("--model-kwargs", default="{}", help="model overrides as a JSON object")
    p.add_argument("--data", default=DIGITS_NAME,
                   help=f"'{DIGITS_NAME}' (offline, generated) or an ImageNet-layout folder with train/ and val/")
    p.add_argument("--data-resolution", type=resolution, help="cluttered digits: image side in px (default 64)")
    p.add_argument("--num-train", type=positive_int, help="cluttered digits: training images (default 4000)")
    p.add_argument("--num-val", type=positive_int, help="cluttered digits: validation images (default 1000)")
    p.add_argument("--data-seed", type=seed, help="cluttered digits: generator seed (default 0)")
    p.add_argument("--resolution", type=resolution, help="input side in px: resize the images to it before the model "
                   "(default: the data's own)")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=64, help="global batch (split over DDP processes)")
    p.add_argument("--opt", default="adamw", help="timm optimizer name (create_optimizer_v2)")
    p.add_argument("--lr", type=positive_float, default=2e-3)
    p.add_argument("--weight-decay", type=non_negative_float, default=0.05)
    p.add_argument("--sched", default="cosine", help="timm scheduler name (create_scheduler_v2)")
    p.add_argument("--warmup-epochs", type=non_negative_int, default=1)
    p.add_argument("--label-smoothing", type=non_negative_float, default=0.0)
    p.add_argument("--workers", type=worker_count, default=0,
                   help="data-loader worker processes (at most the CPUs available)")
    p.add_argument("--no-amp", action="store_true", help="train in float32 on CUDA too")
    p.add_argument("--sync-bn", action="store_true", help="DDP on CUDA: synchronise BatchNorm statistics")
    add_seed_arg(p, "model initialisation and data order")
    p.add_argument("--output", help="folder for last.pth and summary.json")
    p.add_argument("--resume", help="checkpoint (last.pth) of the same model and data to continue from")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --output (default: refuse)")
    p.add_argument("--stop-after", type=positive_int, help="stop after this many epochs in this run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_device_arg(p)
    return p


def run(args) -> int:
    from .lab.train import TrainConfig, fit

    try:
        model_kwargs = json.loads(args.model_kwargs)
    except json.JSONDecodeError as e:
        raise UserError(f"--model-kwargs is not valid JSON ({e.msg})") from None
    if not isinstance(model_kwargs, dict):
        raise UserError("--model-kwargs must be a JSON object")
    sets = _overrides(args.sets, "--set")
    both = sorted(model_kwargs.keys() & sets.keys())
    if both:
        raise UserError(f"--set {both[0]} and --model-kwargs both give {both[0]}; give it once")
    model_kwargs.update(sets)
    if args.stop_after is not None and args.stop_after >= args.epochs:
        raise UserError(f"--stop-after {args.stop_after} would be ignored: the run has {args.epochs} epochs "
                        "(--epochs); stop after fewer, or leave it out")
    from .core.errors import launch_environment
    from .core.runtime import resolve_device

    device = resolve_device(args.device)
    if args.no_amp and device.type != "cuda":
        raise UserError(f"--no-amp would be ignored: training on {device.type} is in float32 already (mixed "
                        "precision is used on CUDA only)")
    if args.sync_bn and (device.type != "cuda" or launch_environment()[0] == 1):
        raise UserError("--sync-bn would be ignored: it applies to several processes on CUDA (torchrun with "
                        f"--device cuda); this run is {launch_environment()[0]} process(es) on {device.type}")
    data_kwargs = {k: v for k, v in {"resolution": args.data_resolution, "num_train": args.num_train,
                                     "num_val": args.num_val, "seed": args.data_seed}.items() if v is not None}
    if data_kwargs and args.data != DIGITS_NAME:
        raise UserError(f"--data-resolution / --num-train / --num-val / --data-seed apply to --data {DIGITS_NAME} only")
    cfg = TrainConfig(model=args.model, model_kwargs=model_kwargs, data=args.data, data_kwargs=data_kwargs,
                      resolution=args.resolution, epochs=args.epochs, batch_size=args.batch_size, opt=args.opt,
                      lr=args.lr, weight_decay=args.weight_decay, sched=args.sched,
                      warmup_epochs=args.warmup_epochs, label_smoothing=args.label_smoothing, seed=args.seed,
                      amp=not args.no_amp, sync_bn=args.sync_bn, workers=args.workers)
    if cfg.data != DIGITS_NAME:
        cfg.data = os.path.abspath(cfg.data)
    created = _missing_folders(args.output)
    try:
        _, summary = fit(cfg, args.output, resume=args.resume, device=args.device, progress=not args.quiet,
                         stop_after=args.stop_after, overwrite=args.overwrite)
    except BaseException:
        for folder in created:   # a run that failed leaves no empty --output folder behind (it made them)
            try:
                os.rmdir(folder)
            except OSError:
                break
        raise
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "history"}, indent=2))
    return 0


def _missing_folders(output) -> list[str]:
    """The folders `fit` would create for `output` (it and its missing parents), deepest first."""
    missing = []
    folder = os.path.abspath(output) if output else None
    while folder and not os.path.lexists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        folder = parent if parent != folder else None
    return missing


main = command(build_parser, run)

if __name__ == "__main__":
    sys.exit(main())
