"""Where a benchmark keeps what it printed: `results/benchmarks/<script>[-<variant>].json` (with `--save`), together
with what it was measured on (host CPU or GPU, threads, allocator, torch, date, command), so that a
figure quoted in the README names its source and the README test can check the quote against it."""
from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

import torch

from analysis.core.files import write_json
from analysis.core.runtime import cpu_name
from analysis.cost.allocator import malloc_pinned

RESULTS = Path(__file__).resolve().parents[1] / "results" / "benchmarks"
_ALLOCATOR_VARIABLES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "LD_PRELOAD")


def allocator() -> str:
    """The allocator the process runs with: glibc's default unless one of its tunables (or a preload) is set or
    its thresholds were pinned in the process (`analysis.cost.allocator.pin_malloc`)."""
    tuned = {k: os.environ[k] for k in _ALLOCATOR_VARIABLES if k in os.environ}
    tuned.update({f"pinned {k}": v for k, v in (malloc_pinned() or {}).items()})
    return "glibc default" if not tuned else "glibc with " + ", ".join(f"{k}={v}" for k, v in sorted(tuned.items()))


def save_result(script: str, figures: dict, *, rounds: int, threads: int, device: str = "cpu",
                variant: str = "") -> Path:
    """Write `figures` (name -> number or [value, low, high]) of the benchmark `script` (its `__file__`) to
    `<script>.json`, or `<script>-<variant>.json` for a variant run (e.g. another allocator) kept beside it."""
    record = {
        "benchmark": Path(script).name, "variant": variant,
        "command": " ".join(["python", f"benchmarks/{Path(script).name}", *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "host": torch.cuda.get_device_name() if device == "cuda" else cpu_name(),
        "cpu": cpu_name(), "cores": os.cpu_count(), "threads": threads, "allocator": allocator(),
        "torch": torch.__version__, "python": platform.python_version(), "rounds": rounds, "figures": figures,
    }
    path = RESULTS / f"{Path(script).stem}{'-' + variant if variant else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(record, path)
    print(f"saved {path.relative_to(RESULTS.parents[1])}")
    return path
