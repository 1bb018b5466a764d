"""Awaiting a condition in tests (never a fixed sleep): one helper for every suite."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    predicate: Callable[[], Any],
    timeout_s: float,
    what: str,
    tail: Callable[[], str] = lambda: "",
    poll_s: float = 0.05,
) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that; after
    ``timeout_s`` fail naming ``what`` (and ``tail()``, e.g. the end of a worker's log)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}\n{tail()}")
        time.sleep(poll_s)
