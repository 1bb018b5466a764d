"""What every receiver shares: the interface, secrets from the environment, redaction,
and one careful HTTP POST.

Secrets (webhook signing keys, Slack webhook URLs, PagerDuty routing keys, SMTP
passwords) are read from the environment at send time and never appear in a log
line or an error message, in any encoding or in pieces: every message a receiver
raises goes through :meth:`Secrets.error`, which redacts the whole text
(:mod:`tokengov.sinks.router.redact`) and only then cuts it; of a receiver's answer only a
short excerpt of the redacted text is kept; third-party exceptions are not chained
(their text can carry a URL).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Final, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx

from tokengov.core.errors import DeliveryError
from tokengov.sinks.router.notification import Notification
from tokengov.sinks.router.redact import REDACTED, Redactor, excerpt

__all__ = [
    "ANSWER_EXCERPT_CHARS",
    "JSON_HEADERS",
    "MAX_ERROR_CHARS",
    "OK_STATUS",
    "REDACTED",
    "HttpReceiver",
    "Receiver",
    "Secrets",
    "hook_url",
    "post",
    "quiet_http_loggers",
    "safe_target",
]

JSON_HEADERS: Final[Mapping[str, str]] = {"Content-Type": "application/json"}
OK_STATUS: Final = frozenset({200, 201, 202, 204})
#: How much of a receiver's answer an error keeps (of the redacted text).
ANSWER_EXCERPT_CHARS: Final = 200
#: How much of a receiver's answer is read at all (the rest is never looked at): all of
#: it is redacted before the excerpt is cut, so a piece of a secret cut at this edge is
#: far from the excerpt (and caught anyway when it is 8 characters or more).
MAX_ANSWER_BYTES: Final = 4 * 1024
#: The longest error message a receiver raises (after redaction).
MAX_ERROR_CHARS: Final = 600


def quiet_http_loggers() -> None:
    """httpx logs every request's full URL at INFO (httpcore at DEBUG); a Slack or webhook
    URL from the environment is a credential. Whoever configures logging (a Faust worker
    sets up the root logger), these two stay at WARNING while the router's receivers exist."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        # Its own level, not the effective one: a root logger set to DEBUG later (a
        # worker configuring logging after the receivers exist) must not open it up.
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


class Receiver(Protocol):
    """A channel a team watches. ``send`` raises :class:`DeliveryError` on failure
    (``retryable`` says whether trying again may help)."""

    name: str

    async def send(self, notification: Notification) -> None: ...


class Secrets:
    """Reads secrets from the environment for one receiver, and remembers them so that
    they can be scrubbed from any text."""

    def __init__(self, receiver: str, env: Mapping[str, str]) -> None:
        self.receiver = receiver
        self._env = env
        self._redactor = Redactor()

    def get(self, var: str, what: str) -> str:
        value = self._env.get(var, "")
        if not value:
            raise DeliveryError(
                self.receiver, f"{what}: environment variable {var} is not set", retryable=False
            )
        self.remember(value)
        return value

    def optional(self, var: str | None) -> str | None:
        if not var:
            return None
        value = self._env.get(var) or None
        if value:
            self.remember(value)
        return value

    def remember(self, value: str) -> None:
        """A value to scrub (a URL: its path, query and userinfo too, in pieces)."""
        self._redactor.add(value)

    def redact(self, text: str) -> str:
        return self._redactor.redact(text)

    def error(self, message: str, *, retryable: bool) -> DeliveryError:
        """A :class:`DeliveryError` whose message is redacted whole, then cut."""
        return DeliveryError(
            self.receiver, excerpt(self.redact(message), MAX_ERROR_CHARS), retryable=retryable
        )


def hook_url(url: str | None, url_env: str | None, secrets: Secrets) -> str:
    """The configured ``url``, else the one in ``url_env``; a secret either way (a hook
    URL may carry a token in its path or query, even when it is written in the file)."""
    if url:
        secrets.remember(url)
        return url
    return secrets.get(url_env or "", "url_env")


def safe_target(url: str) -> str:
    """What may be shown of a URL: scheme, host and port only."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}"


_RETRYABLE_STATUS = {408, 425, 429}


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout_s: float,
    secrets: Secrets,
    ok_status: frozenset[int] = OK_STATUS,
) -> httpx.Response:
    """POST ``content``; a status outside ``ok_status`` or a transport error raises a
    redacted :class:`DeliveryError` (5xx, 408, 425, 429 and transport errors are retryable)."""
    target = safe_target(url)
    started = time.perf_counter()
    try:
        async with client.stream(
            "POST", url, content=content, headers=dict(headers), timeout=timeout_s
        ) as response:
            if response.status_code in ok_status:
                await response.aread()
                return response
            answer = await _read_some(response, MAX_ANSWER_BYTES)
    except httpx.TimeoutException:
        raise secrets.error(
            f"POST {target}: no answer within {timeout_s:g}s", retryable=True
        ) from None
    except httpx.HTTPError as exc:
        raise secrets.error(f"POST {target}: {type(exc).__name__}: {exc}", retryable=True) from None
    elapsed_ms = int((time.perf_counter() - started) * 1000)
    # Redact the whole answer first, then keep a short excerpt: a cut made before
    # redaction could leave a piece of a secret that is no longer recognised.
    shown = excerpt(secrets.redact(answer), ANSWER_EXCERPT_CHARS)
    retryable = response.status_code >= 500 or response.status_code in _RETRYABLE_STATUS
    raise secrets.error(
        f"POST {target}: HTTP {response.status_code} after {elapsed_ms} ms: {shown}",
        retryable=retryable,
    )


async def _read_some(response: httpx.Response, limit: int) -> str:
    """At most ``limit`` bytes of the answer's body, as text (never the whole of a huge one)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    raw = b"".join(chunks)[:limit]
    try:
        return raw.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace")


class _HttpConfig(Protocol):
    @property
    def timeout(self) -> timedelta: ...


ConfigT = TypeVar("ConfigT", bound=_HttpConfig)


class HttpReceiver(Generic[ConfigT]):
    """What the HTTP receivers share: their config, the shared client, the environment
    their secrets come from, and :func:`post` with the config's timeout."""

    def __init__(
        self,
        name: str,
        config: ConfigT,
        client: httpx.AsyncClient,
        env: Mapping[str, str],
        *,
        grafana_url: str | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.client = client
        quiet_http_loggers()
        self.env = env
        self.grafana_url = grafana_url

    async def post(
        self,
        url: str,
        body: bytes,
        secrets: Secrets,
        *,
        headers: Mapping[str, str] = JSON_HEADERS,
        ok_status: frozenset[int] = OK_STATUS,
    ) -> httpx.Response:
        return await post(
            self.client,
            url,
            content=body,
            headers=headers,
            timeout_s=self.config.timeout.total_seconds(),
            secrets=secrets,
            ok_status=ok_status,
        )
