"""Exponential backoff with a cap and jitter bounds, table-driven with injected randomness."""

from __future__ import annotations

import random

import pytest

from stream.backoff import Backoff


class EdgeRandom:
    """Always returns the low (or high) end of the range: the jitter bounds."""

    def __init__(self, high: bool) -> None:
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


@pytest.mark.parametrize(
    ("initial", "factor", "cap", "attempt", "expected"),
    [
        (0.5, 2.0, 30.0, 0, 0.5),
        (0.5, 2.0, 30.0, 1, 1.0),
        (0.5, 2.0, 30.0, 2, 2.0),
        (0.5, 2.0, 30.0, 5, 16.0),
        (0.5, 2.0, 30.0, 6, 30.0),  # 32 capped
        (0.5, 2.0, 30.0, 10_000, 30.0),  # no overflow
        (1.0, 3.0, 100.0, 3, 27.0),
        (1.0, 1.0, 5.0, 7, 1.0),  # factor 1 = constant
        (0.0, 2.0, 1.0, 4, 0.0),
    ],
)
def test_base_delay_grows_exponentially_and_is_capped(initial, factor, cap, attempt, expected):
    assert Backoff(initial, factor, cap, jitter=0.0).base_delay(attempt) == pytest.approx(expected)


@pytest.mark.parametrize("jitter", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("attempt", [0, 3, 8])
def test_jitter_stays_within_bounds(jitter, attempt):
    policy = Backoff(0.5, 2.0, 10.0, jitter)
    base = policy.base_delay(attempt)
    low, high = base * (1 - jitter), base * (1 + jitter)
    assert policy.delay(attempt, EdgeRandom(high=False)) == pytest.approx(low)
    assert policy.delay(attempt, EdgeRandom(high=True)) == pytest.approx(high)
    rng = random.Random(attempt)
    draws = [policy.delay(attempt, rng) for _ in range(200)]
    assert all(low - 1e-12 <= d <= high + 1e-12 for d in draws)
    if jitter:
        assert len({round(d, 9) for d in draws}) > 100  # really random


def test_delays_grow_monotonically_until_the_cap():
    policy = Backoff(0.25, 2.0, 8.0, jitter=0.0)
    delays = [policy.delay(n) for n in range(10)]
    assert delays == sorted(delays)
    assert delays[:6] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    assert set(delays[5:]) == {8.0}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_s": -1.0},
        {"initial_s": 5.0, "cap_s": 1.0},
        {"factor": 0.5},
        {"jitter": 1.0},
        {"jitter": -0.1},
    ],
)
def test_invalid_backoff_is_rejected(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)
    with pytest.raises(ValueError):
        Backoff().base_delay(-1)
