"""Where and how a measurement runs: device, CPU threads, the attention kernel.

The CLIs' `--device`, `--threads` and `--attention-backend` resolve here, after parsing.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from .errors import UserError, not_a_command
from .names import ATTENTION_BACKENDS

__all__ = ["resolve_device", "set_threads", "cpu_threads", "cpu_name", "attention_backend"]

_SDPA = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION,
         "efficient": SDPBackend.EFFICIENT_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda if available else cpu; asking for cuda without one is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda requested but no CUDA device is available (use --device cpu)")
    return torch.device(name)


def cpu_name() -> str:
    """The CPU's model name (Linux `/proc/cpuinfo`), else what `platform` knows of it."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        import platform
        return platform.processor() or platform.machine() or "CPU"


def set_threads(threads: Optional[int]) -> int:
    """Use `threads` CPU threads (None: leave torch's choice); returns the count in effect."""
    if threads is not None:
        if threads < 1:
            raise UserError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    return torch.get_num_threads()


@contextlib.contextmanager
def cpu_threads(threads: Optional[int]) -> Iterator[None]:
    """Run the block on `threads` CPU threads (None: torch's current setting), then restore it."""
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def attention_backend(name: str, device: Optional[torch.device] = None) -> contextlib.AbstractContextManager:
    """A context that forces the named SDPA backend (`auto`: leaves torch's choice alone)."""
    if name not in ATTENTION_BACKENDS:
        raise UserError(f"unknown attention backend {name!r}; choose from {', '.join(ATTENTION_BACKENDS)}")
    if device is not None and device.type == "cpu" and name in ("efficient", "cudnn"):
        raise UserError(f"--attention-backend {name} needs CUDA; on CPU choose auto, math or flash")
    return contextlib.nullcontext() if name == "auto" else sdpa_kernel(_SDPA[name])


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
