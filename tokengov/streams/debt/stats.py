"""Small statistics the detectors share."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["r_squared", "slope"]


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The least-squares slope of ``ys`` over ``xs`` (0 when ``xs`` do not vary)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def r_squared(xs: Sequence[float], ys: Sequence[float]) -> float:
    """How much of the variance of ``ys`` the least-squares line explains (0..1)."""
    n = len(xs)
    if n < 2:
        return 0.0
    my = sum(ys) / n
    syy = sum((y - my) ** 2 for y in ys)
    if syy == 0:
        return 0.0
    b = slope(xs, ys)
    mx = sum(xs) / n
    residual = sum((y - (my + b * (x - mx))) ** 2 for x, y in zip(xs, ys, strict=True))
    return max(0.0, 1 - residual / syy)
