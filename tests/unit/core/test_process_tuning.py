"""The GC thresholds that roles sharing one process ask for: the highest of each wins."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from tokengov.core.process_tuning import raise_gc_thresholds
from tokengov.sinks.clickhouse.process_tuning import GC_GEN0_THRESHOLD, tune_gc
from tokengov.streams.partition_stage import GC_THRESHOLDS


@pytest.fixture(autouse=True)
def _thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def test_thresholds_are_raised_never_lowered() -> None:
    raise_gc_thresholds(5_000)
    assert gc.get_threshold() == (5_000, 10, 10)
    raise_gc_thresholds(1_000, 30)  # generation 0 stays higher; generation 1 rises
    assert gc.get_threshold() == (5_000, 30, 10)
    raise_gc_thresholds()
    assert gc.get_threshold() == (5_000, 30, 10)


@pytest.mark.parametrize("streams_first", [True, False])
def test_roles_sharing_a_process_keep_the_highest(streams_first: bool) -> None:
    """``--role all``: the streams and debt roles' thresholds and the sink's, in either order."""
    if streams_first:
        raise_gc_thresholds(*GC_THRESHOLDS)
        tune_gc()
    else:
        tune_gc()
        raise_gc_thresholds(*GC_THRESHOLDS)
    assert gc.get_threshold() == tuple(
        max(a, b) for a, b in zip(GC_THRESHOLDS, (GC_GEN0_THRESHOLD, 10, 10), strict=True)
    )
