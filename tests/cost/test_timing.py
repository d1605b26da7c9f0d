"""The one timing helper: warm-up calls are not timed, each timed call is timed alone, a call count or a
time window decides how many; interleaved rounds rotate the order and keep the best of each round's passes."""
import time

import pytest
import torch

from analysis.cost.timing import interleaved_rounds, time_calls


def test_warm_up_calls_are_untimed_and_calls_are_counted():
    calls = []
    times = time_calls(lambda: calls.append(time.sleep(0.01)), warmup=2, calls=4)
    assert len(calls) == 6 and len(times) == 4
    assert all(0.009 < t < 1 for t in times)


def test_a_window_times_calls_until_it_is_over():
    calls = []
    start = time.perf_counter()
    times = time_calls(lambda: calls.append(time.sleep(0.01)), warmup_s=0.03, window_s=0.05, min_calls=3)
    assert time.perf_counter() - start >= 0.08
    assert len(times) >= 3 and len(calls) >= len(times) + 3   # the warm-up lasted at least 3 calls of 10 ms
    assert sum(times) >= 0.04


def test_min_calls_holds_even_when_the_window_is_empty():
    assert len(time_calls(lambda: None, warmup=0, window_s=0.0, min_calls=5)) == 5


@pytest.mark.parametrize("passes", [1, 3])
def test_interleaved_rounds_rotate_and_keep_the_best_pass(passes):
    order = []

    class Slow(torch.nn.Module):
        def __init__(self, name, seconds):
            super().__init__()
            self.name, self.seconds = name, seconds

        def forward(self, x):
            order.append(self.name)
            time.sleep(self.seconds)
            return x

    models = {"a": (Slow("a", 0.002), torch.zeros(1)), "b": (Slow("b", 0.02), torch.zeros(1))}
    df = interleaved_rounds(models, rounds=2, passes=passes)
    assert order[:2] == ["a", "b"]                                        # one warm-up pass each
    assert order[2:] == ["a"] * passes + ["b"] * passes + ["b"] * passes + ["a"] * passes   # rotated
    fast, slow = (df[df.name == n].seconds.to_numpy() for n in "ab")
    assert (fast < slow).all() and (slow >= 0.02).all() and len(df) == 4
