"""Signed webhooks: how tokengov signs a notification and how a receiver checks it.

The scheme is Stripe's (``Stripe-Signature``) under tokengov's header name::

    X-Tokengov-Signature: t=1764392400,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

``t`` is the Unix time (seconds) the request was signed; each ``v1`` is the hex
HMAC-SHA256, keyed with the receiver's secret, of ``"<t>.<raw body>"``. Signing the
timestamp with the body makes a captured request worthless after the tolerance
(5 minutes by default, Stripe's): a receiver rejects a ``t`` further than that from
its own clock, in either direction. Several ``v1`` values may be present (one per
secret while a secret is rotated); one match is enough. Unknown keys are ignored,
so later schemes (``v2=…``) can be added next to ``v1``.

``X-Tokengov-Notification-Id`` carries the notification's id, the same on every
retry of one notification (it is also the body's ``notification_id``): a receiver
that has seen it already can answer 2xx and do nothing.

This module is pure (no I/O) and imports nothing but the standard library and
:mod:`tokengov.core.errors`, so a receiver written in Python can copy or import it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from tokengov.core.errors import TokenGovError

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "NOTIFICATION_ID_HEADER",
    "SCHEME",
    "SIGNATURE_HEADER",
    "SignatureError",
    "SignatureHeader",
    "parse_header",
    "sign",
    "signature",
    "verify",
]

SIGNATURE_HEADER: Final = "X-Tokengov-Signature"
NOTIFICATION_ID_HEADER: Final = "X-Tokengov-Notification-Id"
#: The only scheme this version signs with and checks.
SCHEME: Final = "v1"
#: How far the signed time may be from the receiver's clock (Stripe's default).
DEFAULT_TOLERANCE_S: Final = 300

_HEX_DIGITS = frozenset("0123456789abcdef")


class SignatureError(TokenGovError, ValueError):
    """A webhook request whose signature header is missing, malformed, stale or wrong.
    The message says which; it never contains the secret or the expected signature."""


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        raise SignatureError("the signing secret is empty")
    return key


def signature(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>.<body>"`` keyed with ``secret``."""
    signed = str(int(timestamp)).encode() + b"." + body
    return hmac.new(_key(secret), signed, hashlib.sha256).hexdigest()


def sign(secrets: str | bytes | Iterable[str | bytes], body: bytes, *, timestamp: int) -> str:
    """The ``X-Tokengov-Signature`` value: ``t=<timestamp>,v1=<hex>`` with one ``v1``
    per secret (several while a secret is being rotated)."""
    keys = [secrets] if isinstance(secrets, str | bytes) else list(secrets)
    if not keys:
        raise SignatureError("no signing secret given")
    t = int(timestamp)
    return ",".join([f"t={t}", *(f"{SCHEME}={signature(k, body, t)}" for k in keys)])


@dataclass(frozen=True)
class SignatureHeader:
    timestamp: int
    signatures: tuple[str, ...]


def parse_header(header: str | None) -> SignatureHeader:
    """Split ``t=…,v1=…[,v1=…]``; unknown keys are ignored. Raises :class:`SignatureError`
    naming what is wrong."""
    if header is None or not header.strip():
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    timestamps: list[str] = []
    found: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError(f"{SIGNATURE_HEADER}: {part.strip()[:20]!r} is not key=value")
        if key == "t":
            timestamps.append(value.strip())
        elif key == SCHEME:
            found.append(value.strip().lower())
    if len(timestamps) != 1:
        raise SignatureError(
            f"{SIGNATURE_HEADER}: expected exactly one t=<unix seconds>, got {len(timestamps)}"
        )
    if not timestamps[0].isascii() or not timestamps[0].isdigit():
        raise SignatureError(f"{SIGNATURE_HEADER}: t must be whole Unix seconds")
    if not found:
        raise SignatureError(f"{SIGNATURE_HEADER}: no {SCHEME}= signature")
    return SignatureHeader(int(timestamps[0]), tuple(found))


def _now_s(now: datetime | float | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now.timestamp()
    return float(now)


def verify(
    body: bytes,
    header: str | None,
    secrets: str | bytes | Iterable[str | bytes],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: datetime | float | None = None,
) -> datetime:
    """Check a webhook request: ``body`` is the raw request body exactly as received,
    ``header`` the ``X-Tokengov-Signature`` value, ``secrets`` the receiver's secret (or
    several, while rotating). Returns the signed time (UTC) when some ``v1`` matches some
    secret and the time is within ``tolerance_s`` of ``now`` (default: the clock);
    raises :class:`SignatureError` otherwise. Comparisons are constant-time."""
    parsed = parse_header(header)
    keys = [secrets] if isinstance(secrets, str | bytes) else list(secrets)
    if not keys:
        raise SignatureError("no secret to verify with")
    matched = False
    for key in keys:
        expected = signature(key, body, parsed.timestamp).encode()
        for candidate in parsed.signatures:
            if len(candidate) == 64 and set(candidate) <= _HEX_DIGITS:
                # Every pair is compared: no early exit that tells which one matched.
                matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise SignatureError(
            f"{SIGNATURE_HEADER}: no {SCHEME} signature matches the body "
            "(wrong secret, or the body was changed)"
        )
    age_s = _now_s(now) - parsed.timestamp
    if abs(age_s) > tolerance_s:
        when = f"{age_s:.0f}s ago" if age_s > 0 else f"{-age_s:.0f}s in the future"
        raise SignatureError(
            f"{SIGNATURE_HEADER}: signed {when}, beyond the tolerance of {tolerance_s:g}s "
            "(a replayed request, or a clock that is off)"
        )
    return datetime.fromtimestamp(parsed.timestamp, UTC)
