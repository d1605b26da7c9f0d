"""Model creation, in one place: any timm model or `shvitlab_*` variant by name and weights, at a
resolution, BN-fused as the papers count and time it.

A model is named by a timm-registered name, or by your own factory (`model spec`):
  `package.module:factory`   imported with importlib (the module's folder on PYTHONPATH or the cwd),
  `path/to/file.py:factory`  the file loaded as a module of its own (its neighbours are not importable);
importing the module runs its code, as `python file.py` would: name only code you trust. The factory is
called with the keyword arguments the caller gives (`num_classes`, a command's model overrides,
`img_size` when a resolution needs a rebuild and the factory names that parameter), plus `pretrained=False`
when it names a `pretrained` parameter (a timm-style entrypoint), after `torch.manual_seed(seed)`. Its input
size comes from the model's `pretrained_cfg` (or `default_cfg`) as for timm models, else timm's default
3x224x224 with ImageNet mean/std (a note says so; a command's `--resolution` overrides it).

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
import hashlib
import importlib
import importlib.util
import inspect
import os
import socket
import sys
from pathlib import Path
from typing import Callable, Iterator, Optional
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
           "is_model_spec", "load_model_factory", "instantiate_model", "describe_weights", "input_size",
           "hub_reachable", "leaves_model_as_found", "model_as_found"]


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


def check_model_name(name: str, *, build: bool = False) -> str:
    """Return `name` if timm (or shvit) knows it, or if it is a model spec whose factory loads (imported; called
    once too with `build`, so that a factory that fails does so before a command's work starts); else a
    UserError suggesting close names."""
    if is_model_spec(name):
        load_model_factory(name)
        if build:
            instantiate_model(name)
        return name
    if name in timm.list_models():
        return name
    if name.endswith(".py") or os.sep in name or _names_a_module(name):
        raise UserError(f"model {name!r} names no factory: give it after a colon, as {name}:FACTORY")
    close = suggest_model_names(name)
    hint = (f"; did you mean {', '.join(close)}?" if close else
            " (see timm.list_models(); your own model: package.module:factory or path/to/file.py:factory)")
    raise UserError(f"unknown model {name!r}{hint}")


def _names_a_module(name: str) -> bool:
    """`pkg.mod` (no colon) whose top-level package is importable: a model spec without its factory."""
    top = name.split(".")[0]
    return "." in name and top.isidentifier() and importlib.util.find_spec(top) is not None


# ----------------------------------------------------------------------------- your own model: a factory spec

_TIMM_HUB_PREFIXES = ("hf-hub:", "hf_hub:", "local-dir:")


def is_model_spec(name: str) -> bool:
    """Whether `name` names a factory (`package.module:factory`, `file.py:factory`), not a timm model
    (timm names have no colon; its hub prefixes `hf-hub:` / `local-dir:` are refused by `load_model_factory`)."""
    return ":" in name


def _split_spec(spec: str) -> tuple[str, str]:
    if spec.startswith(_TIMM_HUB_PREFIXES):
        raise UserError(f"model {spec!r}: timm hub names are not taken here; give a timm model name with "
                        "--weights pretrained or PATH, or your own model as package.module:factory")
    source, _, attr = spec.rpartition(":")
    is_file = source.endswith(".py") or os.sep in source
    if not source or not all(part.isidentifier() for part in attr.split(".")) or not (
            is_file or all(part.isidentifier() for part in source.split("."))):
        raise UserError(f"model {spec!r} is neither a timm name nor a spec package.module:factory or "
                        "path/to/file.py:factory")
    return source, attr


def _import_error(source: str, error: Exception) -> UserError:
    text = str(error).strip().splitlines()
    return UserError(f"importing {source} raised {type(error).__name__}" + (f": {text[0]}" if text else ""))


def _load_file(source: str) -> object:
    """The module of a .py file, loaded once per process under a name unique to its resolved path (no
    __pycache__ is left beside it: a file named by path is often a script in a folder of the user's)."""
    path = Path(source).expanduser()
    if not path.is_file():
        raise UserError(f"model file {source} does not exist" if not path.exists() else
                        f"model file {source} is not a file")
    path = path.resolve()
    name = f"_analysis_model_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    if name in sys.modules:
        return sys.modules[name]
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path))
    sys.modules[name] = module   # before running it, as import does (dataclasses, pickling look it up)
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        module.__spec__.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001  the user's code: any failure is theirs, reported in one line
        del sys.modules[name]
        raise _import_error(source, e) from e
    finally:
        sys.dont_write_bytecode = saved
    return module


def _load_module(source: str) -> object:
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as e:
        if e.name and (source == e.name or source.startswith(e.name + ".")):
            raise UserError(f"no module named {e.name!r} (is the folder that holds {source.split('.')[0]} "
                            "on PYTHONPATH?)") from None
        raise _import_error(source, e) from e
    except Exception as e:  # noqa: BLE001  the user's code: any failure is theirs, reported in one line
        raise _import_error(source, e) from e


def load_model_factory(spec: str) -> Callable[..., nn.Module]:
    """The callable `spec` names (`package.module:factory` or `path/to/file.py:factory`; a dotted factory
    reads attributes, as entry points do), imported but not called. Every failure is a one-line UserError."""
    source, attr = _split_spec(spec)
    module = _load_file(source) if source.endswith(".py") or os.sep in source else _load_module(source)
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            public = [n for n in dir(obj) if not n.startswith("_") and callable(getattr(obj, n, None))]
            close = difflib.get_close_matches(part, public, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"{source} has no {attr!r} (model {spec!r}){hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserError(f"model factory {spec} is not callable (it is of type {type(obj).__name__})")
    return obj


def _names_parameter(fn: Callable, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):   # a builtin without a signature
        return False


def instantiate_model(name: str, **kwargs) -> nn.Module:
    """A freshly initialised model: `timm.create_model(name, pretrained=False, **kwargs)`, or the factory of a
    model spec called with `kwargs` (and `pretrained=False` when it names that parameter)."""
    if not is_model_spec(name):
        return timm.create_model(name, pretrained=False, **kwargs)
    factory = load_model_factory(name)
    if _names_parameter(factory, "pretrained"):
        kwargs = {"pretrained": False, **kwargs}
    try:
        model = factory(**kwargs)
    except Exception as e:  # noqa: BLE001  the user's code: any failure is theirs, reported in one line
        text = str(e).strip().splitlines()
        raise UserError(f"model factory {name} raised {type(e).__name__}" + (f": {text[0]}" if text else "")) from e
    if not isinstance(model, nn.Module):
        raise UserError(f"model factory {name} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _declare_input(model: nn.Module, name: str) -> None:
    """Give a factory's model the data config timm reads (`pretrained_cfg`): its own, its `default_cfg`,
    or none (then timm's defaults apply, and a note says so)."""
    if getattr(model, "pretrained_cfg", None):
        return
    if getattr(model, "default_cfg", None):
        model.pretrained_cfg = dict(model.default_cfg)
        return
    note(f"note: {name} declares no input size (model.pretrained_cfg['input_size']): it gets timm's default, "
         "3x224x224 with ImageNet mean/std (a command's --resolution, where it has one, sets the size)")


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
    """Build `name` (a timm name or a model spec, see the module docstring) with `weights`, in eval mode. User
    errors raise `UserError` / `CheckpointError`. A local checkpoint whose position embedding or patch kernel
    has another size is refused, unless `resample_pos_embed` (then timm's converter resamples it, and a note on
    stderr says what)."""
    check_model_name(name)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if weights == "pretrained" and is_model_spec(name):
        raise UserError(f"--weights pretrained is for timm models; {name} is your own factory: use --weights "
                        "random (its own initialisation, seeded) or --weights PATH (a local checkpoint)")
    torch.manual_seed(seed)
    if weights == "pretrained":
        model = _create_pretrained(name, **kwargs)
    else:
        model = instantiate_model(name, **kwargs)
        if is_model_spec(name):
            _declare_input(model, name)
        if weights != "random":
            _load_local(model, os.fspath(weights), resample=resample_pos_embed)
    return model.eval()


def _create_pretrained(name: str, **kwargs) -> nn.Module:
    """timm's hub weights: network once, then its cache (read without retrying a network that is not there)."""
    online = hub_reachable()
    try:
        with contextlib.nullcontext() if online else _hub_cache_only():
            return timm.create_model(name, pretrained=True, **kwargs)
    except RuntimeError as e:
        if "no pretrained weights" in str(e).lower():
            raise UserError(f"{name} has no pretrained weights in timm; use --weights random or "
                            f"--weights PATH (a local checkpoint)") from None
        raise
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError):
        raise UserError(f"pretrained weights for {name} are not cached and the hub is unreachable "
                        f"(offline?); use --weights random or --weights PATH (a local checkpoint)") from None


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
        if kwargs and is_model_spec(name) and not _names_parameter(load_model_factory(name), "img_size"):
            break   # a factory gets img_size only when it names that parameter
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
