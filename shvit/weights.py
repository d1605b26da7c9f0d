"""Checkpoint reading and strict loading for SHViT-family (and any timm) models.

Files are read with `torch.load(weights_only=True)` or safetensors, so a checkpoint can
never run code. Accepted layouts: a plain state dict (timm), `{'model': sd}` /
`{'state_dict': sd}` (official SHViT / EfficientViT training scripts), safetensors; the
official SHViT key layout (`blocks1.*`, `blocks2.*`, ...) is converted to timm's.
"""
from __future__ import annotations

import os
import re
import sys
import warnings
from typing import Callable, Dict, Mapping, Optional

import torch
import torch.nn as nn
from safetensors.torch import load_file

__all__ = ["CheckpointError", "read_state_dict", "unreadable_reason", "convert_official_state_dict",
           "load_state_dict_strict", "load_checkpoint"]

StateDict = Dict[str, torch.Tensor]
_WRAPPER_KEYS = ("model", "state_dict", "model_ema", "state_dict_ema")


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable, or does not fit the model."""


_UNSUPPORTED_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")  # torch's wordings


def unreadable_reason(error: BaseException) -> str:
    """One line on why a file could not be read as a checkpoint, for the user.

    torch's message for a pickle that wants to run code suggests loading it with
    `weights_only=False`; that advice is never passed on (it is how a file runs code).
    """
    text = str(error)
    found = _UNSUPPORTED_GLOBAL.search(text)
    if found or "weights_only" in text:
        what = f" ({found.group(1)})" if found else ""
        return (f"it holds Python objects{what} besides tensors, which this tool refuses to unpickle; if you "
                "trust the file, convert it to safetensors in a trusted environment")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {first}"[:200] if first else type(error).__name__


def read_state_dict(path: str | os.PathLike) -> StateDict:
    """Tensors of a checkpoint file, unwrapped from `{'model': ...}`-style containers.

    Any bytes give either tensors or a `CheckpointError` (one line); nothing in the file runs.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():   # torch's remarks on the file (pickle protocol, sparse tensors): the
            warnings.simplefilter("ignore")   # file is accepted or refused below, in one line
            obj = load_file(path) if path.endswith(".safetensors") else torch.load(path, map_location="cpu",
                                                                                    weights_only=True)
    except Exception as e:  # noqa: BLE001  arbitrary bytes make the readers fail in many ways (KeyError, ...)
        raise CheckpointError(f"{path} is not a readable checkpoint ({unreadable_reason(e)})") from None
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no state dict (expected name -> tensor, "
                              f"optionally under 'model' or 'state_dict')")
    bad_keys = [repr(k) for k in obj if not isinstance(k, str)]
    if bad_keys:
        raise CheckpointError(f"{path} has keys that are not names: {_listing(bad_keys, 3)}")
    odd = [f"{k} ({_kind(v)})" for k, v in obj.items() if _kind(v) != "dense"]
    if odd:
        raise CheckpointError(f"{path} holds tensors that are not plain dense ones: {_listing(odd, 3)}")
    sd = {}
    for k, v in obj.items():
        name = k.removeprefix("module.")
        if name in sd:   # DataParallel's prefix stripped: the same name twice, one would silently win
            raise CheckpointError(f"{path} has both {k!r} and {name!r} (after removing 'module.'); which one is meant?")
        sd[name] = v
    return sd


def _kind(t: torch.Tensor) -> str:
    """'dense' for a plain strided tensor with data; else what it is (sparse, meta, quantized, ...)."""
    if t.is_quantized:
        return "quantized"
    if t.is_meta or t.device.type == "meta":
        return "meta, no data"
    if t.layout != torch.strided:
        return str(t.layout).removeprefix("torch.")
    return "dense"


def convert_official_state_dict(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Rename the official SHViT layout (`blocks1.*`, `blocks2.*`, ...) to timm's `stages.*`.

    Official stage k > 1 starts with its downsampling as three entries (DW+FFN, PatchMerging,
    DW+FFN), which timm keeps in `stages.{k-1}.downsample.0..4`. Other keys pass through.
    """
    if not any(k.startswith("blocks1.") for k in sd):
        return dict(sd)
    out = {}
    pattern = re.compile(r"^blocks(\d+)\.(\d+)\.(.*)$")
    for key, value in sd.items():
        m = pattern.match(key)
        if not m:
            out[key] = value
            continue
        stage, idx, rest = int(m.group(1)) - 1, int(m.group(2)), m.group(3)
        if stage == 0:
            new = f"stages.0.blocks.{idx}.{rest}"
        elif idx in (0, 2):  # Sequential(Residual(DW), Residual(FFN)) around PatchMerging
            sub, tail = rest.split(".", 1)
            new = f"stages.{stage}.downsample.{idx + int(sub) + (1 if idx == 2 else 0)}.{tail}"
        elif idx == 1:
            new = f"stages.{stage}.downsample.2.{rest}"
        else:
            new = f"stages.{stage}.blocks.{idx - 3}.{rest}"
        out[new] = value
    return out


def _listing(keys, limit: int = 6) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _print_note(message: str) -> None:
    print(message, file=sys.stderr)


def load_state_dict_strict(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str = "checkpoint",
                           note: Optional[Callable[[str], None]] = None) -> None:
    """Load `sd` into `model`, or raise `CheckpointError` naming missing / unexpected / misshaped keys.

    Nothing is loaded unless every key matches, so a wrong file never leaves a half-loaded model. A remark
    (weights converted to the model's precision) goes to `note` (default: a line on stderr).
    """
    own = model.state_dict()
    missing = own.keys() - sd.keys()
    unexpected = sd.keys() - own.keys()
    shared = sorted(own.keys() & sd.keys())
    misshaped = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in shared if sd[k].shape != own[k].shape]
    # a weight must be a float (int / bool / complex would be cast silently); integer buffers (BatchNorm's
    # num_batches_tracked) stay integers
    wrong_type = [f"{k} {str(sd[k].dtype).removeprefix('torch.')}" for k in shared
                  if own[k].is_floating_point() != sd[k].is_floating_point() or sd[k].is_complex()]
    non_finite = [k for k in shared if sd[k].is_floating_point() and not bool(torch.isfinite(sd[k]).all())]
    problems = []
    if wrong_type:
        problems.append(f"{len(wrong_type)} tensors of the wrong type: {_listing(wrong_type, 3)}")
    if non_finite:
        problems.append(f"{len(non_finite)} tensors hold NaN or inf: {_listing(non_finite, 3)}")
    if missing:
        problems.append(f"{len(missing)} missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_listing(unexpected)}")
    if misshaped:
        problems.append(f"{len(misshaped)} shape mismatches: {_listing(misshaped, 3)}")
    if problems:
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: " + "; ".join(problems))
    converted = sorted({f"{str(sd[k].dtype).removeprefix('torch.')} -> {str(own[k].dtype).removeprefix('torch.')}"
                        for k in shared if sd[k].is_floating_point() and sd[k].dtype != own[k].dtype})
    if converted:
        (note or _print_note)(f"note: {source}: weights converted to the model's precision ({', '.join(converted)})")
    model.load_state_dict(sd, strict=True)


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Read `path` (any accepted layout) and load it strictly into `model`; returns `model`."""
    sd = convert_official_state_dict(read_state_dict(path))
    load_state_dict_strict(model, sd, source=os.fspath(path))
    return model
