"""Microbenchmarks that teach the latency predictor how fast each kind of kernel runs on this machine.

    >>> machine = calibrate("cpu", threads=1)        # 1-1.5 minutes: ~1,600 timed kernels, 32 timed networks
    >>> machine.save("cpu.json"); CalibratedMachine.load("cpu.json")
    >>> machine.seconds(kernel)                     # one op's predicted time (kernels.Kernel)

What is timed (`microbenchmarks.kernel_plan`, seeded, the same on every run): GEMMs (linear layers and batched matmuls)
and convolutions (dense, grouped, depthwise, stems, patchify, transposed) of shapes drawn from the ranges vision
models use; fused attention over sequence lengths and head dims; and every common bytes-moving op
(activations, element-wise, norms, softmax, copies of contiguous and permuted tensors, concatenation,
padding, pooling, reductions) at working sets from a few KiB (in cache) to 128 MiB (DRAM, and outputs past malloc's mmap threshold). Each
microbenchmark is described by the same `kernels.describe` that describes a model's ops, and timed
alone after a warm-up call (the median of at least 3 calls); a bytes-moving kernel much slower than its
kind's kernels of nearby size is timed once more, and that time kept (`slow_outliers`). Then `overhead_s`, what one op costs
inside a model beyond its kernel (module calls, Python), is the slope of the measured minus the
predicted time of chains of tiny Linear + ReLU blocks against their op count, as for the roofline. Last, since
held-out set 7, `context`: how much slower kernels run inside a network than alone, one factor fitted on small
random networks of common blocks (`context_networks.network_plan`), each timed whole against the sum of its
kernels' alone prices (`context_networks.fit_context`). Inside a network an op's weights and output buffer were
evicted by the ops before it, a norm reads a map a convolution just wrote, and Python runs between ops; a shape
says none of that. One factor, not one per kernel class: 24 to 40 such networks did not tell a shaped kernel's
factor from a bytes-moving one's (two calibrations of one host gave 1.12 / 1.38 and 1.24 / 0.89), and one factor
cross-validated as well over the networks.
On the CPU, calibration first pins malloc (`allocator.pin_malloc`, for the rest of the process) and records the
setting in `malloc`: time the models it predicts under the same pin, or their large tensors page-fault in a way
the calibration never saw. Since held-out set 4 the pin maps no block afresh (`mmap_max` 0), so nothing faults
after a warm-up call and `fault_s_per_byte` is 0. Descriptions saved before then let malloc map blocks of 32 MiB
and more afresh: `fault_s_per_byte`, the cost of faulting in such a block's pages, was a fill of a new block
minus a fill of a reused one, each microbenchmark's rate net of it, and a prediction added it back per byte of
fresh output (`Kernel.fresh_bytes`); they also let the `fresh` flag shift the rate (`fresh_offset`), an offset
learnt from a few of the largest kernels. Both over-priced large outputs inside models, whose freed tensors leave
heap chunks big enough to serve them without faults. No model the predictor is scored on is ever run here.

A prediction interpolates log2 of the achieved rate (flops/s, or bytes/s for bytes-moving kinds) between the
calibrated kernels of the op's kind (`rate_model.RateModel`): for GEMM, convolutions and attention an additive
model over their shape features corrected by the nearest kernels' residuals, for bytes-moving kinds the two
calibrated sizes around the op's. An in-place op never timed borrows its out-of-place kind, any other kind
never timed the one of its runtime-breakdown category (`PREDICTOR_FALLBACK`).
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from ..core.errors import UserError, not_a_command
from ..core.files import write_json
from ..core.runtime import cpu_name
from .allocator import GLIBC_MMAP_MAX, pin_malloc
from .breakdown import categorize
from .context_networks import CONTEXT_BOUNDS, NETWORKS, measure_context
from .kernels import Kernel
from .microbenchmarks import BYTE_SIZES, kernel_plan
from .rate_model import NEIGHBOURS, RateModel
from .roofline import Machine
from .timing import time_calls

__all__ = ["CalibratedMachine", "calibrate", "median_seconds", "slow_outliers", "PREDICTOR_FALLBACK",
           "MAX_CALIBRATION_BYTES"]

MAX_CALIBRATION_BYTES = 1 << 22   # a calibrated machine description is ~200 KB
PREDICTOR_FALLBACK = {"conv/matmul": "aten.clone", "reshape/copy": "aten.clone", "element-wise": "aten.add",
                      "normalisation": "aten.native_layer_norm", "softmax": "aten._softmax",
                      "activation": "aten.silu", "other": "aten.add"}
# distance weights of the features (kernels.describe): a layout flag or a kernel window counts more than a size
_WEIGHTS = {"conv": (1, 1, 1, 1, 8, 8, 8, 4, 8), "dwconv": (1, 1, 1, 8, 8, 8, 4, 8), "gemm": (1, 1, 1, 1, 4, 8),
            "attention": (1, 1, 1, 1, 8)}
_BYTES_WEIGHTS = (1, 1, 8, 8, 8, 2, 8)   # the sixth: a row (softmax, norms) or a pooling window
_FRESH_COLUMN = {"conv": 8, "dwconv": 7, "gemm": 5, "attention": 4}   # of the `fresh` flag; 4 in bytes-moving kinds
_LATER_FIELDS = {"malloc", "fault_s_per_byte", "fresh_offset", "context"}   # descriptions saved before these lack them


@dataclass
class CalibratedMachine:
    """A machine as the calibrated predictor knows it: per kernel kind, the calibrated kernels' features and
    log2 achieved rates; `dispatch_s`, the time of an op that moves no bytes; `overhead_s`, the extra cost of
    an op inside a model; `cache_bytes`, the working set up to which a copy runs from cache."""

    name: str
    device: str
    threads: Optional[int]
    peak_flops: float
    dispatch_s: float
    overhead_s: float
    cache_bytes: float
    samples: dict = field(default_factory=dict)   # kind -> {"features": [[...]], "log2_rate": [...]}
    calibration_s: float = 0.0
    malloc: Optional[dict] = None   # the allocator setting it was calibrated under (`allocator.pin_malloc`)
    fault_s_per_byte: float = 0.0   # seconds per byte of output mapped afresh (page faults), priced apart
    fresh_offset: bool = False   # whether the rates take the `fresh` flag as a feature (see `_rate_features`)
    context: Optional[dict] = None   # {"factor": f, "networks": [[kernel_s, rest_s, measured_s], ...]}: in-network
    #                        vs alone (`context_networks.fit_context`); None (calibrated before held-out set 7): 1

    def __post_init__(self):
        self._models = {}
        for kind, v in self.samples.items():   # bytes-moving kinds: between the two calibrated sizes around a query
            shaped = kind in _WEIGHTS
            weights = self._rate_features(kind, [_WEIGHTS.get(kind, _BYTES_WEIGHTS)])[0]
            self._models[kind] = RateModel(self._rate_features(kind, v["features"]), v["log2_rate"], weights,
                                           additive=shaped, neighbours=NEIGHBOURS if shaped else 2)

    def _rate_features(self, kind: str, rows) -> np.ndarray:
        """The columns of `rows` (kernel features, or their distance weights) that a rate depends on: all of them
        with `fresh_offset` (descriptions calibrated before held-out set 4, whose rates carried the `fresh` flag as
        an offset of log rate), else all but the flag: fresh pages are priced per byte (`fault_s_per_byte`) alone."""
        rows = np.asarray(rows, dtype=float).reshape(len(rows), -1)
        return rows if self.fresh_offset else np.delete(rows, _FRESH_COLUMN.get(kind, 4), axis=1)

    def kind_for(self, kernel: Kernel) -> str:
        """The calibrated kind that prices `kernel`: its own, an in-place op's out-of-place one, or its
        runtime-breakdown category's stand-in."""
        for kind in (kernel.kind, kernel.kind.rstrip("_")):
            if kind in self._models:
                return kind
        return PREDICTOR_FALLBACK[categorize(kernel.kind)]

    def rate(self, kernel: Kernel) -> float:
        """Achieved work per second (flops/s or bytes/s) of `kernel`, interpolated between calibrated kernels."""
        kind = self.kind_for(kernel)
        return float(2.0 ** self._models[kind](self._rate_features(kind, [kernel.features])[0]))

    def seconds(self, kernel: Kernel) -> float:
        """Predicted time of `kernel` alone: its work at its interpolated rate plus the page faults of its fresh
        output, or the dispatch of a free op."""
        if kernel.kind == "free" or kernel.work <= 0:
            return self.dispatch_s
        return kernel.work / self.rate(kernel) + kernel.fresh_bytes * self.fault_s_per_byte

    def context_factor(self, kernel: Kernel) -> float:
        """How much slower `kernel` runs inside a network than alone: the calibrated `context` factor; 1 for a free
        op, and for descriptions calibrated without one."""
        if self.context is None or kernel.kind == "free" or kernel.work <= 0:
            return 1.0
        return float(self.context["factor"])

    def copy_rate(self, mem_bytes: float) -> float:
        """Bytes/s of a contiguous copy into an existing tensor moving `mem_bytes` (no allocation): the memory
        roof at that working set."""
        features = (float(np.log2(max(mem_bytes, 1.0))), 10.0, 1.0, 0.0, 0.0)
        return self.rate(Kernel("aten.copy_", features, mem_bytes))

    def pin_malloc(self) -> Optional[dict]:
        """Pin this process's malloc as it was pinned when this machine was calibrated (`allocator.pin_malloc`),
        before timing the models its predictions are compared with; nothing when it was not pinned."""
        return pin_malloc(**{"mmap_max": GLIBC_MMAP_MAX, **self.malloc}) if self.malloc else None

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "CalibratedMachine":
        fields = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(d, dict) or not fields - _LATER_FIELDS <= set(d) <= fields:   # older ones lack them
            raise UserError(f"a calibrated machine description has the fields {', '.join(sorted(fields))}")
        d = {"fresh_offset": True, **d}   # descriptions saved without it carried the flag as an offset
        if type(d["fresh_offset"]) is not bool:
            raise UserError("a calibrated machine description's fresh_offset is true or false")
        context = d.get("context")
        if context is not None and not (isinstance(context, dict) and type(context.get("factor")) in (int, float)
                                        and CONTEXT_BOUNDS[0] <= context["factor"] <= CONTEXT_BOUNDS[1]):
            raise UserError(f"a calibrated machine description's context is null or holds a number factor within "
                            f"{CONTEXT_BOUNDS[0]}-{CONTEXT_BOUNDS[1]}")
        malloc = d.get("malloc")
        thresholds = {"mmap_threshold", "trim_threshold"}   # and mmap_max, since it is pinned too
        if malloc is not None and not (isinstance(malloc, dict) and set(malloc) - {"mmap_max"} == thresholds
                                       and all(type(v) is int and v >= (k != "mmap_max") for k, v in malloc.items())):
            raise UserError("a calibrated machine description's malloc is null or holds the positive integers "
                            "mmap_threshold and trim_threshold, and mmap_max (at least 0)")
        samples = d["samples"]
        ok = isinstance(samples, dict) and all(
            isinstance(v, dict) and isinstance(v.get("log2_rate"), list) and isinstance(v.get("features"), list)
            and len(v["features"]) == len(v["log2_rate"]) > 0 for v in samples.values())
        if not ok or not set(PREDICTOR_FALLBACK.values()) | {"aten.copy_", "gemm"} <= set(samples):
            raise UserError("a calibrated machine description's samples must hold, per kernel kind, equally long "
                            "lists of features and log2_rate, for gemm, aten.copy_ and the fallback kinds at least")
        try:
            arrays = [np.asarray(a, dtype=float) for v in samples.values() for a in (v["features"], v["log2_rate"])]
            numbers = np.asarray([d[k] for k in ("peak_flops", "dispatch_s", "overhead_s", "cache_bytes")] +
                                 [d.get("fault_s_per_byte", 0.0)], float)
        except (TypeError, ValueError, OverflowError):   # ragged lists, strings, huge integers
            raise UserError("a calibrated machine description's samples and numbers must be numbers") from None
        if not all(np.isfinite(a).all() and a.ndim <= 2 for a in arrays) or not np.isfinite(numbers).all() \
                or numbers[0] <= 0 or (numbers[1:] < 0).any():
            raise UserError("a calibrated machine description's samples and numbers must be finite (peak_flops "
                            "above 0, the others at least 0)")
        return cls(**d)

    def save(self, path) -> None:
        write_json(self.to_dict(), path)

    @classmethod
    def load(cls, path) -> "CalibratedMachine":
        """Read a calibrated machine description (`--save-machine`): a regular JSON file of at most
        `MAX_CALIBRATION_BYTES`, validated (`from_dict`)."""
        from .roofline import read_machine_json

        return cls.from_dict(read_machine_json(path, MAX_CALIBRATION_BYTES))

    def dram_copy_rate(self) -> float:
        """Bytes/s of the largest copy this machine was calibrated with (DRAM): its own largest size, so that a
        description keeps its roofline when the plan's sizes change (256 MiB until held-out set 6, 128 MiB since)."""
        return self.copy_rate(2.0 ** max(f[0] for f in self.samples["aten.copy_"]["features"]))

    def roofline(self) -> Machine:
        """The simple roofline of this machine, the predictor's baseline: GEMM peak, the copy rate of the
        largest calibrated working set (DRAM), and dispatch plus per-op overhead for every op."""
        return Machine(self.name, self.device, self.threads, self.peak_flops, self.dram_copy_rate(),
                       self.dispatch_s + self.overhead_s)


# ----------------------------------------------------------------------------- running it


def _kernels_of(fn: Callable) -> List[Kernel]:
    """The kernels (free ones left out) that one call of `fn` dispatches, as the cost counter describes them."""
    from .counter import _count
    from .op_rules import macs_rules

    class _Call(nn.Module):
        def forward(self):
            return fn()

    records = _count(_Call(), (), macs_rules(None), kernels=True)["records"]
    return [r.kernel for r in records if r.kernel.kind != "free"]


def median_seconds(fn, device, window_s: float = 0.005) -> float:
    """Median time of `fn`, warmed up already (`_kernels_of` ran it): of 3 calls when the first took over 20 ms,
    else of the calls in `window_s` (at least 3). Never fewer than 3: one call slowed by the machine (a page
    fault storm, another process) would otherwise be half of a median of 2, their mean (calibrations until
    held-out set 5 took 2, and about one in twenty of their largest bytes-moving kernels came out 4 to 80 times
    too slow)."""
    first = time_calls(fn, device=device, warmup=0, calls=1)
    if first[0] > 0.02:
        return float(np.median(first + time_calls(fn, device=device, warmup=0, calls=2)))
    return float(np.median(time_calls(fn, device=device, warmup=0, window_s=window_s, min_calls=3)))


def _dispatch_seconds(device) -> float:
    """Time of an op that moves no bytes (a view), called from Python as a model calls it."""
    x = torch.randn(8, 16, 32, device=device)
    calls = [lambda: x.view(8, -1), lambda: x.transpose(1, 2), lambda: x.permute(0, 2, 1), lambda: x[:, 1:]]
    return float(np.median([median_seconds(fn, device, 0.01) for fn in calls]))


def _fault_seconds_per_byte(device, malloc: Optional[dict]) -> float:
    """Seconds per byte of a block mapped afresh on every call (the page faults of its first touch): a fill of a
    new block minus a fill of a reused one, at 64 and 128 MiB. 0 off the CPU, with malloc's thresholds not
    pinned below those sizes (then nothing is known to be mapped afresh), or with mapping off (`mmap_max` 0:
    every block comes from the heap, faulted in by a warm-up call)."""
    if torch.device(device).type != "cpu" or not malloc or malloc.get("mmap_max", GLIBC_MMAP_MAX) == 0:
        return 0.0
    rates = []
    for size in (64 << 20, 128 << 20):
        if size < malloc["mmap_threshold"]:
            continue
        reused = torch.empty(size, dtype=torch.uint8).fill_(0)   # its pages faulted in once, here
        fresh = median_seconds(lambda: torch.empty(size, dtype=torch.uint8).fill_(1), device)
        rates.append(max(fresh - median_seconds(lambda: reused.fill_(1), device), 0.0) / size)
    return float(np.median(rates)) if rates else 0.0


def _time_plan(plan, device, progress: bool, fault_s_per_byte: float) -> dict:
    """{kind: {"features": [...], "log2_rate": [...]}} of every microbenchmark that runs exactly one kernel, its
    rate net of the page faults of a fresh output (at `fault_s_per_byte`). A bytes-moving kernel that came out
    much slower than its kind's kernels of nearby size (`slow_outliers`) is timed once more, afresh, and that
    time replaces the first: a call the machine slowed (another process, a burst of page faults) must not stand
    for its size, since a bytes-moving rate is read between just the two sizes around a query."""
    samples: dict = {}
    cases: dict = {}   # kind -> the microbenchmark of each sample, to time again

    def log2_rate(case):
        with torch.device(device):
            fn = case()
        kernels = _kernels_of(fn)   # also its warm-up call
        if len(kernels) != 1 or kernels[0].work <= 0:
            return None, None
        k = kernels[0]
        seconds = median_seconds(fn, device)
        seconds = max(seconds - k.fresh_bytes * fault_s_per_byte, 0.1 * seconds)
        return k, round(float(np.log2(k.work / seconds)), 6)

    for case in tqdm(plan, desc="calibrating", unit="kernel", file=sys.stderr, disable=not progress):
        k, rate = log2_rate(case)
        if k is None:
            continue
        entry = samples.setdefault(k.kind, {"features": [], "log2_rate": []})
        entry["features"].append([round(f, 6) for f in k.features])
        entry["log2_rate"].append(rate)
        cases.setdefault(k.kind, []).append(case)
    for kind, entry in samples.items():
        if kind not in _WEIGHTS:   # bytes-moving kinds
            for i in slow_outliers(entry["features"], entry["log2_rate"]):
                entry["log2_rate"][i] = log2_rate(cases[kind][i])[1]
    return samples


def slow_outliers(features, log2_rate, *, sizes: float = 2.0, slower: float = 1.5) -> List[int]:
    """Indices of the bytes-moving samples whose log2 rate lies more than `slower` below the median of the
    samples that share all their other features and lie within `sizes` (log2) of their size (feature 0): by
    default, nearly 3 times slower than kernels of their kind at most 4 times smaller or larger."""
    x, y = np.asarray(features, dtype=float), np.asarray(log2_rate, dtype=float)
    flagged = []
    for i in range(len(y)):
        near = (x[:, 1:] == x[i, 1:]).all(axis=1) & (np.abs(x[:, 0] - x[i, 0]) <= sizes)
        near[i] = False
        if near.any() and y[i] < np.median(y[near]) - slower:
            flagged.append(i)
    return flagged


def _model_overhead(machine: "CalibratedMachine", device) -> float:
    """Seconds an op costs inside a model beyond its kernel alone: the slope, against their op count, of the
    measured minus the predicted time of chains of tiny Linear + ReLU blocks (at least 0)."""
    from .counter import _count
    from .latency import model_latency
    from .op_rules import macs_rules
    from .roofline import _CHAIN_LENGTHS, _chain, fit_overhead

    n_ops, extra = [], []
    for blocks in _CHAIN_LENGTHS:
        model, x = _chain(blocks).to(device), torch.randn(1, 8, device=device)
        records = _count(model, (x,), macs_rules(None), kernels=True)["records"]
        n_ops.append(len(records))
        extra.append(model_latency(model, x, repeats=30, warmup=3) / 1e3 - sum(machine.seconds(r.kernel)
                                                                                 for r in records))
    return fit_overhead(n_ops, extra)


def calibrate(device="cpu", threads: Optional[int] = 1, *, seed: int = 0, scale: float = 1.0,
              byte_sizes: Sequence[float] = BYTE_SIZES, networks: int = NETWORKS,
              progress: bool = True) -> CalibratedMachine:
    """Time the microbenchmarks of `kernel_plan(seed, scale, byte_sizes)` and `networks` context networks on
    `device` with `threads` CPU threads (None: torch's current setting) and return what they teach (see the module
    docstring; `networks` 0: no context factor). On the CPU this pins malloc's thresholds for the rest of the
    process first (`allocator.pin_malloc`)."""
    import time

    from .roofline import _gemm_flops

    device = torch.device(device)
    cuda = device.type == "cuda"
    malloc = None if cuda else pin_malloc()
    start, old = time.perf_counter(), torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            fault = _fault_seconds_per_byte(device, malloc)
            samples = _time_plan(kernel_plan(seed, scale, byte_sizes), device, progress, fault)
            peak = _gemm_flops(device, 8192 if cuda else 1024, 0.3)
            machine = CalibratedMachine("", device.type, threads, peak, _dispatch_seconds(device), 0.0, 0.0,
                                        samples, malloc=malloc, fault_s_per_byte=fault)
            machine.cache_bytes = _cache_bytes(machine)
            machine.overhead_s = _model_overhead(machine, device)
            machine.context = measure_context(machine, device, networks, progress) if networks else None
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(old)
    machine.name = torch.cuda.get_device_name(device) if cuda else f"{cpu_name()}, {used} thread(s)"
    machine.threads = None if cuda else used
    machine.calibration_s = round(time.perf_counter() - start, 1)
    return machine


def _cache_bytes(machine: CalibratedMachine) -> float:
    """The largest calibrated working set whose copy still runs 1.5x faster than the largest one's: beyond
    it, a bytes-moving op streams from DRAM."""
    dram = machine.dram_copy_rate()
    fast = [s for s in BYTE_SIZES if machine.copy_rate(s) >= 1.5 * dram]
    return float(max(fast) if fast else BYTE_SIZES[0])


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
