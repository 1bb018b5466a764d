"""Health and Prometheus metrics of a long-running process: ``/healthz``, ``/readyz``,
``/metrics`` on one small HTTP server (docs/operations.md).

Components keep plain counters (their ``counters``/``stats``); collectors in the component
packages and in :mod:`tokengov.app.metrics` turn them into metric families at scrape time
(prometheus-client's custom-collector interface), so nothing is counted twice. Latencies
that must be observed at the event go into a :class:`LatencyHistogram` (pure, no
prometheus-client) and are rendered with :func:`histogram_family`.

Any service starts it in one line::

    server = serve_observability(settings.metrics_port, MyCollector(...), ready={"x": check})

``/healthz`` answers 200 while the process serves HTTP at all; ``/readyz`` answers 200
when every readiness check returns ``None`` and 503 with the reasons otherwise (one line a
check, ``name: why``); ``/metrics`` is the text exposition of a registry holding the
given collectors plus the process and platform collectors.

prometheus-client is in the ``server`` and ``metrics`` extras; the SDK never imports this
module (the SDK's own collector imports prometheus-client lazily:
:meth:`tokengov.producers.emitter.TokenEmitter.prometheus_collector`).
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from tokengov.core.errors import TokenGovError

if TYPE_CHECKING:
    from prometheus_client.core import HistogramMetricFamily
    from prometheus_client.registry import Collector, CollectorRegistry

__all__ = [
    "LATENCY_BUCKETS_S",
    "HealthServer",
    "LatencyHistogram",
    "ReadinessCheck",
    "histogram_family",
    "serve_observability",
]

log = logging.getLogger(__name__)

#: A readiness check: ``None`` when ready, else why not (one line).
ReadinessCheck = Callable[[], str | None]

#: Seconds; from a few milliseconds (a flush) to minutes (an alert behind a lagging group).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip


class LatencyHistogram:
    """Counts of observed durations (seconds) in fixed buckets, their sum and count.
    ``observe`` is cheap and thread-safe; :func:`histogram_family` renders it."""

    def __init__(self, buckets_s: Sequence[float] = LATENCY_BUCKETS_S) -> None:
        self.bounds_s = tuple(sorted(buckets_s))
        self._counts = [0] * (len(self.bounds_s) + 1)  # the last: above every bound (+Inf)
        self._sum_s = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        index = bisect.bisect_left(self.bounds_s, seconds)
        with self._lock:
            self._counts[index] += 1
            self._sum_s += seconds

    @property
    def count(self) -> int:
        return sum(self._counts)

    def __deepcopy__(self, memo: dict[int, object]) -> LatencyHistogram:
        """A copy of the counts so far (``dataclasses.asdict`` of the counters that hold one:
        a lock cannot be copied)."""
        copy = LatencyHistogram(self.bounds_s)
        with self._lock:
            copy._counts, copy._sum_s = list(self._counts), self._sum_s
        return copy

    def snapshot(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative buckets as prometheus-client wants them (``le``, count), and the sum."""
        with self._lock:
            counts, total_s = list(self._counts), self._sum_s
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds_s, float("inf")), counts, strict=True):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return buckets, total_s


def histogram_family(
    name: str,
    documentation: str,
    histograms: Mapping[tuple[str, ...], LatencyHistogram],
    labels: Sequence[str] = (),
) -> HistogramMetricFamily:
    """One histogram family from :class:`LatencyHistogram` s keyed by label values."""
    from prometheus_client.core import HistogramMetricFamily

    family = HistogramMetricFamily(name, documentation, labels=list(labels))
    for values, histogram in histograms.items():
        buckets, total_s = histogram.snapshot()
        family.add_metric(list(values), buckets, total_s)
    return family


class HealthServer:
    """``/healthz``, ``/readyz`` and ``/metrics`` on ``host:port`` in a daemon thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        ready: Mapping[str, ReadinessCheck],
        *,
        host: str = "0.0.0.0",  # noqa: S104  # scraped from other hosts / containers
        port: int = 0,
    ) -> None:
        self.registry = registry
        self.ready = dict(ready)
        self.host = host
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def not_ready(self) -> list[str]:
        """Why the process is not ready (empty when it is); a failing check is a reason."""
        reasons: list[str] = []
        for name, check in self.ready.items():
            try:
                why = check()
            except Exception as exc:  # a check must not take the endpoint down: report it
                why = f"the check failed: {type(exc).__name__}: {exc}"
            if why is not None:
                reasons.append(f"{name}: {why}")
        return reasons

    def start(self) -> HealthServer:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.partition("?")[0]
                if path == "/healthz":
                    self._answer(200, b"ok\n")
                elif path == "/readyz":
                    reasons = owner.not_ready()
                    body = "\n".join(reasons) if reasons else "ready"
                    self._answer(503 if reasons else 200, f"{body}\n".encode())
                elif path == "/metrics":
                    self._answer(200, generate_latest(owner.registry), CONTENT_TYPE_LATEST)
                else:
                    self._answer(404, b"not found: /healthz, /readyz, /metrics\n")

            def _answer(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("observability %s: " + format, owner.address, *args)

        try:
            server = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as exc:
            raise TokenGovError(
                f"cannot serve health and metrics on {self.host}:{self.port}: {exc.strerror}; "
                "set TOKENGOV_METRICS_PORT (or --metrics-port) to a free port, or 0 to turn "
                "it off"
            ) from exc
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},  # how soon stop() returns
            name="tokengov-observability",
            daemon=True,
        )
        self._thread.start()
        log.info("health and metrics on http://%s (/healthz /readyz /metrics)", self.address)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


def serve_observability(
    port: int | None,
    *collectors: Collector,
    ready: Mapping[str, ReadinessCheck] | None = None,
    host: str = "0.0.0.0",  # noqa: S104
    process_metrics: bool = True,
) -> HealthServer | None:
    """Start the server on ``port`` with ``collectors``; ``None`` (the setting unset) is off
    and returns ``None``; ``0`` picks a free port (read :attr:`HealthServer.port`)."""
    if port is None:
        return None
    from prometheus_client import PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    if process_metrics:
        registry.register(PROCESS_COLLECTOR)
        registry.register(PLATFORM_COLLECTOR)
    for collector in collectors:
        registry.register(collector)
    return HealthServer(registry, ready or {}, host=host, port=port).start()
