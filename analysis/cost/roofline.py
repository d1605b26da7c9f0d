"""Roofline: from macs and bytes per op to a predicted latency per stage, checked against the clock.

    >>> machine = measure_machine("cpu", threads=1)           # GEMM peak, stream bandwidth, per-op overhead
    >>> rl = Roofline(model, torch.randn(16, 3, 224, 224), machine)
    >>> rl.ops()                    # every aten op placed on the roofline, with its predicted time
    >>> rl.by_stage(), rl.by_module(), rl.predicted_ms()
    >>> stages = validate_roofline(["deit_tiny_patch16_224", "shvit_s4"], machine)   # predicted vs measured per stage
    >>> roofline_summary(stages)    # Spearman rho per model and pooled, whole-model error

The machine (`Machine`) is three numbers measured once, with the thread setting the latency is
timed with: attainable compute `peak_flops` (FLOP/s, 2 per MAC, the best of repeated square fp32
GEMMs), memory bandwidth `bandwidth` (bytes/s, the best of a stream copy and a triad on arrays far
larger than the caches), and `overhead_s`, the time one aten op costs beyond its arithmetic and
traffic (Python module call, dispatch, kernel launch): the slope of a least-squares line through
the measured time of chains of tiny Linear + ReLU blocks against their op count, their roofline
time removed. Nothing is fitted on the models being predicted.

Every op that `CostAnalysis` records (the BN-fused model, one record per aten op, attention as one
kernel) is predicted to take

    max(2 * macs / peak_flops, mem_bytes / bandwidth) + overhead_s

and a stage (module) the sum over its ops. Arithmetic intensity is `flops_per_byte` = 2 * macs /
mem_bytes, the lab's one intensity unit; an op is memory-bound on this machine when its intensity
is below the ridge point `peak_flops / bandwidth`. Ops keep the runtime-breakdown categories
(`analysis.cost.breakdown.categorize`), so the figure marks them as the breakdown figure does.

Where the model is wrong, by construction: small GEMMs and convolutions run far below the big
GEMM's peak (packing, short loops), depthwise convolutions and attention kernels too; traffic is
compulsory traffic at DRAM bandwidth, while a batch-1 activation lives in cache and moves faster;
fvcore's convention counts 0 macs for element-wise ops, softmax and activations, so they are
priced by bytes alone; on CUDA launches overlap with kernels, so adding the overhead overcounts
when the GPU is busy. `roofline_summary` measures how much that matters per model.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from scipy.stats import spearmanr
from tqdm import tqdm

from ..core.errors import UserError, not_a_command
from ..core.files import write_json
from ..core.models import create_model_at, fuse_model
from ..core.names import ROOFLINE_MODELS
from ..core.runtime import cpu_name, with_measured_on
from .breakdown import MEMORY_BOUND, categorize
from .counter import CostAnalysis
from .latency import model_latency, stage_latency
from .timing import time_calls

MAX_MACHINE_BYTES = 1 << 16   # a machine description is a few hundred bytes
MAX_THREADS = 1 << 16         # more threads than any machine has

__all__ = ["Machine", "read_machine_json", "measure_machine", "fit_overhead", "Roofline", "model_roofline", "measure_stage_latency",
           "roofline_stages", "validate_roofline", "roofline_summary", "ROOFLINE_MODELS"]

_CHAIN_LENGTHS = (8, 32, 128)  # blocks per calibration chain for the overhead fit


@dataclass(frozen=True)
class Machine:
    """What the roofline needs to know of a machine (see the module docstring)."""

    name: str
    device: str
    threads: Optional[int]
    peak_flops: float   # FLOP/s (2 per MAC), attainable by a large GEMM
    bandwidth: float    # bytes/s, stream copy / triad
    overhead_s: float   # seconds per dispatched aten op

    def __post_init__(self):
        for field in ("peak_flops", "bandwidth"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise UserError(f"machine {field} must be a finite number above 0, got {value!r}")
        if not (isinstance(self.overhead_s, (int, float)) and np.isfinite(self.overhead_s) and self.overhead_s >= 0):
            raise UserError(f"machine overhead_s must be a finite number of at least 0, got {self.overhead_s!r}")

    @property
    def ridge(self) -> float:
        """Intensity (FLOP per byte) above which an op is compute-bound."""
        return self.peak_flops / self.bandwidth

    def attainable(self, flops_per_byte):
        """Attainable FLOP/s at an intensity: min(peak, bandwidth * intensity)."""
        return np.minimum(self.peak_flops, self.bandwidth * np.asarray(flops_per_byte, dtype=float))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Machine":
        fields = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(d, dict) or fields - set(d):
            raise UserError(f"a machine description needs the fields {', '.join(sorted(fields))}")
        threads = d["threads"]
        if isinstance(threads, float) and (np.isnan(threads) or threads.is_integer()):   # read back from a table
            threads = None if np.isnan(threads) else int(threads)
        if threads is not None and not (isinstance(threads, int) and not isinstance(threads, bool)
                                        and 1 <= threads <= MAX_THREADS):
            raise UserError(f"a machine description's threads must be a whole number from 1 to {MAX_THREADS} or "
                            f"null, got {str(threads)[:20]}")
        if not isinstance(d["name"], str) or d["device"] not in ("cpu", "cuda"):
            raise UserError("a machine description's name must be a string and its device cpu or cuda, got "
                            f"{d['name']!r} / {d['device']!r}")
        numbers = {k: d[k] for k in ("peak_flops", "bandwidth", "overhead_s")}
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in numbers.values()):
            raise UserError("a machine description's peak_flops, bandwidth and overhead_s must be numbers")
        try:
            values = {k: float(v) for k, v in numbers.items()}
        except OverflowError:   # a JSON integer of hundreds of digits
            raise UserError("a machine description's peak_flops, bandwidth and overhead_s must be finite numbers "
                            "(one is too large for a float)") from None
        return cls(d["name"], d["device"], threads, **values)

    def save(self, path) -> None:
        write_json(self.to_dict(), path)

    @classmethod
    def load(cls, path) -> "Machine":
        """Read a machine description: a regular JSON file of at most `MAX_MACHINE_BYTES` (`read_machine_json`),
        validated field by field (`from_dict`)."""
        return cls.from_dict(read_machine_json(path, MAX_MACHINE_BYTES))


def read_machine_json(path, max_bytes: int):
    """The JSON in a machine description file: a regular file of at most `max_bytes` (a FIFO, a device or a
    huge file is refused before it is read); any failure is a one-line `UserError`."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"machine description {path} is not a regular file")
        if info.st_size > max_bytes:
            raise UserError(f"machine description {path} has {info.st_size} bytes, more than the {max_bytes} of "
                            "this kind of description (a calibrated one goes with --calibrated)")
        return json.loads(Path(path).read_text())
    except UserError:
        raise
    except FileNotFoundError:
        raise UserError(f"machine description {path} does not exist") from None
    except (OSError, ValueError, RecursionError) as e:   # ValueError: bad JSON, bad UTF-8, too many digits
        raise UserError(f"machine description {path} is not readable JSON ({type(e).__name__})") from None


# ----------------------------------------------------------------------------- measuring a machine

def _best_seconds(fn, device: torch.device, seconds: float, min_repeats: int = 3) -> float:
    """Best time of `fn()` over repeats lasting about `seconds` (after one untimed call)."""
    return min(time_calls(fn, device=device, warmup=1, window_s=seconds, min_calls=min_repeats))


def _gemm_flops(device, n: int, seconds: float) -> float:
    a, b = (torch.randn(n, n, device=device) for _ in range(2))
    c = torch.empty(n, n, device=device)
    return 2 * n ** 3 / _best_seconds(lambda: torch.mm(a, b, out=c), device, seconds)


def _stream_bandwidth(device, n: int, seconds: float) -> float:
    a, b, c = (torch.rand(n, device=device) for _ in range(3))
    copy = 2 * 4 * n / _best_seconds(lambda: a.copy_(b), device, seconds)
    triad = 3 * 4 * n / _best_seconds(lambda: torch.add(b, c, alpha=3.0, out=a), device, seconds)
    return max(copy, triad)


def _chain(blocks: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(*(nn.Sequential(nn.Linear(8, 8), nn.ReLU()) for _ in range(blocks))).eval()


def fit_overhead(n_ops: Sequence[float], seconds: Sequence[float]) -> float:
    """Seconds per op: the least-squares slope of `seconds` against `n_ops` (at least 0)."""
    n, s = np.asarray(n_ops, dtype=float), np.asarray(seconds, dtype=float)
    if len(n) < 2 or np.ptp(n) == 0:
        raise ValueError("fit_overhead needs at least two different op counts")
    slope = np.polyfit(n, s, 1)[0]
    return float(max(slope, 0.0))


def _calibrate_overhead(device, machine: Machine, repeats: int) -> float:
    n_ops, seconds = [], []
    for blocks in _CHAIN_LENGTHS:
        model, x = _chain(blocks).to(device), torch.randn(1, 8, device=device)
        ops = Roofline(model, x, machine, fuse=False).ops()
        n_ops.append(len(ops))
        work = float((ops["compute_s"].combine(ops["memory_s"], max)).sum())
        seconds.append(model_latency(model, x, repeats=repeats, warmup=3) / 1e3 - work)
    return fit_overhead(n_ops, seconds)


def measure_machine(device="cpu", threads: Optional[int] = 1, *, gemm_size: Optional[int] = None,
                    stream_elements: Optional[int] = None, seconds: float = 0.3, repeats: int = 30) -> Machine:
    """Measure `device` with `threads` CPU threads (None: torch's current setting): GEMM peak, stream
    bandwidth and per-op overhead. Sizes default to 1024² GEMM / 2**25 floats on CPU (8192² / 2**28 on
    CUDA); `seconds` per micro-benchmark, `repeats` timed passes per calibration chain."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    old = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            peak = _gemm_flops(device, gemm_size or (8192 if cuda else 1024), seconds)
            bandwidth = _stream_bandwidth(device, stream_elements or (2 ** 28 if cuda else 2 ** 25), seconds)
            partial = Machine("", device.type, threads, peak, bandwidth, 0.0)
            overhead = _calibrate_overhead(device, partial, repeats)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(old)
    name = torch.cuda.get_device_name(device) if cuda else f"{cpu_name()}, {used} thread(s)"
    return Machine(name, device.type, None if cuda else used, peak, bandwidth, overhead)


# ----------------------------------------------------------------------------- predicting

_SUMS = ["macs", "mem_bytes", "compute_s", "memory_s", "overhead_s", "predicted_s"]


class Roofline:
    """Every op of one forward pass of `model` on `inputs` placed on `machine`'s roofline.

    Args mirror `CostAnalysis` (`fuse`: analyse a BN-fused copy, the default; `stages`: a StageMap);
    `cost`, a `CostAnalysis` already made of this pass, is priced instead of counting the model again.
    `ops()` adds to `CostAnalysis.ops()` the op's category, intensity, attainable FLOP/s, its compute,
    memory, overhead and predicted seconds, and what bounds it (`compute`, `memory`, or `overhead` for
    ops that move no bytes); `by_stage()` / `by_module()` sum them; `predicted_ms()` is the total.
    """

    def __init__(self, model: nn.Module, inputs, machine: Machine, *, fuse: bool = True, stages=None,
                 cost: Optional[CostAnalysis] = None):
        self.machine = machine
        self.cost = cost if cost is not None else CostAnalysis(model, inputs, fuse=fuse, stages=stages)

    def ops(self) -> pd.DataFrame:
        return self._ops.copy()

    @functools.cached_property
    def _ops(self) -> pd.DataFrame:
        m, df = self.machine, self.cost.ops()
        df["category"] = df["op"].map(categorize)
        df["memory_bound_category"] = df["category"].map(MEMORY_BOUND)
        flops, mem = 2.0 * df["macs"].astype(float), df["mem_bytes"].astype(float)
        df["flops_per_byte"] = np.where(mem > 0, flops / mem.where(mem > 0, 1.0), np.nan)
        df["attainable_flops"] = np.where(mem > 0, m.attainable(df["flops_per_byte"].fillna(0.0)), np.nan)
        df["compute_s"] = flops / m.peak_flops
        df["memory_s"] = mem / m.bandwidth
        df["overhead_s"] = m.overhead_s
        df["predicted_s"] = np.maximum(df["compute_s"], df["memory_s"]) + m.overhead_s
        df["bound"] = np.select([mem <= 0, df["compute_s"] > df["memory_s"]], ["overhead", "compute"], "memory")
        return df

    def _summed(self, df: pd.DataFrame, key: str, order: Iterable[str]) -> pd.DataFrame:
        df = df.assign(n_ops=1, memory_bound_s=np.where(df["bound"] == "memory", df["predicted_s"], 0.0))
        g = df.groupby(key, sort=False)[["n_ops"] + _SUMS + ["memory_bound_s"]].sum().reindex(list(order))
        g = g.fillna(0)
        g["n_ops"] = g["n_ops"].astype(int)
        g["flops_per_byte"] = np.where(g["mem_bytes"] > 0, 2 * g["macs"] / g["mem_bytes"].where(g["mem_bytes"] > 0, 1),
                                       np.nan)
        g["attainable_flops"] = np.where(g["mem_bytes"] > 0, self.machine.attainable(g["flops_per_byte"].fillna(0)),
                                         np.nan)
        for c in ("compute_s", "memory_s", "overhead_s", "predicted_s", "memory_bound_s"):
            g[c.replace("_s", "_ms")] = g.pop(c) * 1e3
        return g.reset_index()

    def by_stage(self) -> pd.DataFrame:
        """Per stage: n_ops, macs, mem_bytes, flops_per_byte, compute / memory / overhead / predicted ms and
        memory_bound_ms (the predicted time of the ops that are memory-bound on this machine)."""
        return self._summed(self.ops(), "stage", self.cost.stage_map.names)

    def by_module(self, depth: Optional[int] = None) -> pd.DataFrame:
        """Per module (inclusive of its children; "" is the whole model), down to `depth` levels."""
        ops = self.ops()
        rows = []
        for name, _ in self.cost.model.named_modules():
            level = name.count(".") + bool(name)
            if depth is not None and level > depth:
                continue
            inside = (ops["module"].eq(name) | ops["module"].str.startswith(name + ".")) if name \
                else ops["module"].notna()
            row = self._summed(ops[inside].assign(module=name), "module", [name]).iloc[0].to_dict()
            rows.append({**row, "depth": level})
        return pd.DataFrame(rows)

    def predicted_ms(self) -> float:
        return float(self.ops()["predicted_s"].sum() * 1e3)


# ----------------------------------------------------------------------------- validating

def model_roofline(name: str, machine: Machine, *, batch_size: int = 16, resolution: Optional[int] = None,
                   device="cpu", seed: int = 0, built: Optional[tuple] = None) -> Roofline:
    """The roofline of model `name` (random weights, BN folded in place) at `resolution` (default: its
    pretrained config) on a seeded batch; `.cost.model` / `.cost.inputs` are what to time. `built`: what
    `create_model_at(name, resolution, ...)` returned, when the model was built (and so checked) already."""
    model, (c, h, w) = built if built is not None else create_model_at(name, resolution, seed=seed,
                                                                       batch_size=batch_size, device=device)
    model = fuse_model(model, inplace=True).to(device)
    x = torch.randn(batch_size, c, h, w, generator=torch.Generator().manual_seed(seed)).to(device)
    return Roofline(model, x, machine, fuse=False)


def measure_stage_latency(rooflines: Mapping[str, Roofline], *, repeats: int = 10, warmup: int = 2,
                          progress: bool = True) -> pd.DataFrame:
    """Measured latency per stage of each named roofline's model on its input (`latency.stage_latency`,
    with torch's current thread setting): model, stage, measured_ms, spread_ms (interquartile range),
    model_measured_ms (the median of unprobed whole passes) and where it ran (`core.runtime.measured_on`)."""
    frames = []
    for name, rl in tqdm(rooflines.items(), desc="latency", unit="model", file=sys.stderr, disable=not progress):
        lat = stage_latency(rl.cost.model, rl.cost.inputs[0], repeats=repeats, warmup=warmup, stages=rl.cost.stage_map)
        lat = lat.rename(columns={"latency_ms": "measured_ms"})
        lat.insert(0, "model", name)
        lat["model_measured_ms"] = lat.attrs["model_latency_ms"]
        frames.append(with_measured_on(lat, rl.cost.inputs[0].device))
    return pd.concat(frames, ignore_index=True)


def roofline_stages(rooflines: Mapping[str, Roofline], latency: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Predicted per stage of each named roofline (`Roofline.by_stage`, with model, batch_size, resolution,
    device first), joined with a `measure_stage_latency` table when given (and achieved_flops, the
    stage's FLOP/s at its measured time)."""
    frames = []
    for name, rl in rooflines.items():
        df = rl.by_stage()
        x = rl.cost.inputs[0]
        for col, value in (("device", x.device.type), ("resolution", x.shape[-1]), ("batch_size", x.shape[0]),
                           ("model", name)):
            df.insert(0, col, value)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    if latency is not None:
        measured = latency[["model", "stage", "measured_ms", "spread_ms", "model_measured_ms"]]
        out = out.merge(measured, on=["model", "stage"], how="left", validate="one_to_one")
        if out["measured_ms"].isna().any():
            missing = out.loc[out["measured_ms"].isna(), ["model", "stage"]].astype(str).agg(" ".join, axis=1)
            raise UserError(f"no measured latency for {', '.join(missing)}")
        out["achieved_flops"] = 2 * out["macs"] / (out["measured_ms"] / 1e3)
    return out


def validate_roofline(names: Iterable[str] = ROOFLINE_MODELS, machine: Optional[Machine] = None, *,
                      batch_size: int = 16, resolution: Optional[int] = None, device="cpu", repeats: int = 10,
                      warmup: int = 2, seed: int = 0, measure: bool = True, progress: bool = True) -> pd.DataFrame:
    """`roofline_stages` of BN-fused models by name on `machine` (default: measured now on `device` with
    torch's current thread setting), measured with `measure_stage_latency` unless `measure=False`."""
    machine = machine or measure_machine(device, threads=None)
    rooflines = {name: model_roofline(name, machine, batch_size=batch_size, resolution=resolution, device=device,
                                      seed=seed)
                 for name in tqdm(list(names), desc="counting", unit="model", file=sys.stderr, disable=not progress)}
    latency = measure_stage_latency(rooflines, repeats=repeats, warmup=warmup, progress=progress) if measure else None
    return roofline_stages(rooflines, latency)


def _rho(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def roofline_summary(stages: pd.DataFrame) -> pd.DataFrame:
    """Per model, and pooled over all stages of all models ("all"): number of stages, Spearman rho of
    predicted vs measured stage time (`rho_roofline`) and, for comparison, of macs vs measured
    (`rho_macs`), the whole-model predicted and measured ms, `error_pct` = 100 (predicted / measured - 1) and
    `median_abs_error_pct`, the median over models of |error| in %."""
    rows = []
    for model, g in list(stages.groupby("model", sort=False)) + [("all", stages)]:
        predicted = g.groupby("model", sort=False)["predicted_ms"].sum()
        measured = g.groupby("model", sort=False)["model_measured_ms"].first()
        rows.append({"model": model, "stages": len(g),
                     "rho_roofline": _rho(g["predicted_ms"], g["measured_ms"]),
                     "rho_macs": _rho(g["macs"], g["measured_ms"]),
                     "predicted_ms": float(predicted.sum()), "measured_ms": float(measured.sum()),
                     "error_pct": float(100 * (predicted.sum() / measured.sum() - 1)),
                     "median_abs_error_pct": float(100 * np.median(np.abs(predicted / measured - 1)))})
    return pd.DataFrame(rows)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
