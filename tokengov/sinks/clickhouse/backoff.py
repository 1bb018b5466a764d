"""Bounded exponential backoff with jitter (pure; the random source is injectable)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """``initial_s`` × ``factor``^n, capped at ``max_s``, ± ``jitter`` (a fraction)."""

    initial_s: float = 0.2
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.1
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError("need 0 < initial_s ≤ max_s")
        if self.factor < 1 or not 0 <= self.jitter < 1:
            raise ValueError("need factor ≥ 1 and 0 ≤ jitter < 1")

    def next_delay(self) -> float:
        base = min(self.max_s, self.initial_s * self.factor**self.attempts)
        self.attempts += 1
        spread = base * self.jitter
        return min(self.max_s, max(0.0, base + self.rng.uniform(-spread, spread)))

    def reset(self) -> None:
        self.attempts = 0
