"""Real servers on loopback for the router's integration tests: an HTTP server that
records what it receives (webhook, Slack- and PagerDuty-shaped posts) and answers
as told, an SMTP server with STARTTLS and AUTH (aiosmtpd), and careless receivers
that echo the whole request back (HTTP) or the base64 login (SMTP)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import html
import ipaddress
import json
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
import pytest_asyncio
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.secret_forms import pct_lower
from tokengov.app.local.broker import free_port


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


def check_signature(body: bytes, header: str, secret: str) -> int:
    """Stripe's scheme, written here with hmac/hashlib and nothing of tokengov: the header
    is ``t=<unix>,v1=<hex>[,v1=…]``, each v1 the HMAC-SHA256 of ``"<t>.<body>"``. Returns t."""
    fields = [part.split("=", 1) for part in header.split(",")]
    [t] = [value for key, value in fields if key == "t"]
    signatures = [value for key, value in fields if key == "v1"]
    mac = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert any(hmac.compare_digest(mac, s) for s in signatures), "no v1 matches"
    return int(t)


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


# --------------------------------------------------------------- echoing receivers


def echo_formats(secrets: list[str]) -> list[Callable[[str], str]]:
    """Ways a careless receiver answers with the request it got: raw, JSON (ASCII-escaped,
    or with ``\\/``), percent-encoded in either case, form-encoded, HTML, base64 and
    base64url, and cut at several places inside the first secret it carries."""

    def cut(k: int) -> Callable[[str], str]:
        def answer(request: str) -> str:
            at = min((request.find(s) for s in secrets if s in request), default=-1)
            return request if at < 0 else f"error near: {request[max(0, at - 40) : at + k]}"

        return answer

    def body(request: str) -> str:
        return request.partition("\n\n")[2]

    return [
        lambda r: r,
        lambda r: json.dumps({"error": "invalid request", "request": r}),
        lambda r: json.dumps({"request": r}, ensure_ascii=False).replace("/", "\\/"),
        lambda r: "request=" + quote(r, safe=""),
        lambda r: "request=" + pct_lower(quote(r, safe="")),
        lambda r: "request=" + quote_plus(r),
        lambda r: f"<html><pre>{html.escape(r)}</pre></html>",
        lambda r: "debug " + base64.b64encode(r.encode()).decode(),
        lambda r: "debug " + base64.urlsafe_b64encode(r.encode()).decode().rstrip("="),
        lambda r: json.dumps({"error": "bad body", "body": body(r)}),
        lambda r: "body=" + base64.b64encode(body(r).encode()).decode(),
        cut(8),
        cut(22),  # the case: the first 22 characters of a routing key
    ]


@dataclass
class EchoServer:
    """An HTTP server (its own thread) that answers every POST with an error status and
    the whole request — request line, headers, body — in the next of ``formats`` (counted
    per first path segment, so each receiver meets every format in turn)."""

    url: str = ""
    formats: list[Callable[[str], str]] = field(default_factory=lambda: [lambda r: r])
    statuses: list[int] = field(default_factory=lambda: [500])
    answers: list[str] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    _counts: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __repr__(self) -> str:  # short: hypothesis prints the fixtures of a failing example
        return f"EchoServer({self.url}, {len(self.requests)} request(s))"

    def respond(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        head = "\n".join([f"POST {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())])
        request = head + "\n\n" + body.decode("utf-8", errors="replace")
        with self._lock:
            self.requests.append(Received(path, headers, body))
            key = path.split("/")[1] if "/" in path else path
            n = self._counts.get(key, 0)
            self._counts[key] = n + 1
            status = self.statuses[n % len(self.statuses)]
            answer = self.formats[n % len(self.formats)](request)
            self.answers.append(answer)
        return status, answer


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    echo = EchoServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer = echo.respond(self.path, dict(self.headers.items()), body)
            data = answer.encode("utf-8", errors="surrogatepass")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="echo-http", daemon=True)
    thread.start()
    echo.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield echo
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@dataclass
class EchoMailServer:
    """An SMTP server that answers with the base64 login it was sent: ``refuse_auth`` →
    AUTH fails with a reply quoting it (PLAIN: ``base64("\\0user\\0pass")``; LOGIN: each
    base64 line); otherwise AUTH succeeds and DATA is refused with the PLAIN form."""

    host: str
    port: int
    refuse_auth: bool
    replies: list[str] = field(default_factory=list)
    _last_login: str = ""

    def __repr__(self) -> str:
        return f"EchoMailServer({self.port}, {len(self.replies)} reply(ies))"

    def authenticate(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        assert isinstance(auth_data, LoginPassword)
        plain = base64.b64encode(b"\0" + auth_data.login + b"\0" + auth_data.password).decode()
        self._last_login = plain
        if not self.refuse_auth:
            return AuthResult(success=True)
        if mechanism == "LOGIN":
            echoed = " ".join(
                base64.b64encode(v).decode() for v in (auth_data.login, auth_data.password)
            )
        else:
            echoed = plain
        reply = f"535 5.7.8 authentication failed for {echoed}"
        self.replies.append(reply)
        return AuthResult(success=False, handled=False, message=reply)

    async def handle_DATA(self, server: object, session: Session, envelope: Envelope) -> str:
        reply = f"554 5.7.1 message refused; you logged in as {self._last_login}"
        self.replies.append(reply)
        return reply


def echo_mail_server(*, refuse_auth: bool) -> Iterator[EchoMailServer]:
    box = EchoMailServer("127.0.0.1", free_port(), refuse_auth)
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        authenticator=box.authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def smtp_refusing_auth() -> Iterator[EchoMailServer]:
    yield from echo_mail_server(refuse_auth=True)


@pytest.fixture
def smtp_refusing_data() -> Iterator[EchoMailServer]:
    yield from echo_mail_server(refuse_auth=False)
