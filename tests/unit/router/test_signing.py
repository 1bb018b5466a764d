"""tokengov.core.signing: Stripe's scheme (t=<unix>,v1=HMAC-SHA256 over "<t>.<body>"), checked
against an implementation written here with hmac/hashlib, replay and tamper rejected."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokengov.core.signing import (
    DEFAULT_TOLERANCE_S,
    SignatureError,
    parse_header,
    sign,
    verify,
)

SECRET = "whsec-test-0123456789"
BODY = b'{"version":1,"notification_id":"n-1","alerts":[]}'
T = 1_764_392_400  # 2025-11-29T05:00:00Z


def stripe_v1(secret: str, body: bytes, t: int) -> str:
    """As Stripe's libraries compute it: hex HMAC-SHA256 of "%d.%s" % (t, payload)."""
    return hmac.new(secret.encode(), b"%d." % t + body, hashlib.sha256).hexdigest()


def test_the_header_is_t_then_v1_over_timestamp_dot_body():
    header = sign(SECRET, BODY, timestamp=T)
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert header == f"t={T},v1={stripe_v1(SECRET, BODY, T)}"
    # the body alone (the old sha256=<hex> form) is not what is signed any more
    assert hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest() not in header


def test_verify_accepts_a_fresh_signature_and_returns_its_time():
    header = f"t={T},v1={stripe_v1(SECRET, BODY, T)}"
    assert verify(BODY, header, SECRET, now=T + 10) == datetime.fromtimestamp(T, UTC)
    assert verify(BODY, header, SECRET, now=datetime.fromtimestamp(T + 10, UTC))


@pytest.mark.parametrize("offset_s", [DEFAULT_TOLERANCE_S + 1, 3600, 86_400 * 365])
def test_a_replay_with_an_old_timestamp_is_rejected(offset_s):
    header = sign(SECRET, BODY, timestamp=T)
    verify(BODY, header, SECRET, now=T + DEFAULT_TOLERANCE_S)  # the edge still passes
    with pytest.raises(SignatureError, match=r"signed \d+s ago, beyond the tolerance of 300s"):
        verify(BODY, header, SECRET, now=T + offset_s)


def test_a_timestamp_from_the_future_is_rejected():
    header = sign(SECRET, BODY, timestamp=T + DEFAULT_TOLERANCE_S + 1)
    with pytest.raises(SignatureError, match="in the future"):
        verify(BODY, header, SECRET, now=T)


def test_a_replay_cannot_just_change_t():
    """The timestamp is signed: moving it forward to pass the window breaks the signature."""
    old = sign(SECRET, BODY, timestamp=T)
    moved = old.replace(f"t={T}", f"t={T + 3600}")
    with pytest.raises(SignatureError, match="no v1 signature matches"):
        verify(BODY, moved, SECRET, now=T + 3600)


def test_a_tampered_body_is_rejected():
    header = sign(SECRET, BODY, timestamp=T)
    for tampered in (BODY.replace(b"n-1", b"n-2"), BODY + b" ", BODY[:-1]):
        with pytest.raises(SignatureError, match="no v1 signature matches the body"):
            verify(tampered, header, SECRET, now=T)


def test_a_wrong_secret_is_rejected_without_naming_either_secret():
    header = sign(SECRET, BODY, timestamp=T)
    with pytest.raises(SignatureError) as info:
        verify(BODY, header, "not-the-secret", now=T)
    assert SECRET not in str(info.value) and "not-the-secret" not in str(info.value)
    assert stripe_v1("not-the-secret", BODY, T) not in str(info.value)


def test_rotation_several_v1_values_and_several_secrets():
    old, new = "old-secret-aaaa", "new-secret-bbbb"
    both = sign([old, new], BODY, timestamp=T)
    assert both == f"t={T},v1={stripe_v1(old, BODY, T)},v1={stripe_v1(new, BODY, T)}"
    verify(BODY, both, old, now=T)  # a receiver that still has the old secret
    verify(BODY, both, new, now=T)  # one that already has the new one
    only_new = sign(new, BODY, timestamp=T)
    verify(BODY, only_new, [old, new], now=T)  # a receiver accepting either
    with pytest.raises(SignatureError):
        verify(BODY, only_new, [old], now=T)


def test_unknown_schemes_are_ignored_and_v1_is_still_required():
    v1 = stripe_v1(SECRET, BODY, T)
    verify(BODY, f"t={T}, v0=abc, v1={v1}, v2=zzz", SECRET, now=T)
    with pytest.raises(SignatureError, match="no v1= signature"):
        verify(BODY, f"t={T},v0={v1}", SECRET, now=T)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "no X-Tokengov-Signature header"),
        ("", "no X-Tokengov-Signature header"),
        (f"sha256={'0' * 64}", "exactly one t="),
        (f"v1={'0' * 64}", "exactly one t="),
        (f"t={T},t={T},v1={'0' * 64}", "exactly one t="),
        (f"t=soon,v1={'0' * 64}", "whole Unix seconds"),
        (f"t=-5,v1={'0' * 64}", "whole Unix seconds"),
        (f"t={T},v1", "is not key=value"),
        (f"t={T}", "no v1= signature"),
        (f"t={T},v1=short", "no v1 signature matches"),
    ],
)
def test_malformed_headers_say_what_is_wrong(header, message):
    with pytest.raises(SignatureError, match=message):
        verify(BODY, header, SECRET, now=T)


def test_empty_secret_is_an_error_not_a_valid_key():
    with pytest.raises(SignatureError, match="secret is empty"):
        sign("", BODY, timestamp=T)
    with pytest.raises(SignatureError, match="no secret"):
        verify(BODY, sign(SECRET, BODY, timestamp=T), [], now=T)


def test_parse_header():
    parsed = parse_header(f"t={T},v1=AB{'c' * 62},v1={'d' * 64}")
    assert parsed.timestamp == T
    assert parsed.signatures == (f"ab{'c' * 62}", "d" * 64)


@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(max_size=2048),
    secret=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=64),
    t=st.integers(min_value=946_684_800, max_value=4_102_444_799),
    flip=st.integers(min_value=0),
)
def test_any_body_and_secret_round_trip_and_any_changed_byte_fails(body, secret, t, flip):
    header = sign(secret, body, timestamp=t)
    assert header == f"t={t},v1={stripe_v1(secret, body, t)}"
    assert verify(body, header, secret, now=t) == datetime.fromtimestamp(t, UTC)
    if body:
        i = flip % len(body)
        changed = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
        with pytest.raises(SignatureError):
            verify(changed, header, secret, now=t)
