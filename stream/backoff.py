"""Exponential backoff with jitter for reconnecting live sources; randomness and time are injected."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol


class UniformRandom(Protocol):
    """The part of ``random.Random`` the backoff uses, so tests can pass a seeded or fixed one."""

    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True)
class Backoff:
    """Delay before reconnect attempt ``n`` (0-based): ``min(cap, initial * factor**n)`` +- jitter.

    The jitter is a fraction of the capped delay: the result lies within
    ``[base * (1 - jitter), base * (1 + jitter)]`` and never above ``cap * (1 + jitter)``.

    Attributes:
        initial_s: Delay before the first retry.
        factor: Growth per attempt (>= 1).
        cap_s: Largest delay before jitter.
        jitter: Fraction in [0, 1) of random spread around the delay.
    """

    initial_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 30.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.cap_s < self.initial_s:
            raise ValueError(f"backoff needs 0 <= initial_s <= cap_s, got {self.initial_s}, {self.cap_s}")
        if self.factor < 1:
            raise ValueError(f"backoff factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"backoff jitter must be within [0, 1), got {self.jitter}")

    def base_delay(self, attempt: int) -> float:
        """The delay before jitter for attempt ``attempt`` (0-based)."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        # Cap the exponent so huge attempt numbers do not overflow a float.
        grown = self.initial_s * self.factor ** min(attempt, 64) if self.factor > 1 else self.initial_s
        return min(self.cap_s, grown)

    def delay(self, attempt: int, rng: UniformRandom | None = None) -> float:
        """The delay in seconds before attempt ``attempt``, with jitter drawn from ``rng``."""
        base = self.base_delay(attempt)
        if self.jitter == 0 or base == 0:
            return base
        source = rng if rng is not None else random.Random()
        return base * source.uniform(1.0 - self.jitter, 1.0 + self.jitter)
