"""What a lent GPU measured, read back: `results/gpu/<device-slug>/` as `benchmarks/gpu_evidence.py` writes it.

    >>> gpu = gpu_results()                 # {} until a GPU run has been committed
    >>> for slug, r in gpu.items():
    ...     r.title, r.throughput, r.breakdown, r.predictor, r.predictor_summary

Each folder holds `provenance.json` (device, driver, CUDA, torch, timm, python, date, host CPU, command),
`throughput.csv`, `breakdown.csv`, `predictor.csv`, `predictor_summary.json` and `predictor_machine.json`
(`GPU_FILES`). The figures draw a GPU panel per folder, titled with the device and date from its provenance,
so a folder whose provenance or columns are off is a one-line `UserError` naming the file, never a panel
drawn from half a result.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

from .errors import UserError, not_a_command
from .paths import project_root

__all__ = ["GpuResults", "gpu_results", "read_gpu_folder", "device_slug", "GPU_FILES", "PROVENANCE_FIELDS"]

PROVENANCE_FIELDS = ("device_name", "driver", "cuda", "torch", "timm", "python", "date", "host_cpu", "command")
GPU_FILES = {   # file -> the columns (CSV) or keys (JSON) every reader may rely on
    "throughput.csv": ("model", "resolution", "batch_size", "amp", "rounds", "images_per_s", "low", "high",
                       "a100_img_s", "ratio", "ratio_low", "ratio_high"),
    "breakdown.csv": ("model", "device", "batch_size", "resolution", "category", "memory_bound", "time_ms",
                      "share", "macs", "mem_bytes", "flops_per_byte"),
    "predictor.csv": ("model", "stages", "predicted_ms", "measured_ms", "error_pct", "roofline_ms",
                      "roofline_error_pct", "rho"),
    "predictor_summary.json": ("models", "batch_size", "median_abs_error_pct", "max_abs_error_pct",
                               "pooled_stage_rho", "calibration_s"),
}


def device_slug(name: str) -> str:
    """A folder name for a device: "NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3"."""
    slug = "".join(c if c.isalnum() else "-" for c in name.lower())
    return "-".join(part for part in slug.split("-") if part) or "device"


@dataclass(frozen=True)
class GpuResults:
    """One device's folder: its provenance and the tables it holds."""

    slug: str
    folder: Path
    provenance: dict
    throughput: pd.DataFrame
    breakdown: pd.DataFrame
    predictor: pd.DataFrame
    predictor_summary: dict

    @property
    def device(self) -> str:
        return self.provenance["device_name"]

    @property
    def date(self) -> str:
        """The day of the run (UTC), from the provenance's ISO timestamp."""
        return str(self.provenance["date"])[:10]

    @property
    def title(self) -> str:
        """What a panel is titled with: "NVIDIA H100 80GB HBM3, 2026-12-06"."""
        return f"{self.device}, {self.date}"


def _read_json(path: Path, keys) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: missing (a GPU result folder needs {', '.join(GPU_FILES)} and provenance.json)"
                        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(data).__name__}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise UserError(f"{path}: lacks {', '.join(missing)}")
    return data


def _read_csv(path: Path, columns) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise UserError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise UserError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing or df.empty:
        raise UserError(f"{path}: {'lacks columns ' + ', '.join(missing) if missing else 'has no rows'}")
    return df


def read_gpu_folder(folder: str | os.PathLike) -> GpuResults:
    """One `results/gpu/<slug>/` folder, checked: provenance fields present, every file with its columns."""
    folder = Path(folder)
    provenance = _read_json(folder / "provenance.json", PROVENANCE_FIELDS)
    if not str(provenance["device_name"]).strip() or len(str(provenance["date"])) < 10:
        raise UserError(f"{folder / 'provenance.json'}: device_name and an ISO date are required")
    tables = {name.split(".")[0]: (_read_csv if name.endswith(".csv") else _read_json)(folder / name, columns)
              for name, columns in GPU_FILES.items()}
    return GpuResults(folder.name, folder, provenance, **tables)


def gpu_results(root: Optional[str | os.PathLike] = None) -> dict[str, GpuResults]:
    """Every device folder under `<root>/gpu/` (root: the project's `results/`), by slug; {} when none exist."""
    base = (Path(root) if root is not None else project_root() / "results") / "gpu"
    if not base.is_dir():
        return {}
    return {d.name: read_gpu_folder(d) for d in sorted(base.iterdir()) if d.is_dir()}


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
