"""Pinning glibc malloc's thresholds, so that a CPU timing does not depend on what the process freed before.

glibc's malloc serves a block of at least its mmap threshold with fresh pages, which fault in one by one on
first touch, and gives the top of its heap back to the system once more than its trim threshold lies free
there. Both thresholds move with the process's history: the mmap threshold rises (up to 32 MiB) each time
such a block is freed, and the trim threshold with it. So the same model can run twice as slow in a fresh
process as after some large blocks were freed (issue 30: mobilenetv2_100 at batch 16 took 250 ms after the
calibration and 522-546 ms in a fresh process), and a calibration and a measurement that ran in different
states disagree for reasons no model of the kernels can see.

Pinning the thresholds alone does not settle it: a block above the mmap threshold is still cut from the heap
whenever a free chunk there is large enough, which after a model's forward pass (many smaller tensors freed and
coalesced) it often is. The same 1x1 convolution (64 -> 256 channels, 56 x 56, batch 16) took 73 ms with its
51 MB output mapped afresh in a new process and 23 ms after three forward passes of a model, under the same
pinned thresholds. So `pin_malloc()` also stops malloc mapping blocks at all (`mmap_max=0`): every block comes
from the heap, which is never trimmed, so after a warm-up call nothing a kernel allocates faults in, whatever
the process did before (the same convolution: 22.5 ms in a new process and 24.3 ms after the model). The
process keeps its peak memory until it exits. The calibrated predictor pins it before it calibrates and before
it measures, and records the setting in the machine description (descriptions saved before `mmap_max` was
pinned let malloc map blocks of at least the threshold: `GLIBC_MMAP_MAX`).

    >>> pin_malloc()   # {'mmap_threshold': 33554432, 'trim_threshold': 2147483647, 'mmap_max': 0}; None off glibc
"""
from __future__ import annotations

import ctypes
import ctypes.util
import platform
from typing import Optional

from ..core.errors import not_a_command

__all__ = ["pin_malloc", "malloc_pinned", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "GLIBC_MMAP_MAX"]

MMAP_THRESHOLD = 32 << 20        # glibc's largest dynamic mmap threshold on 64-bit systems
TRIM_THRESHOLD = (1 << 31) - 1   # the largest value mallopt takes (an int): never trim the heap
GLIBC_MMAP_MAX = 65536           # glibc's default limit on blocks mapped at once: mapping allowed
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4   # glibc's malloc.h
_pinned: Optional[dict] = None


def pin_malloc(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD,
               mmap_max: int = 0) -> Optional[dict]:
    """Fix glibc malloc's mmap and trim thresholds for the rest of the process (mallopt turns their dynamic
    adjustment off for good) and the number of blocks it may map at once (0: none, every block from the heap;
    `GLIBC_MMAP_MAX`: blocks of at least the mmap threshold mapped afresh), and return the setting; None where
    the C library is not glibc, which has no such settings. Raises ValueError when glibc refuses a value."""
    global _pinned
    if platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    for option, value in ((_M_MMAP_THRESHOLD, mmap_threshold), (_M_TRIM_THRESHOLD, trim_threshold),
                          (_M_MMAP_MAX, mmap_max)):
        if libc.mallopt(ctypes.c_int(option), ctypes.c_int(value)) != 1:
            raise ValueError(f"glibc's mallopt refused {value} for option {option}")
    _pinned = {"mmap_threshold": int(mmap_threshold), "trim_threshold": int(trim_threshold), "mmap_max": int(mmap_max)}
    return dict(_pinned)


def malloc_pinned() -> Optional[dict]:
    """The setting `pin_malloc` last made in this process, or None."""
    return None if _pinned is None else dict(_pinned)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
