"""Where and how a measurement runs: device, CPU threads, the attention kernel, and what every
timing row records of where it ran (`measured_on`), which figures stamp from the table (`measured_on_text`).

The CLIs' `--device`, `--threads` and `--attention-backend` resolve here, after parsing.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import pandas as pd
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from .errors import UserError, not_a_command
from .names import ATTENTION_BACKENDS

__all__ = ["resolve_device", "set_threads", "cpu_threads", "cpu_name", "attention_backend", "measured_on",
           "measured_on_text", "with_measured_on", "MEASURED_ON"]

MEASURED_ON = ("device_name", "threads", "torch")

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


def measured_on(device: torch.device | str = "cpu", threads: Optional[int] = None) -> dict:
    """{device_name, threads, torch} of a timing row: the GPU's name on CUDA, else the CPU's; the CPU
    threads in effect (`threads`, else torch's setting now); the torch version."""
    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {"device_name": name, "threads": int(threads if threads is not None else torch.get_num_threads()),
            "torch": torch.__version__}


def with_measured_on(rows, device: torch.device | str = "cpu", threads: Optional[int] = None):
    """`rows` (a dict or a DataFrame) with the `measured_on` columns it lacks appended; its own columns
    win (a CUDA throughput row keeps `threads` None)."""
    extra = {k: v for k, v in measured_on(device, threads).items() if k not in rows}
    return rows.assign(**extra) if hasattr(rows, "assign") else {**rows, **extra}


def measured_on_text(table) -> str:
    """What a figure stamps about where `table` (a DataFrame of timing rows) was measured, read from its
    `MEASURED_ON` columns (or the meso tables' `cpu`): "AMD EPYC 7B13, 1 thread, torch 2.9.1"; "mixed
    hosts: ..." when rows differ; "host not recorded" for a table measured before the columns existed."""
    if table is None or table.empty:
        return "host not recorded"
    name = "device_name" if "device_name" in table.columns else "cpu"
    if not {name, "threads", "torch"} <= set(table.columns):
        return "host not recorded"
    runs = table[[name, "threads", "torch"]].drop_duplicates().itertuples(index=False)
    texts = [", ".join([host] + ([f"{threads:g} thread{'s' if threads != 1 else ''}"] if pd.notna(threads) else [])
                       + [f"torch {version}"]) for host, threads, version in runs]
    return texts[0] if len(texts) == 1 else "mixed hosts: " + "; ".join(texts)


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
