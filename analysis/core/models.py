"""Model creation, in one place: any timm model or `shvitlab_*` variant by name and weights, at a
resolution, BN-fused as the papers count and time it.

Weights are one of
  `random`      seeded initialisation (explicit: no pretrained download is attempted),
  `pretrained`  timm's hub weights (network once, then timm's cache),
  a PATH        a local checkpoint: timm state dict, `{'model': sd}` (official SHViT /
                EfficientViT layouts), or safetensors; loaded strictly, never unpickled.
"""
from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import os
import socket
import sys
from typing import Iterator, Optional
from urllib.parse import urlparse

import timm
import torch
import torch.nn as nn
from huggingface_hub import constants as hub_constants
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled
from timm.utils.model import reparameterize_model

import shvit  # noqa: F401  (registers shvitlab_* with timm)
from shvit.weights import CheckpointError, convert_official_state_dict, load_state_dict_strict, read_state_dict

from .errors import UserError, not_a_command, note
from .memory import check_memory

__all__ = ["create_model", "create_model_at", "fuse_model", "check_model_name", "suggest_model_names",
           "describe_weights", "input_size", "hub_reachable", "leaves_model_as_found", "model_as_found"]


@contextlib.contextmanager
def model_as_found(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block an analysis may move `model` or put it in eval mode; afterwards it is as it was
    (every module's train/eval flag, the device of its tensors)."""
    modes = [(m, m.training) for m in model.modules()]
    devices = {t.device for t in (*model.parameters(), *model.buffers())}
    try:
        yield model
    finally:
        if len(devices) == 1:
            model.to(devices.pop())
        for module, training in modes:
            module.training = training


def leaves_model_as_found(analysis):
    """Decorate an analysis `analysis(model, ...)`: it runs within `model_as_found(model)`."""
    @functools.wraps(analysis)
    def wrapper(model: nn.Module, *args, **kwargs):
        with model_as_found(model):
            return analysis(model, *args, **kwargs)
    return wrapper


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connect (False at once when DNS fails offline)."""
    if hub_constants.is_offline_mode():
        return False
    url = urlparse(hub_constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_cache_only() -> Iterator[None]:
    """Make huggingface_hub serve from its cache without retrying a network that is not there
    (its offline switch is read at call time; restored afterwards)."""
    saved = hub_constants.HF_HUB_OFFLINE
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = saved


def suggest_model_names(name: str, n: int = 4) -> list[str]:
    """Names timm knows that `name` probably meant: those containing it (shortest first, so
    `deit_tiny` gives `deit_tiny_patch16_224`), then the closest by edit distance."""
    known = timm.list_models()
    query = name.lower()
    containing = sorted((m for m in known if query in m), key=lambda m: (len(m), m))
    close = difflib.get_close_matches(query, known, n=n, cutoff=0.6)
    return list(dict.fromkeys(containing + close))[:n]


def check_model_name(name: str) -> str:
    """Return `name` if timm (or shvit) knows it; else a UserError suggesting close names."""
    if name in timm.list_models():
        return name
    close = suggest_model_names(name)
    hint = f"; did you mean {', '.join(close)}?" if close else " (see timm.list_models())"
    raise UserError(f"unknown model {name!r}{hint}")


def describe_weights(weights: str) -> str:
    """Short label for tables and figures: 'random', 'pretrained' or the file's name."""
    return weights if weights in ("random", "pretrained") else os.path.basename(os.fspath(weights))


def _load_local(model: nn.Module, path: str, resample: bool = False) -> None:
    sd = read_state_dict(path)
    module = sys.modules.get(type(model).__module__)
    filter_fn = getattr(module, "checkpoint_filter_fn", None)
    if filter_fn is not None:  # timm's own converter for official layouts (EfficientViT, DeiT, ...)
        try:
            converted = filter_fn(sd, model)
        except Exception:  # noqa: BLE001  a foreign layout: fall through to the strict key check
            converted = sd
        # a converter may re-lay a tensor out (a linear patch kernel as a conv), but resampling one to another
        # size (pos_embed to another grid, the patch kernel to another stride) changes the model: refused
        resampled = [f"{k} {tuple(sd[k].shape)} -> {tuple(v.shape)}" for k, v in converted.items()
                     if k in sd and v.numel() != sd[k].numel()]
        if resampled and not resample:
            raise CheckpointError(f"{path} does not fit {type(model).__name__}: timm would resample "
                                  f"{', '.join(resampled[:3])}; a checkpoint is loaded as it is, never resampled "
                                  "silently (build the model at the checkpoint's resolution, or pass "
                                  "--resample-pos-embed to resample it)")
        if resampled:
            note(f"note: resampled {', '.join(resampled)} from {path} to fit {type(model).__name__} "
                 "(timm's checkpoint_filter_fn: bicubic position embeddings / patch kernels)")
        sd = converted
    sd = convert_official_state_dict(sd)
    load_state_dict_strict(model, sd, source=path, note=note)


def create_model(name: str, weights: str = "random", *, seed: int = 0, num_classes: Optional[int] = None,
                 resample_pos_embed: bool = False, **kwargs) -> nn.Module:
    """Build `name` with `weights`, in eval mode. User errors raise `UserError` / `CheckpointError`. A local
    checkpoint whose position embedding or patch kernel has another size is refused, unless
    `resample_pos_embed` (then timm's converter resamples it, and a note on stderr says what)."""
    check_model_name(name)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    torch.manual_seed(seed)
    if weights == "pretrained":
        online = hub_reachable()
        try:
            with contextlib.nullcontext() if online else _hub_cache_only():
                model = timm.create_model(name, pretrained=True, **kwargs)
        except RuntimeError as e:
            if "no pretrained weights" in str(e).lower():
                raise UserError(f"{name} has no pretrained weights in timm; use --weights random or "
                                f"--weights PATH (a local checkpoint)") from None
            raise
        except (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError):
            raise UserError(f"pretrained weights for {name} are not cached and the hub is unreachable "
                            f"(offline?); use --weights random or --weights PATH (a local checkpoint)") from None
    elif weights == "random":
        model = timm.create_model(name, pretrained=False, **kwargs)
    else:
        model = timm.create_model(name, pretrained=False, **kwargs)
        _load_local(model, os.fspath(weights), resample=resample_pos_embed)
    return model.eval()


def input_size(model: nn.Module, resolution: Optional[int] = None) -> tuple:
    """(C, H, W) from the model's pretrained config, or at `resolution`."""
    cfg = timm.data.resolve_data_config({}, model=model)
    c, h, w = cfg["input_size"]
    if resolution is not None:
        if resolution < 16:
            raise UserError(f"resolution {resolution} is too small (at least 16 px)")
        h = w = resolution
    return (c, h, w)


def create_model_at(name: str, resolution: Optional[int] = None, *, seed: int = 0, batch_size: int = 1,
                    device: torch.device | str = "cpu") -> tuple:
    """(model with random weights, (C, H, W)) for `name` at `resolution` (default: its pretrained config).

    Models whose input size is fixed at construction (ViT, Swin) are rebuilt with
    `img_size=resolution` when the default build cannot run at it; a resolution the model
    cannot take at all is a UserError (one line, exit 2 in the CLIs), and so is a `batch_size` at that
    resolution whose estimated memory exceeds what `device` has (`core.memory.check_memory`).
    """
    model = create_model(name, "random", seed=seed)
    c, h, w = input_size(model, resolution)
    patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
    patch = patch[0] if isinstance(patch, (tuple, list)) else patch
    if isinstance(patch, int) and patch > 1 and (h % patch or w % patch):  # the patch grid would drop pixels
        lower, upper = (h // patch) * patch, (h // patch + 1) * patch
        raise UserError(f"{name} cuts its input into {patch}x{patch} px patches: {h} px would leave pixels out; use "
                        f"a multiple of {patch}, e.g. {lower} or {upper}")
    error = None
    for attempt in ("default", "img_size"):
        kwargs = {} if attempt == "default" else {"img_size": h}
        check_memory(name, (batch_size, c, h, w), device=device, **kwargs)
        if attempt == "img_size":
            try:
                model = create_model(name, "random", seed=seed, img_size=h)
            except TypeError:
                break
        try:
            with torch.no_grad():
                model(torch.zeros(1, c, h, w))
            return model, (c, h, w)
        except (RuntimeError, AssertionError, ValueError) as e:
            error = e
    raise UserError(f"{name} cannot run at {h}x{w} px: {str(error).splitlines()[0]}")


def fuse_model(model: nn.Module, *, inplace: bool = False) -> nn.Module:
    """A BN-fused copy of `model` in eval mode (the papers' deploy model); `model` is untouched
    unless `inplace` (then it is fused and returned)."""
    return reparameterize_model((model if inplace else copy.deepcopy(model)).eval(), inplace=True)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
