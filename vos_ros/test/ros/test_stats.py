"""Sliding-window rates and thread-safe counters behind the node's diagnostics."""

import math
import threading

import pytest

from vos_ros.ros.stats import Counters, SlidingWindow


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_sliding_window_mean_max_rate_and_expiry():
    clock = FakeClock()
    window = SlidingWindow(span=2.0, clock=clock)
    assert math.isnan(window.mean()) and math.isnan(window.max()) and window.rate() == 0.0
    for value in (10.0, 20.0, 30.0):
        window.add(value)
        clock.now += 0.5
    assert window.mean() == pytest.approx(20.0)
    assert window.max() == 30.0
    assert window.rate() == pytest.approx(2.0), "3 samples 0.5 s apart"
    clock.now += 1.2  # now 102.7: the samples at 100.0 and 100.5 are older than 2 s
    assert window.mean() == pytest.approx(30.0)
    assert window.rate() == 0.0
    clock.now += 5.0
    assert math.isnan(window.mean())


def test_counters_are_thread_safe():
    counters = Counters()
    threads = [threading.Thread(target=lambda: [counters.add("x") for _ in range(1000)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counters["x"] == 4000 and counters["never"] == 0
