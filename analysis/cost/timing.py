"""One way to time a call, on any device: `time_calls` (warm-up, then a number of calls or a time window,
each call timed alone and synchronised) and `interleaved_rounds` (several models timed in rotated order,
round by round, so that load drift hits them alike). Latency, the roofline's microbenchmarks, throughput
and the scorecard's timing rounds all measure through them.

    >>> time_calls(lambda: model(x), device=x.device, warmup=5, calls=20)     # seconds per call
    >>> time_calls(step, warmup_s=1.0, window_s=3.0, min_calls=3)            # a time window
    >>> interleaved_rounds({"a": (m1, x1), "b": (m2, x2)}, rounds=12)        # tidy: round, name, seconds
"""
from __future__ import annotations

import sys
import time
from typing import Callable, List, Optional

import pandas as pd
import torch
from tqdm import tqdm

from ..core.errors import not_a_command

__all__ = ["Clock", "time_calls", "interleaved_rounds", "TIMING_ROUNDS"]

TIMING_ROUNDS = 12      # interleaved rounds behind every timing claim of the scorecard (>= 10)


class Clock:
    """Timestamps on a device: CUDA events (no host synchronisation between marks), or perf_counter."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.cuda = torch.device(device).type == "cuda"

    def mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def seconds(self, a, b) -> float:
        """Time from mark `a` to mark `b` (on CUDA, once both have completed: call `sync` first)."""
        return a.elapsed_time(b) / 1e3 if self.cuda else b - a

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()


def time_calls(fn: Callable[[], object], *, device: torch.device | str = "cpu", warmup: int = 1,
               warmup_s: float = 0.0, calls: Optional[int] = None, window_s: float = 0.0,
               min_calls: int = 1) -> List[float]:
    """Seconds per call of `fn`, each call timed on its own and synchronised with `device`.

    Warm-up: `warmup` untimed calls, continued until `warmup_s` seconds have passed. Then `calls` timed
    calls, or, without `calls`, timed calls until `window_s` seconds have passed (at least `min_calls`)."""
    clock = Clock(device)
    start, n = time.perf_counter(), 0
    while n < warmup or time.perf_counter() - start < warmup_s:
        fn()
        clock.sync()
        n += 1
    times: List[float] = []
    end = time.perf_counter() + window_s
    while len(times) < calls if calls is not None else (len(times) < min_calls or time.perf_counter() < end):
        clock.sync()
        a = clock.mark()
        fn()
        b = clock.mark()
        clock.sync()
        times.append(clock.seconds(a, b))
    return times


def interleaved_rounds(models, rounds: int, *, passes: int = 3, threads: Optional[int] = 1,
                       progress: bool = False) -> pd.DataFrame:
    """Seconds per forward pass of each `models` entry ({name: (model, input)}) on the CPU, in `rounds`
    interleaved rounds: each round times every model once (the best of `passes` passes), in an order
    rotated from round to round, so that load drift on a shared machine and the order hit all models
    alike and a round is a paired replicate. One warm-up pass per model first; `torch.inference_mode`,
    `threads` CPU threads. Columns round, name, seconds (one row per round and model), then where they ran
    (`core.runtime.measured_on`)."""
    from ..core.runtime import cpu_threads, with_measured_on

    names = list(models)
    rows = []
    with cpu_threads(threads), torch.inference_mode():
        for model, x in models.values():
            model(x)
        for r in tqdm(range(rounds), disable=not progress, file=sys.stderr, desc="timing rounds", unit="round"):
            for name in names[r % len(names):] + names[:r % len(names)]:
                model, x = models[name]
                seconds = min(time_calls(lambda: model(x), warmup=0, calls=passes))
                rows.append({"round": r, "name": name, "seconds": seconds})
        host = with_measured_on({}, "cpu")  # inside cpu_threads: the threads the rounds ran on
    return pd.DataFrame(rows).sort_values(["round", "name"], ignore_index=True).assign(**host)


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
