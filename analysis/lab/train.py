"""Train any timm / `shvitlab_*` model: one process, or DDP under `torchrun` (CLI: `analysis/train.py`).

    python -m analysis.train --model shvitlab_fig2_b --set embed_dims=[32,64,96] --set depths=[1,2,2] \\
        --epochs 10 --output runs/fig2_b
    torchrun --nproc_per_node=4 -m analysis.train --model shvitlab_s1 --data /data/imagenet \\
        --epochs 300 --batch-size 1024 --lr 1e-3 --output runs/s1

The data is the offline cluttered-digits set (default; `--image-size`, `--num-train`, ...)
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

from shvit.weights import CheckpointError, load_state_dict_strict, unreadable_reason

from ..core.errors import UserError, not_a_command
from ..core.files import atomic_path, check_writable, exclusive_folder, write_json
from ..core.models import check_model_name, create_model
from ..core.distributed import World
from ..core.memory import check_memory
from ..core.runtime import resolve_device
from .datasets import DIGITS_NAME, ClutteredDigits, DigitsConfig, image_folder_datasets

__all__ = ["TrainConfig", "fit", "evaluate", "build_model", "build_datasets", "load_checkpoint",
           "resize_inputs", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "analysis.train/1"
# Fields that define the network and its data: a checkpoint resumes only when they match.
# What `fit` resumes from: a readable file whose fields are damaged is a CheckpointError, not a crash later.
_CHECKPOINT_FIELDS = {"config": dict, "model": dict, "optimizer": dict, "epoch": int, "step": int}
_IDENTITY_FIELDS = ("model", "model_kwargs", "data", "data_kwargs", "input_size")


@dataclass
class TrainConfig:
    """One training recipe; every field is a plain value so it round-trips through JSON."""

    model: str
    model_kwargs: dict = field(default_factory=dict)
    data: str = DIGITS_NAME
    data_kwargs: dict = field(default_factory=dict)  # DigitsConfig fields for cluttered digits
    input_size: Optional[int] = None  # resize inputs to this side (e.g. Fig. 2 b': larger input)
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
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# ----------------------------------------------------------------------------- building blocks

def build_datasets(cfg: TrainConfig, model: Optional[nn.Module] = None):
    """(train, val, num_classes) for `cfg.data`: cluttered digits or an image folder."""
    if cfg.data == DIGITS_NAME:
        dcfg = DigitsConfig(**cfg.data_kwargs)
        return ClutteredDigits("train", dcfg), ClutteredDigits("val", dcfg), len(ClutteredDigits.classes)
    data_cfg = timm.data.resolve_data_config({}, model=model)
    if cfg.input_size:
        data_cfg["input_size"] = (3, cfg.input_size, cfg.input_size)
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


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a training checkpoint (weights_only: it can never run code) and check its layout."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  corrupt files raise many types
        raise CheckpointError(f"{path} is not a readable checkpoint ({unreadable_reason(e)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an analysis.train checkpoint (no format {CHECKPOINT_FORMAT!r})")
    bad = [name for name, kind in _CHECKPOINT_FIELDS.items() if not isinstance(ckpt.get(name), kind)]
    if "model" not in bad and not all(isinstance(v, torch.Tensor) for v in ckpt["model"].values()):
        bad.append("model tensors")
    if bad:
        raise CheckpointError(f"{path} is a damaged analysis.train checkpoint (missing or malformed: {', '.join(bad)})")
    return ckpt


def _check_resume(ckpt: dict, cfg: TrainConfig, path: str) -> None:
    saved = ckpt.get("config", {})
    current = cfg.to_dict()
    diff = [f"{k}: {saved.get(k)!r} in checkpoint vs {current[k]!r}" for k in _IDENTITY_FIELDS
            if saved.get(k) != current[k]]
    if diff:
        raise CheckpointError(f"{path} was trained with a different setup ({'; '.join(diff)})")
    if str(saved.get("opt", "")).lower() != cfg.opt.lower():
        raise CheckpointError(f"{path} was trained with --opt {saved.get('opt')!r}; its optimizer state cannot "
                              f"continue with --opt {cfg.opt!r}")
    epoch, step = ckpt["epoch"], ckpt["step"]
    if isinstance(epoch, bool) or isinstance(step, bool) or not 0 <= epoch <= cfg.epochs or step < 0:
        raise CheckpointError(f"{path} is at epoch {epoch!r}, step {step!r}: resuming needs 0 <= epoch <= --epochs "
                              f"({cfg.epochs}) and step >= 0")
    optimizer = ckpt["optimizer"]
    if not isinstance(optimizer.get("state"), dict) or not isinstance(optimizer.get("param_groups"), list) \
            or not optimizer["param_groups"] or not all(isinstance(g, dict) for g in optimizer["param_groups"]):
        raise CheckpointError(f"{path} has no usable optimizer state (state and param_groups)")
    history = ckpt.get("metrics", {"history": []})
    if not isinstance(history, dict) or not isinstance(history.get("history"), list) or not all(
            isinstance(h, dict) and isinstance(h.get("epoch"), int) for h in history["history"]):
        raise CheckpointError(f"{path} has a malformed training history (metrics.history: one dict per epoch)")


def resize_inputs(x: torch.Tensor, side: Optional[int]) -> torch.Tensor:
    """Images [B, C, H, W] resized to side x side (antialiased bilinear), as recipes with an
    `input_size` see them in training and evaluation; unchanged when `side` is None or already met."""
    if side is None or x.shape[-1] == side:
        return x
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, input_size: Optional[int] = None,
             world: Optional[World] = None) -> dict:
    """Top-1 (%) and mean cross-entropy over `loader` (summed over DDP processes)."""
    was_training = model.training
    model.eval()
    correct = loss = total = 0.0
    for x, y in loader:
        x, y = resize_inputs(x.to(device), input_size), y.to(device)
        logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        total += len(y)
    if world is not None:
        correct, loss, total = world.sum(correct, loss, total)
    model.train(was_training)
    return {"top1": 100.0 * correct / max(total, 1), "loss": loss / max(total, 1), "images": int(total)}


_PROBABILITY_KWARGS = ("drop_rate", "drop_path_rate", "attn_drop_rate", "proj_drop_rate", "pos_drop_rate")


AUGMENTS = ("none", "shift")


def shift_images(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of [B, C, H, W] translated by its own random offset of up to H // 8 px on each axis,
    the vacated border filled with 0 (the mean colour after normalisation): the augmentation `augment =
    "shift"` applies to training batches (a digit placed anywhere stays a digit)."""
    m = x.shape[-1] // 8
    if m == 0:
        return x
    offsets = torch.randint(0, 2 * m + 1, (len(x), 2), generator=generator).tolist()
    padded = F.pad(x, (m, m, m, m))
    h, w = x.shape[-2:]
    return torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


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


def _save(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


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
    side = cfg.input_size or (DigitsConfig(**cfg.data_kwargs).image_size if cfg.data == DIGITS_NAME else 224)
    check_memory(cfg.model, (cfg.batch_size, 3, side, side), device=device, training=True, **cfg.model_kwargs)
    num_classes = datasets[2] if datasets is not None else _num_classes(cfg)
    ckpt = None
    if resume is not None:   # before the output folder is made: a bad checkpoint leaves nothing behind
        ckpt = load_checkpoint(resume)
        _check_resume(ckpt, cfg, os.fspath(resume))
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


def _train(cfg: TrainConfig, output: Optional[Path], ckpt_path: Optional[Path], num_classes: int,
           device: torch.device, resume, ckpt: Optional[dict], progress: bool, stop_after: Optional[int], datasets):
    """`fit` once its arguments, resumed checkpoint and output folder are checked (and the folder locked)."""

    world = World.from_env(device)
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    elif world.size > 1:
        torch.set_num_threads(max(1, torch.get_num_threads() // world.size))
    if cfg.batch_size % world.size:
        raise UserError(f"--batch-size {cfg.batch_size} is not divisible by the {world.size} processes")

    model = build_model(cfg, num_classes)
    if world.size > 1 and world.main and not (cfg.sync_bn and device.type == "cuda") and any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        print(f"note: BatchNorm statistics are per process ({world.size} processes; --sync-bn on CUDA shares "
              "them), so this run differs slightly from one process", file=sys.stderr)
    if ckpt is not None:
        load_state_dict_strict(model, ckpt["model"], source=os.fspath(resume))
    train_ds, val_ds, _ = datasets if datasets is not None else build_datasets(cfg, model)
    model.to(device)
    net = model
    if world.size > 1:
        if device.type == "cuda" and cfg.sync_bn:
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)

    per_rank = cfg.batch_size // world.size
    sampler = DistributedSampler(train_ds, num_replicas=world.size, rank=world.rank, shuffle=True, seed=cfg.seed)
    loader = DataLoader(train_ds, batch_size=per_rank, sampler=sampler, drop_last=True,
                        num_workers=cfg.workers, pin_memory=device.type == "cuda")
    if len(loader) == 0:
        raise UserError(f"the training set ({len(train_ds)} images) is smaller than one batch of {cfg.batch_size}")
    val_loader = DataLoader(Subset(val_ds, range(world.rank, len(val_ds), world.size)),
                            batch_size=max(per_rank, 64), num_workers=cfg.workers)

    optimizer = create_optimizer_v2(model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler, _ = create_scheduler_v2(optimizer, sched=cfg.sched, num_epochs=cfg.epochs,
                                       warmup_epochs=cfg.warmup_epochs, step_on_epochs=False,
                                       updates_per_epoch=len(loader), min_lr=cfg.lr * 1e-2,
                                       warmup_lr=cfg.lr * 1e-2)
    use_amp = cfg.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    start_epoch, step, history = 0, 0, []
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, step = int(ckpt["epoch"]), int(ckpt["step"])
        history = list(ckpt.get("metrics", {}).get("history", []))
        if "scaler" in ckpt and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler"])
    scheduler.step_update(num_updates=step)

    last_epoch = cfg.epochs if stop_after is None else min(cfg.epochs, start_epoch + stop_after)
    t0 = time.perf_counter()
    bar = tqdm(total=(last_epoch - start_epoch) * len(loader), disable=not (progress and world.main),
               desc=cfg.model, file=sys.stderr, dynamic_ncols=True, leave=False)
    for epoch in range(start_epoch, last_epoch):
        sampler.set_epoch(epoch)
        torch.manual_seed(cfg.seed * 1000 + epoch)  # dropout / drop-path: reproducible on resume
        shifts = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)  # augmentation: reproducible on resume
        net.train()
        seen = correct = loss_sum = 0.0
        for x, y in loader:
            if cfg.augment == "shift":
                x = shift_images(x, shifts)
            x, y = resize_inputs(x.to(device, non_blocking=True), cfg.input_size), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                logits = net(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            scheduler.step_update(num_updates=step)
            if not math.isfinite(loss.item()):
                raise UserError(f"training diverged: loss is {loss.item()} at step {step}; lower --lr")
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}")
        seen, correct, loss_sum = world.sum(seen, correct, loss_sum)
        val = evaluate(model, val_loader, device, cfg.input_size, world)
        if not math.isfinite(val["loss"]):
            raise UserError(f"training diverged: validation loss is {val['loss']} after epoch {epoch + 1}; lower --lr")
        history.append({"epoch": epoch + 1, "step": step, "train_loss": loss_sum / seen,
                        "train_top1": 100 * correct / seen, "val_loss": val["loss"], "val_top1": val["top1"],
                        "lr": float(optimizer.param_groups[0]["lr"])})
        if ckpt_path is not None and world.main:
            _save(ckpt_path, _checkpoint(cfg, model, optimizer, scaler, epoch + 1, step, history))
        world.barrier()
    bar.close()

    final = history[-1] if history else {}
    summary = {
        "model": cfg.model, "config": cfg.to_dict(), "num_classes": num_classes,
        "epochs_done": history[-1]["epoch"] if history else start_epoch, "step": step,
        "val_top1": final.get("val_top1"), "val_loss": final.get("val_loss"),
        "train_loss": final.get("train_loss"), "train_seconds": round(time.perf_counter() - t0, 3),
        "world_size": world.size, "device": device.type,
        "params": sum(p.numel() for p in model.parameters()),
        "checkpoint": os.fspath(ckpt_path) if ckpt_path else None, "history": history,
    }
    if output is not None and world.main:
        write_json(summary, output / "summary.json")
    world.close()
    return model.eval(), summary


def _checkpoint(cfg, model, optimizer, scaler, epoch, step, history) -> dict:
    state = {"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "epoch": epoch, "step": step,
             "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "optimizer": optimizer.state_dict(), "metrics": {"history": history}}
    if scaler.is_enabled():
        state["scaler"] = scaler.state_dict()
    return state


# ----------------------------------------------------------------------------- CLI


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
