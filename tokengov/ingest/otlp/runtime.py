"""Building the receiver from settings, and running it: alone (``tokengov otlp``) or as the
``otlp`` role of ``tokengov worker`` (part of ``all``, so ``tokengov up`` runs it).

Either way the receiver writes ``<data dir>/worker/otlp.json`` (pid, host, port) once it
listens, so that whoever started it with port 0 finds the port.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
from pathlib import Path
from typing import Final

from tokengov.core.kafka import CheckedProducer
from tokengov.core.policy import Policy
from tokengov.core.settings import Settings
from tokengov.core.topics import Topics
from tokengov.ingest.otlp.publish import DeliveryTracker
from tokengov.ingest.otlp.server import OtlpReceiver
from tokengov.ingest.otlp.spans import SpanConverter

__all__ = ["ADDRESS_FILE", "build_receiver", "converter_for", "serve", "write_address"]

log = logging.getLogger(__name__)

ADDRESS_FILE: Final = "otlp.json"


def converter_for(policy: Policy) -> SpanConverter:
    return SpanConverter(policy.otlp, policy.owner_team)


def build_receiver(settings: Settings, policy: Policy, topics: Topics) -> OtlpReceiver:
    """A receiver producing with delivery checked (``acks=all``; a message not acknowledged
    within ``otlp_delivery_timeout_s`` fails its request with 503)."""
    timeout_s = settings.otlp_delivery_timeout_s
    producer = CheckedProducer(
        settings.kafka,
        client_id="tokengov-otlp",
        options={
            "enable.idempotence": True,
            "compression.type": "lz4",
            "linger.ms": 2,
            "message.timeout.ms": int(timeout_s * 1000),
            "socket.connection.setup.timeout.ms": 3000,
            "reconnect.backoff.max.ms": 1000,
            # full (Kafka slow or down): the request is answered 503 at once, not blocked
            "queue.buffering.max.messages": settings.otlp_queue_max_messages,
        },
    )
    token = settings.otlp_token.get_secret_value() if settings.otlp_token else None
    return OtlpReceiver(
        converter=converter_for(policy),
        tracker=DeliveryTracker(producer, timeout_s=timeout_s + 1),
        topics=topics,
        max_body_bytes=settings.otlp_max_body_bytes,
        token=token,
    )


def write_address(state_dir: Path, address: tuple[str, int]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / ADDRESS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "host": address[0], "port": address[1]}))
    tmp.replace(path)


async def serve(receiver: OtlpReceiver, settings: Settings) -> None:
    """Run ``receiver`` until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    address = await receiver.start(settings.otlp_host, settings.otlp_port)
    # what exists now lives as long as the process: out of the collector's sight, a full
    # collection no longer walks it (~50 ms a time on this machine: a request's tail latency)
    gc.collect()
    gc.freeze()
    write_address(settings.worker_state_dir, address)
    try:
        await stop.wait()
    finally:
        log.info("OTLP receiver stopping")
        await receiver.stop()
