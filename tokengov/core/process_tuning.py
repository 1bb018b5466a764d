"""The cyclic GC's thresholds of a long-running worker process: raised, never lowered.

Several roles can share one process (``tokengov worker --role all``); each asks for the
thresholds its own work needs, and the process keeps the highest of each.
"""

from __future__ import annotations

import gc
import logging

__all__ = ["raise_gc_thresholds"]

log = logging.getLogger(__name__)


def raise_gc_thresholds(*thresholds: int) -> None:
    """Raise the collector's thresholds (``gc.set_threshold``, generation 0 first) to at least
    ``thresholds``; a threshold already higher, or not given, stays as it is."""
    current = gc.get_threshold()
    wanted = tuple(
        max(now, thresholds[i]) if i < len(thresholds) else now for i, now in enumerate(current)
    )
    if wanted != current:
        gc.set_threshold(*wanted)
        log.debug("gc thresholds %s → %s", current, wanted)
