"""The OTLP/HTTP traces receiver: ``POST /v1/traces`` (and ``/healthz``, ``/readyz``,
``/metrics``), on aiohttp.

What each request gets, per the OTLP specification (https://opentelemetry.io/docs/specs/otlp/):

==========================================  ===============================================
the events delivered (all spans usable)     200, an empty ``ExportTraceServiceResponse``
some spans unusable (dead-lettered)         200 with ``partial_success`` {rejected_spans,
                                            error_message}
body not OTLP (protobuf/JSON/gzip)          400 with a ``google.rpc.Status`` naming the fault
no or wrong bearer token (when one is set)  401
body larger than the limit (or inflating    413
past it)
``Content-Type`` not protobuf/JSON, an      415
unknown ``Content-Encoding``
Kafka did not acknowledge every message     503 with ``Retry-After``: nothing is acknowledged
                                            that is not delivered (the sender retries; event
                                            ids make the retry count once)
==========================================  ===============================================

Answers are encoded like the request (protobuf or JSON). No request stops the receiver: an
unexpected failure is logged and answered 500.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status as RpcStatus
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tokengov.core.errors import BrokerError
from tokengov.core.topics import Topics
from tokengov.ingest.otlp.decode import JSON, PROTOBUF, OtlpRequestError, decode_request, media_type
from tokengov.ingest.otlp.publish import DeliveryTracker, messages
from tokengov.ingest.otlp.spans import SpanConverter

__all__ = ["TRACES_PATH", "OtlpReceiver", "ReceiverStats"]

log = logging.getLogger(__name__)

TRACES_PATH: Final = "/v1/traces"
#: gRPC status codes carried in ``google.rpc.Status.code`` (the OTLP/HTTP error body).
_RPC_CODES: Final = {400: 3, 401: 16, 413: 8, 415: 3, 500: 13, 503: 14}


@dataclass
class ReceiverStats:
    """What the receiver did, for ``/metrics``: requests by HTTP status, spans by fate."""

    requests_by_status: Counter[int] = field(default_factory=Counter)
    spans_received: int = 0
    spans_ignored: int = 0  # not GenAI
    spans_aggregate: int = 0  # agent/workflow/tool spans (their model calls count)
    spans_rejected: int = 0  # dead-lettered, answered in partial_success
    events_delivered: int = 0


def _encode(message: Message, kind: str) -> bytes:
    if kind == JSON:
        return str(json_format.MessageToJson(message, indent=None)).encode()
    return bytes(message.SerializeToString())


class OtlpReceiver:
    """Turns OTLP/HTTP trace exports into call events on ``topics.events``."""

    def __init__(
        self,
        *,
        converter: SpanConverter,
        tracker: DeliveryTracker,
        topics: Topics,
        max_body_bytes: int,
        token: str | None = None,
        retry_after_s: int = 5,
    ) -> None:
        self.converter = converter
        self.tracker = tracker
        self.topics = topics
        self.max_body_bytes = max_body_bytes
        self._token = token.encode() if token else None
        self.retry_after_s = retry_after_s
        self.stats = ReceiverStats()
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None

    # -- HTTP -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post(TRACES_PATH, self.traces)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        return app

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _metrics(self, _request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        from tokengov.ingest.otlp.metrics import OtlpCollector

        registry = CollectorRegistry(auto_describe=False)
        registry.register(OtlpCollector(lambda: self.stats))
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    def _status(
        self, status: int, message: str, kind: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        self.stats.requests_by_status[status] += 1
        body = _encode(RpcStatus(code=_RPC_CODES.get(status, 2), message=message), kind)
        return web.Response(status=status, body=body, content_type=kind, headers=headers)

    def _authorized(self, request: web.Request) -> bool:
        if self._token is None:
            return True
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self._token
        )

    async def traces(self, request: web.Request) -> web.Response:
        kind = media_type(request.content_type)
        answer_kind = kind if kind in (PROTOBUF, JSON) else PROTOBUF
        try:
            return await self._traces(request, answer_kind)
        except OtlpRequestError as exc:
            return self._status(exc.status, str(exc), answer_kind)
        except BrokerError as exc:
            log.error("OTLP request not acknowledged (answered 503): %s", exc)
            return self._status(
                503,
                f"Kafka did not acknowledge the events; retry later ({exc})",
                answer_kind,
                {"Retry-After": str(self.retry_after_s)},
            )
        except Exception:  # no request may stop the receiver
            log.exception("OTLP request failed unexpectedly (answered 500)")
            return self._status(500, "internal error (logged by the receiver)", answer_kind)

    async def _traces(self, request: web.Request, kind: str) -> web.Response:
        if not self._authorized(request):
            response = self._status(401, "missing or wrong bearer token", kind)
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            raise OtlpRequestError(
                f"the body ({request.content_length} bytes) is larger than the receiver's "
                f"limit of {self.max_body_bytes} bytes",
                status=413,
            )
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            raise OtlpRequestError(
                f"the body is larger than the receiver's limit of {self.max_body_bytes} bytes",
                status=413,
            ) from exc
        export, kind = decode_request(
            body,
            content_type=request.headers.get("Content-Type"),
            content_encoding=request.headers.get("Content-Encoding"),
            max_bytes=self.max_body_bytes,
        )
        conversion = self.converter.convert(export)
        await self.tracker.publish(messages(conversion, self.topics))
        stats = self.stats
        stats.spans_received += conversion.spans
        stats.spans_ignored += conversion.ignored
        stats.spans_aggregate += conversion.aggregate
        stats.spans_rejected += len(conversion.rejected)
        stats.events_delivered += conversion.events
        response = ExportTraceServiceResponse()
        if conversion.rejected:
            first = conversion.rejected[0]
            response.partial_success.rejected_spans = len(conversion.rejected)
            response.partial_success.error_message = (
                f"{len(conversion.rejected)} GenAI span(s) could not become call events and "
                f"were dead-lettered to {self.topics.deadletter}; the first (span "
                f"{first.span_id} of trace {first.trace_id}): {first.reason}"
            )
            log.warning("OTLP: %s", response.partial_success.error_message)
        stats.requests_by_status[200] += 1
        return web.Response(body=_encode(response, kind), content_type=kind)

    # -- lifecycle --------------------------------------------------------------------

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on ``host:port`` (port 0: any free one); returns the address bound."""
        # the body is inflated here, not by aiohttp, so that its size limit holds after gzip
        runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, auto_decompress=False
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname() if sockets else (host, port)
        self.address = (str(bound[0]), int(bound[1]))
        log.info("OTLP/HTTP receiver on http://%s:%d%s", *self.address, TRACES_PATH)
        return self.address

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # delivering what is queued may take the delivery timeout: not on the event loop,
        # which the worker's other roles share
        await asyncio.to_thread(self.tracker.close)
