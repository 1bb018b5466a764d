"""librdkafka's log lines go through Python logging, not straight to stderr.

Pass :func:`client_logging` into a confluent-kafka client's config. Brokers close idle
connections and librdkafka reconnects, so those notices are not logged at all.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["client_logging", "silent_logging"]

_LOG = logging.getLogger("tokengov.librdkafka")
_SILENT = logging.getLogger("tokengov.librdkafka.silent")
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False


def client_logging() -> dict[str, Any]:
    return {"logger": _LOG, "log.connection.close": False}


def silent_logging() -> dict[str, Any]:
    """For probes whose failures are expected (is the broker up yet?)."""
    return {"logger": _SILENT, "log.connection.close": False}
