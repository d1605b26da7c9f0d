"""Memory a model run needs, estimated before anything is allocated, so that a batch size, resolution or
width the machine cannot hold is refused in one line with the estimate instead of an allocator traceback
(or the kernel's OOM killer) minutes later.

The model is built on torch's `meta` device (shapes, no storage) and run on a meta input of the requested
shape; a dispatch mode records the bytes of every tensor an operator returns.

    >>> estimate_memory("deit_tiny_patch16_224", (8, 3, 224, 224))     # MemoryEstimate(params=..., ...)
    >>> check_memory("deit_tiny_patch16_224", (1, 3, 20000, 20000))    # UserError: ... needs about 8.8e+04 GB
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .errors import UserError, not_a_command

__all__ = ["MemoryEstimate", "estimate_memory", "available_bytes", "check_memory"]


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of a model run: its parameters, the largest tensor the forward makes, and all of them together."""

    params: int
    largest: int
    activations: int

    def peak(self, training: bool = False) -> int:
        """Inference keeps the weights and a few live tensors (3x the largest); training keeps every forward
        output for the backward pass and, with AdamW, three more copies of the weights (grads, 2 moments)."""
        return 4 * self.params + 2 * self.activations if training else self.params + 3 * self.largest


class _TensorBytes(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.largest = self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        for t, ret in zip(outs, func._schema.returns):
            if isinstance(t, torch.Tensor) and ret.alias_info is None:   # views and in-place results own no memory
                nbytes = t.numel() * t.element_size()
                self.largest, self.total = max(self.largest, nbytes), self.total + nbytes
        return out


def estimate_memory(name: str, input_shape: tuple, **kwargs) -> Optional[MemoryEstimate]:
    """The `MemoryEstimate` of timm model `name` or model spec (`core.models`; built with `kwargs`) on an
    input of `input_shape`; None when the model cannot run on the meta device (data-dependent code): then
    nothing can be said."""
    from .models import instantiate_model   # here: models imports this module

    try:
        with torch.device("meta"):
            model = instantiate_model(name, **kwargs).eval()
        params = sum(p.numel() * p.element_size() for p in model.parameters())
        counter = _TensorBytes()
        with torch.no_grad(), counter:
            model(torch.empty(input_shape, device="meta"))
    except Exception:  # noqa: BLE001  any failure on meta tensors says nothing about memory
        return None
    return MemoryEstimate(params, counter.largest, counter.total)


def available_bytes(device: torch.device | str = "cpu") -> int:
    """Memory this process could still allocate: free GPU memory on CUDA, else the kernel's MemAvailable
    (the physical memory free or reclaimable without swapping)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.3g} GB"


def check_memory(name: str, input_shape: tuple, *, device: torch.device | str = "cpu", training: bool = False,
                 **kwargs) -> Optional[MemoryEstimate]:
    """Refuse (UserError, one line with the estimate) a run of `name` on `input_shape` whose estimated peak
    (`MemoryEstimate.peak`) exceeds the memory available on `device`; returns the estimate (None: unknown).
    The meta device allocates nothing (counting a model too large for this machine is what it is for)."""
    if torch.device(device).type == "meta":
        return None
    est = estimate_memory(name, input_shape, **kwargs)
    if est is None:
        return None
    need, have = est.peak(training), available_bytes(device)
    if need > have:
        shape = "x".join(str(s) for s in input_shape)
        what = "training" if training else "a forward pass"
        raise UserError(f"{name} on a {shape} input needs about {_gb(need)} for {what} (weights {_gb(est.params)}, "
                        f"largest tensor {_gb(est.largest)}); {torch.device(device).type} has "
                        f"{_gb(have)} available: lower the batch size or resolution")
    return est


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
