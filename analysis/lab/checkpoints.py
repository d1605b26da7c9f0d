"""Training checkpoints of `analysis.train` (`OUTPUT/last.pth`): written atomically after every epoch, read
with `weights_only=True` (a file can never run code), and validated field by field before a run resumes."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from shvit.weights import CheckpointError, unreadable_reason

from ..core.errors import not_a_command
from ..core.files import atomic_path

__all__ = ["CHECKPOINT_FORMAT", "load_checkpoint", "check_resume", "save_checkpoint", "training_state"]

CHECKPOINT_FORMAT = "analysis.train/1"
# Fields that define the network and its data: a checkpoint resumes only when they match.
# What `fit` resumes from: a readable file whose fields are damaged is a CheckpointError, not a crash later.
_CHECKPOINT_FIELDS = {"config": dict, "model": dict, "optimizer": dict, "epoch": int, "step": int}
_IDENTITY_FIELDS = ("model", "model_kwargs", "data", "data_kwargs", "resolution")


def with_current_names(d: dict) -> dict:
    """A config dict with the names of checkpoints written before the input side was called `resolution`
    everywhere (`input_size`, and `image_size` in `data_kwargs`)."""
    d = dict(d)
    if "input_size" in d:
        d.setdefault("resolution", d.pop("input_size"))
    data = d.get("data_kwargs")
    if isinstance(data, dict) and "image_size" in data:
        d["data_kwargs"] = {("resolution" if k == "image_size" else k): v for k, v in data.items()}
    return d


def with_legacy_names(d: dict) -> dict:
    """`with_current_names` undone: the names that recipe digests (cache keys) were first computed from."""
    d = {("input_size" if k == "resolution" else k): v for k, v in d.items()}
    if isinstance(d.get("data_kwargs"), dict):
        d["data_kwargs"] = {("image_size" if k == "resolution" else k): v for k, v in d["data_kwargs"].items()}
    return d


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


def check_resume(ckpt: dict, cfg, path: str) -> None:
    """That `ckpt` (from `load_checkpoint`) can continue `cfg` (a `TrainConfig`): same model, data and
    optimizer; epoch, step, optimizer state and history well-formed. Checked before any work."""
    saved = with_current_names(ckpt.get("config", {}))
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


def save_checkpoint(path: Path, state: dict) -> None:
    """Write a training state atomically: a killed run leaves the previous checkpoint, never half a file."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def training_state(cfg, model, optimizer, scaler, epoch, step, history) -> dict:
    """The checkpoint of a run after `epoch` (plain types: `torch.load(weights_only=True)` reads it)."""
    state = {"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "epoch": epoch, "step": step,
             "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "optimizer": optimizer.state_dict(), "metrics": {"history": history}}
    if scaler.is_enabled():
        state["scaler"] = scaler.state_dict()
    return state


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
