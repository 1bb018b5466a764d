"""Real servers on loopback for the router's integration tests: an HTTP server that
records what it receives (webhook, Slack- and PagerDuty-shaped posts) and answers
as told, and an SMTP server with STARTTLS and AUTH (aiosmtpd)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tokengov.local.broker import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Capture:
    """Records every POST. ``statuses`` are answered in turn (then ``default_status``);
    ``hold`` (when set) makes each request wait until it is released."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    default_status: int = 200
    echo: bool = False  # answer with the request's path and body (to test redaction)
    hold: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(request.path_qs, dict(request.headers), body))
        if self.hold is not None:
            await self.hold.wait()
        status = self.statuses.pop(0) if self.statuses else self.default_status
        text = f"{request.path_qs} {body.decode(errors='replace')}" if self.echo else "ok"
        return web.Response(status=status, text=text)

    def on(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path.startswith(path)]

    async def wait_for(
        self, count: int, *, path: str = "/", timeout_s: float = 10.0
    ) -> list[Received]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(self.on(path)) < count:
            if loop.time() > deadline:
                raise AssertionError(
                    f"expected {count} request(s) on {path}, got {len(self.on(path))}"
                )
            await asyncio.sleep(0.02)
        return self.on(path)


@pytest_asyncio.fixture
async def http_capture() -> AsyncIterator[Capture]:
    capture = Capture()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", capture.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    capture.url = f"http://127.0.0.1:{port}"
    try:
        yield capture
    finally:
        if capture.hold is not None:
            capture.hold.set()
        await runner.cleanup()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made here, never a file in the repo)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[Envelope] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    tls_sessions: int = 0

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        if session.ssl is not None:
            self.tls_sessions += 1
        self.messages.append(envelope)
        return "250 OK"


def _smtp(tls_files: tuple[Path, Path] | None, *, user: str, password: str) -> Iterator[Mailbox]:
    port = free_port()
    box = Mailbox("127.0.0.1", port)

    def authenticator(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            box.logins.append((auth_data.login.decode(), auth_data.password.decode()))
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)
        return AuthResult(success=False, handled=False)

    kwargs: dict[str, object] = {}
    if tls_files is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(tls_files[0]), str(tls_files[1]))
        kwargs = {"tls_context": context, "require_starttls": True}
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=tls_files is not None,
        **kwargs,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def smtp_starttls(tls_files: tuple[Path, Path]) -> Iterator[Mailbox]:
    yield from _smtp(tls_files, user="mailer", password="s3cret-smtp-pass")


@pytest.fixture
def smtp_plain() -> Iterator[Mailbox]:
    yield from _smtp(None, user="mailer", password="s3cret-smtp-pass")


def read_topic(bootstrap: str, topic: str, count: int, *, timeout_s: float = 15.0) -> list[object]:
    """The first ``count`` messages of every partition of ``topic`` (no consumer group)."""
    import time

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: list[object] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is not None and not msg.error():
                found.append(msg)
        return found
    finally:
        consumer.close()


async def eventually(predicate, *, timeout_s: float = 10.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# The ClickHouse tables the router writes and reads, as assumed here until the
# ClickHouse part's schema is merged (columns from DESIGN.md / issue 4).
ALERTS_DDL = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id String, fingerprint String, kind LowCardinality(String),
    severity LowCardinality(String), status LowCardinality(String), team LowCardinality(String),
    workflow Nullable(String), task_id Nullable(String), labels Map(String, String),
    summary String, evidence String, starts_at DateTime64(3, 'UTC'),
    ends_at Nullable(DateTime64(3, 'UTC'))
) ENGINE = MergeTree ORDER BY (team, starts_at, alert_id)
"""
NOTIFICATIONS_DDL = """
CREATE TABLE IF NOT EXISTS notifications (
    alert_id String, fingerprint String, receiver LowCardinality(String), attempt UInt16,
    result LowCardinality(String), error String, latency_ms UInt32, ts DateTime64(3, 'UTC')
) ENGINE = MergeTree ORDER BY (alert_id, ts)
"""


@pytest.fixture
def chdb_dsn(tmp_path: Path) -> Iterator[str]:
    """An embedded ClickHouse store (chdb) with the two tables; every client closed after."""
    import clickhouse_connect

    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    client = clickhouse_connect.get_client(dsn=dsn)
    try:
        client.command(ALERTS_DDL)
        client.command(NOTIFICATIONS_DDL)
        yield dsn
    finally:
        client.close()
