"""Train any timm / `shvitlab_*` model: one process, or DDP under `torchrun` (CLI: `analysis/train.py`).

    python -m analysis.train --model shvitlab_fig2_b --set embed_dims=[32,64,96] --set depths=[1,2,2] \\
        --epochs 10 --output runs/fig2_b
    torchrun --nproc_per_node=4 -m analysis.train --model shvitlab_s1 --data /data/imagenet \\
        --epochs 300 --batch-size 1024 --lr 1e-3 --output runs/s1

The data is the offline cluttered-digits set (default; `--data-resolution`, `--num-train`, ...)
or an ImageNet-layout folder (`--data DIR`, timm's transforms at the model's input size).
timm's optimizer and scheduler factories; AMP on CUDA; a checkpoint `OUTPUT/last.pth`
(config, weights, optimizer, step, metrics; plain types, so `torch.load(weights_only=True)`
reads it) written atomically after every epoch; `--resume` continues from its step.
`--batch-size` is the global batch: under DDP each of N processes takes batch/N, so the
same command gives the same optimisation on 1 or N processes (models with BatchNorm
differ slightly: statistics are per process unless `--sync-bn` on CUDA).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler
import timm.data
from timm.optim import create_optimizer_v2, list_optimizers
from timm.scheduler import create_scheduler_v2
from tqdm import tqdm

from shvit.weights import load_state_dict_strict

from ..core.errors import UserError, not_a_command
from ..core.files import check_writable, exclusive_folder, write_json
from ..core.models import check_model_name, create_model
from ..core.distributed import World
from ..core.memory import check_memory
from ..core.runtime import resolve_device
from .checkpoints import check_resume, load_checkpoint, save_checkpoint, training_state, with_current_names
from .augment import AUGMENTS, resize_inputs, shift_images
from .datasets import DIGITS_NAME, ClutteredDigits, DigitsConfig, image_folder_datasets

__all__ = ["TrainConfig", "fit", "train_one_epoch", "evaluate", "build_model", "build_datasets"]



@dataclass
class TrainConfig:
    """One training recipe; every field is a plain value so it round-trips through JSON."""

    model: str
    model_kwargs: dict = field(default_factory=dict)
    data: str = DIGITS_NAME
    data_kwargs: dict = field(default_factory=dict)  # DigitsConfig fields for cluttered digits
    resolution: Optional[int] = None  # input side: resize inputs to it (Fig. 2 b'); None: the data's own
    epochs: int = 10
    batch_size: int = 64
    opt: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.05
    sched: str = "cosine"
    warmup_epochs: int = 1
    label_smoothing: float = 0.0
    augment: str = "none"  # cluttered digits: "shift" translates each training image by up to 1/8 of its side
    seed: int = 0
    amp: bool = True  # CUDA only; CPU always trains in float32
    sync_bn: bool = False  # DDP on CUDA: BatchNorm statistics over all processes
    workers: int = 0

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The config of `to_dict`, or of an older checkpoint (`with_current_names`)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in with_current_names(d).items() if k in names})



# ----------------------------------------------------------------------------- building blocks

def build_datasets(cfg: TrainConfig, model: Optional[nn.Module] = None):
    """(train, val, num_classes) for `cfg.data`: cluttered digits or an image folder."""
    if cfg.data == DIGITS_NAME:
        dcfg = DigitsConfig(**cfg.data_kwargs)
        return ClutteredDigits("train", dcfg), ClutteredDigits("val", dcfg), len(ClutteredDigits.classes)
    data_cfg = timm.data.resolve_data_config({}, model=model)
    if cfg.resolution:
        data_cfg["input_size"] = (3, cfg.resolution, cfg.resolution)
    train, val = image_folder_datasets(cfg.data, data_cfg["input_size"], mean=data_cfg["mean"],
                                       std=data_cfg["std"], interpolation=data_cfg["interpolation"],
                                       crop_pct=data_cfg["crop_pct"])
    return train, val, _num_classes(cfg)


def _num_classes(cfg: TrainConfig) -> int:
    if cfg.data == DIGITS_NAME:
        return len(ClutteredDigits.classes)
    root = Path(cfg.data)
    if not root.is_dir():
        raise UserError(f"data folder {root} does not exist")
    if not (root / "train").is_dir():
        raise UserError(f"data folder {root} has no train/ subfolder (ImageNet layout: {root}/train/<class>/*)")
    classes = [p for p in (root / "train").iterdir() if p.is_dir()]
    if not classes:
        raise UserError(f"data folder {root / 'train'} holds no class folders")
    return len(classes)


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """The model of `cfg` with `num_classes` outputs, seeded, in train mode."""
    try:
        return create_model(cfg.model, "random", seed=cfg.seed, num_classes=num_classes,
                            **cfg.model_kwargs).train()
    except UserError:
        raise
    except TypeError as e:
        raise UserError(f"bad model override for {cfg.model}: {e}") from None
    except ValueError as e:
        raise UserError(f"bad model override for {cfg.model}: {str(e).splitlines()[0]}") from None


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, resolution: Optional[int] = None,
             world: Optional[World] = None) -> dict:
    """Top-1 (%) and mean cross-entropy over `loader` (summed over DDP processes)."""
    was_training = model.training
    model.eval()
    correct = loss = total = 0.0
    for x, y in loader:
        x, y = resize_inputs(x.to(device), resolution), y.to(device)
        logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        total += len(y)
    if world is not None:
        correct, loss, total = world.sum(correct, loss, total)
    model.train(was_training)
    return {"top1": 100.0 * correct / max(total, 1), "loss": loss / max(total, 1), "images": int(total)}


_PROBABILITY_KWARGS = ("drop_rate", "drop_path_rate", "attn_drop_rate", "proj_drop_rate", "pos_drop_rate")


def _check_recipe(cfg: TrainConfig) -> None:
    """Optimizer and scheduler names that timm knows (and this loop can drive), label smoothing and dropout
    probabilities in range, the augmentation known, checked before anything is built."""
    if cfg.augment not in AUGMENTS:
        raise UserError(f"unknown augment {cfg.augment!r}; choose one of {', '.join(AUGMENTS)}")
    if cfg.augment != "none" and cfg.data != DIGITS_NAME:
        raise UserError(f"augment {cfg.augment!r} is for cluttered digits; an image folder uses timm's train "
                        "transform")
    if not 0 <= cfg.label_smoothing < 1:
        raise UserError(f"--label-smoothing {cfg.label_smoothing:g} is out of range: a probability in [0, 1)")
    for key in _PROBABILITY_KWARGS:
        value = cfg.model_kwargs.get(key)
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                      and 0 <= value < 1):
            raise UserError(f"--set {key}={value!r} is out of range: a probability in [0, 1)")
    if cfg.sched.lower() == "plateau":
        raise UserError("--sched plateau steps on a validation metric, which this training loop does not pass; "
                        "choose cosine, step, multistep, poly, tanh or constant")
    if cfg.opt.lower() not in list_optimizers():
        raise UserError(f"unknown --opt {cfg.opt!r}; choose a timm optimizer (timm.optim.list_optimizers()), "
                        "e.g. adamw, sgd, lamb")
    probe = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    try:
        create_scheduler_v2(probe, sched=cfg.sched, num_epochs=1, updates_per_epoch=1, step_on_epochs=False)
    except ValueError:
        raise UserError(f"unknown --sched {cfg.sched!r}; choose a timm scheduler, e.g. cosine, step, "
                        "multistep, poly, tanh, constant") from None


# ----------------------------------------------------------------------------- training loop

def fit(cfg: TrainConfig, output: Optional[str | os.PathLike] = None, *, resume: Optional[str] = None,
        device: str | torch.device = "cpu", progress: bool = True, stop_after: Optional[int] = None,
        datasets=None, overwrite: bool = False):
    """Train `cfg`; returns (model, summary dict). Runs as DDP when launched by torchrun.

    Args:
        output: folder for `last.pth` (after every epoch) and `summary.json`; None keeps nothing.
        resume: a checkpoint of the same model / data; training continues at its step.
        stop_after: stop after this many epochs in this call (time-sliced jobs; resume later).
        datasets: prebuilt (train, val, num_classes), to share data between runs in one process.
        overwrite: replace a run already in `output` (else that is an error unless resuming).
    All user errors (unknown model, missing data, unwritable output, bad checkpoint) are raised
    before anything is trained or written.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    check_model_name(cfg.model)
    _check_recipe(cfg)
    side = cfg.resolution or (DigitsConfig(**cfg.data_kwargs).resolution if cfg.data == DIGITS_NAME else 224)
    check_memory(cfg.model, (cfg.batch_size, 3, side, side), device=device, training=True, **cfg.model_kwargs)
    num_classes = datasets[2] if datasets is not None else _num_classes(cfg)
    ckpt = None
    if resume is not None:   # before the output folder is made: a bad checkpoint leaves nothing behind
        ckpt = load_checkpoint(resume)
        check_resume(ckpt, cfg, os.fspath(resume))
    ckpt_path = None
    if output is not None:
        output = Path(output)
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create output folder {output} ({e.strerror})") from None
        ckpt_path = check_writable(output / "last.pth")
        check_writable(output / "summary.json")
    with _output_lock(output):
        if ckpt_path is not None and ckpt_path.exists() and resume is None and not overwrite:
            raise UserError(f"{output} already holds a training run ({ckpt_path.name}); continue it with --resume "
                            f"{ckpt_path}, or replace it with --overwrite")
        return _train(cfg, output, ckpt_path, num_classes, device, resume, ckpt, progress, stop_after, datasets)


@contextlib.contextmanager
def _output_lock(output: Optional[Path]):
    """Hold an exclusive lock on the `output` folder while training into it (rank 0 of a torchrun job): a
    second run into the same folder is refused at once instead of racing it. The lock is the folder's own
    file lock (`flock`), so nothing is left behind, and the OS drops it if the process dies."""
    if output is None or int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    with exclusive_folder(output, f"another training run is writing {output}; wait for it or choose another --output"):
        yield


@dataclass
class _Optimization:
    """What one training step needs besides the model and the batch."""
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype
    use_amp: bool               # CUDA only: CPU always trains in float32


def _optimization(cfg: TrainConfig, model: nn.Module, steps_per_epoch: int, device: torch.device) -> _Optimization:
    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler, _ = create_scheduler_v2(optimizer, sched=cfg.sched, num_epochs=cfg.epochs,
                                       warmup_epochs=cfg.warmup_epochs, step_on_epochs=False,
                                       updates_per_epoch=steps_per_epoch, min_lr=cfg.lr * 1e-2,
                                       warmup_lr=cfg.lr * 1e-2)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    return _Optimization(optimizer, scheduler, scaler, amp_dtype, use_amp)


def train_one_epoch(net: nn.Module, loader, opt: _Optimization, cfg: TrainConfig, device: torch.device, epoch: int,
                    step: int, bar: tqdm) -> tuple[int, dict]:
    """One pass over `loader` (timm's `train_one_epoch`): returns the step reached and this process's
    sums (`seen`, `correct`, `loss_sum`). One host sync per step (the loss, checked finite before the
    optimizer steps); the correct count stays on the device until the epoch ends."""
    torch.manual_seed(cfg.seed * 1000 + epoch)  # dropout / drop-path: reproducible on resume
    shifts = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)  # augmentation: reproducible on resume
    net.train()
    seen, loss_sum, correct = 0, 0.0, torch.zeros((), dtype=torch.int64, device=device)
    for x, y in loader:
        if cfg.augment == "shift":
            x = shift_images(x, shifts)
        x, y = resize_inputs(x.to(device, non_blocking=True), cfg.resolution), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=opt.amp_dtype, enabled=opt.use_amp):
            logits = net(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            raise UserError(f"training diverged: loss is {loss_value} at step {step + 1}; lower --lr")
        opt.optimizer.zero_grad(set_to_none=True)
        opt.scaler.scale(loss).backward()
        opt.scaler.step(opt.optimizer)
        opt.scaler.update()
        step += 1
        opt.scheduler.step_update(num_updates=step)
        seen += len(y)
        loss_sum += loss_value * len(y)
        correct += (logits.argmax(1) == y).sum()
        bar.update()
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / seen:.3f}")
    return step, {"seen": seen, "correct": int(correct), "loss_sum": loss_sum}


def _loaders(cfg: TrainConfig, train_ds, val_ds, world: World, device: torch.device):
    """The training loader (each process its share of every global batch) and the validation loader."""
    per_rank = cfg.batch_size // world.size
    sampler = DistributedSampler(train_ds, num_replicas=world.size, rank=world.rank, shuffle=True, seed=cfg.seed)
    loader = DataLoader(train_ds, batch_size=per_rank, sampler=sampler, drop_last=True,
                        num_workers=cfg.workers, pin_memory=device.type == "cuda")
    if len(loader) == 0:
        raise UserError(f"the training set ({len(train_ds)} images) is smaller than one batch of {cfg.batch_size}")
    val_loader = DataLoader(Subset(val_ds, range(world.rank, len(val_ds), world.size)),
                            batch_size=max(per_rank, 64), num_workers=cfg.workers)
    return loader, val_loader


def _training_world(cfg: TrainConfig, device: torch.device) -> tuple[World, torch.device]:
    """The process group (one process, or torchrun's) and this process's device."""
    world, device = World.with_device(device)
    if device.type != "cuda" and world.size > 1:
        torch.set_num_threads(max(1, torch.get_num_threads() // world.size))
    if cfg.batch_size % world.size:
        raise UserError(f"--batch-size {cfg.batch_size} is not divisible by the {world.size} processes")
    return world, device


def _distributed(model: nn.Module, cfg: TrainConfig, world: World, device: torch.device) -> nn.Module:
    """`model` as DDP over the processes of `world` (itself for one process)."""
    if world.size == 1:
        return model
    if world.main and not (cfg.sync_bn and device.type == "cuda") and any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        print(f"note: BatchNorm statistics are per process ({world.size} processes; --sync-bn on CUDA shares "
              "them), so this run differs slightly from one process", file=sys.stderr)
    net = nn.SyncBatchNorm.convert_sync_batchnorm(model) if device.type == "cuda" and cfg.sync_bn else model
    return nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


def _train(cfg: TrainConfig, output: Optional[Path], ckpt_path: Optional[Path], num_classes: int,
           device: torch.device, resume, ckpt: Optional[dict], progress: bool, stop_after: Optional[int], datasets):
    """`fit` once its arguments, resumed checkpoint and output folder are checked (and the folder locked)."""
    world, device = _training_world(cfg, device)
    model = build_model(cfg, num_classes)
    if ckpt is not None:
        load_state_dict_strict(model, ckpt["model"], source=os.fspath(resume))
    train_ds, val_ds, _ = datasets if datasets is not None else build_datasets(cfg, model)
    net = _distributed(model.to(device), cfg, world, device)
    loader, val_loader = _loaders(cfg, train_ds, val_ds, world, device)
    opt = _optimization(cfg, model, len(loader), device)
    start_epoch, step, history = 0, 0, []
    if ckpt is not None:
        opt.optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, step = int(ckpt["epoch"]), int(ckpt["step"])
        history = list(ckpt.get("metrics", {}).get("history", []))
        if "scaler" in ckpt and opt.scaler.is_enabled():
            opt.scaler.load_state_dict(ckpt["scaler"])
    opt.scheduler.step_update(num_updates=step)

    last_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, start_epoch + stop_after)
    t0 = time.perf_counter()
    bar = tqdm(total=(last_epoch - start_epoch) * len(loader), disable=not (progress and world.main),
               desc=cfg.model, file=sys.stderr, dynamic_ncols=True, leave=False)
    for epoch in range(start_epoch, last_epoch):
        loader.sampler.set_epoch(epoch)
        step, sums = train_one_epoch(net, loader, opt, cfg, device, epoch, step, bar)
        seen, correct, loss_sum = world.sum(float(sums["seen"]), float(sums["correct"]), sums["loss_sum"])
        val = evaluate(model, val_loader, device, cfg.resolution, world)
        if not math.isfinite(val["loss"]):
            raise UserError(f"training diverged: validation loss is {val['loss']} after epoch {epoch + 1}; lower --lr")
        history.append({"epoch": epoch + 1, "step": step, "train_loss": loss_sum / seen,
                        "train_top1": 100 * correct / seen, "val_loss": val["loss"], "val_top1": val["top1"],
                        "lr": float(opt.optimizer.param_groups[0]["lr"])})
        bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}")
        if ckpt_path is not None and world.main:
            save_checkpoint(ckpt_path, training_state(cfg, model, opt.optimizer, opt.scaler, epoch + 1, step, history))
        world.barrier()
    bar.close()
    summary = _summary(cfg, model, num_classes, history, start_epoch, step, time.perf_counter() - t0, world, device,
                       ckpt_path)
    if output is not None and world.main:
        write_json(summary, output / "summary.json")
    world.close()
    return model.eval(), summary


def _summary(cfg, model, num_classes, history, start_epoch, step, seconds, world, device, ckpt_path) -> dict:
    final = history[-1] if history else {}
    return {
        "model": cfg.model, "config": cfg.to_dict(), "num_classes": num_classes,
        "epochs_done": history[-1]["epoch"] if history else start_epoch, "step": step,
        "val_top1": final.get("val_top1"), "val_loss": final.get("val_loss"),
        "train_loss": final.get("train_loss"), "train_seconds": round(seconds, 3),
        "world_size": world.size, "device": device.type,
        "params": sum(p.numel() for p in model.parameters()),
        "checkpoint": os.fspath(ckpt_path) if ckpt_path else None, "history": history,
    }


# ----------------------------------------------------------------------------- CLI


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
