"""Redaction of secrets in every form a receiver may echo them: raw, percent-encoded
(either case, twice), form-encoded, JSON-escaped, HTML-escaped, a bytes repr, base64 and
base64url (of the secret, of SMTP AUTH PLAIN/LOGIN and basic-auth forms, at any offset),
inside URLs — whole or cut anywhere. The encodings are made here with the standard
library; the checks search for every 8-character piece and every encoding."""

from __future__ import annotations

import base64
import html
import json
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests import secret_forms
from tests.secret_forms import pct_lower
from tokengov.sinks.router.receivers.base import Secrets
from tokengov.sinks.router.redact import FRAGMENT_CHARS, REDACTED, Redactor, excerpt

PD_KEY = "pd-routing-key-0123456789abcdef"
USER = "mailer"


def leaks(text: str, secret: str) -> list[str]:
    return secret_forms.leaks(text, secret, user=USER)


def echoes(secret: str) -> list[str]:
    """What a server might answer, each with the secret in one form."""
    raw = secret.encode()
    request = f'POST /v2/enqueue\n{{"routing_key": "{secret}", "event_action": "trigger"}}'
    return [
        request,
        json.dumps({"error": "invalid", "echo": request}),
        json.dumps({"echo": request}, ensure_ascii=False).replace("/", "\\/"),
        "url=" + quote(request, safe=""),
        "url=" + pct_lower(quote(request, safe="")),
        "q=" + quote_plus(request),
        "double=" + quote(quote(request, safe=""), safe=""),
        f"<pre>{html.escape(request)}</pre>",
        f"got {raw!r}",
        "535 5.7.8 bad login " + base64.b64encode(b"\0" + USER.encode() + b"\0" + raw).decode(),
        "334 " + base64.b64encode(raw).decode(),
        "Authorization: Basic " + base64.b64encode(USER.encode() + b":" + raw).decode(),
        "debug=" + base64.urlsafe_b64encode(request.encode()).decode().rstrip("="),
        "nested=" + base64.b64encode(json.dumps({"k": secret}).encode()).decode(),
        f"https://hooks.example.com/x?token={quote(secret, safe='')}&b=1",
    ]


def cuts(text: str, secret: str) -> list[str]:
    """The text cut at every place inside the secret (as a server or a log might cut it)."""
    at = text.find(secret)
    if at < 0:
        return [text]
    return [text[: at + k] for k in range(1, len(secret) + 1)] + [
        text[at + k :] for k in range(len(secret))
    ]


def test_the_issue_case_the_first_22_characters_of_a_routing_key():
    answer = f'HTTP 400 {{"routing_key": "{PD_KEY}"}}'
    cut_before = answer[:200][: answer.index(PD_KEY) + 22]  # what the old code stored
    for text in (answer, cut_before):
        redacted = Redactor([PD_KEY]).redact(text)
        assert REDACTED in redacted and leaks(redacted, PD_KEY) == []


@pytest.mark.parametrize("index", range(len(echoes(PD_KEY))))
def test_every_encoding_and_every_cut_is_redacted(index):
    redactor = Redactor([PD_KEY])
    echo = echoes(PD_KEY)[index]
    assert leaks(echo, PD_KEY), "the echo must carry the secret (else this test proves nothing)"
    for text in [echo, *cuts(echo, PD_KEY)]:
        assert leaks(redactor.redact(text), PD_KEY) == [], text


def test_short_fragments_are_left_and_other_text_is_kept():
    redactor = Redactor([PD_KEY])
    text = f"HTTP 500 after 12 ms: bad key {PD_KEY[:7]}… see https://status.example.com"
    assert redactor.redact(text) == text  # 7 characters: not enough to be the secret
    assert redactor.redact("nothing secret here") == "nothing secret here"


def test_a_url_secret_keeps_its_host_and_loses_path_query_and_userinfo():
    url = "https://bot:pa55-w0rd-xyz@hooks.example.com/services/T000/B000/XXXXtokenXXXX?sig=abc"
    redactor = Redactor([url])
    text = (
        "POST https://hooks.example.com: HTTP 404: "
        f"no route for /services/T000/B000/XXXXtokenXXXX (pa55-w0rd-xyz) {json.dumps(url)}"
    )
    out = redactor.redact(text)
    assert out.startswith("POST https://hooks.example.com: HTTP 404: no route for ")
    for piece in ("T000/B000", "XXXXtoken", "pa55-w0rd", "tokenXXXX"):
        assert piece not in out


@settings(max_examples=150, deadline=None)
@given(
    secret=st.text(
        st.characters(exclude_categories=("Cs", "Cc")), min_size=FRAGMENT_CHARS, max_size=40
    ),
    data=st.data(),
)
def test_any_secret_in_any_encoding_cut_anywhere(secret, data):
    # The marker itself must not be a piece of the secret (it could not be told apart).
    assume(not any(REDACTED[i : i + 8] in secret for i in range(len(REDACTED) - 7)))
    redactor = Redactor([secret])
    echo = data.draw(st.sampled_from(echoes(secret)))
    text = f"POST http://127.0.0.1:8080: HTTP 500 after 3 ms: {echo} (end)"
    assert leaks(redactor.redact(text), secret) == []
    cut = data.draw(st.integers(min_value=0, max_value=len(text)))
    for piece in (text[:cut], text[cut:]):
        assert leaks(redactor.redact(piece), secret) == []


@settings(max_examples=80, deadline=None)
@given(
    secret=st.text(
        st.characters(min_codepoint=33, max_codepoint=126), min_size=FRAGMENT_CHARS, max_size=40
    )
)
def test_smtp_auth_forms_of_any_ascii_password(secret):
    assume(not any(REDACTED[i : i + 8] in secret for i in range(len(REDACTED) - 7)))
    redactor = Redactor([USER, secret])
    plain = base64.b64encode(f"\0{USER}\0{secret}".encode()).decode()
    login = base64.b64encode(secret.encode()).decode()
    for reply in (f"535 5.7.8 {plain} refused", f"535 {login}", f"554 for {USER}: {plain[5:]}"):
        assert leaks(redactor.redact(reply), secret) == []


def test_secrets_error_redacts_before_it_cuts():
    secrets = Secrets("pager", {"K": PD_KEY})
    secrets.get("K", "routing_key_env")
    message = "x" * 580 + PD_KEY + "y" * 100
    error = secrets.error(message, retryable=True)
    assert leaks(str(error), PD_KEY) == []
    assert len(str(error)) < 700


@pytest.mark.parametrize(
    "secret",
    [
        "0000%00\xa0",  # found by hypothesis (above): "%00" literal inside a JSON-escaped echo
        "ab%41cd&amp;\u00e9fgh",  # a percent escape and an HTML reference, both literal
        "key\\x41\\x42-rest",  # what reads as a bytes repr, literal
    ],
)
def test_a_secret_holding_what_reads_as_another_escape_is_found_in_each_echo(secret):
    """Decoding every escape at once turned the literal "%00" of a JSON-escaped secret into
    a NUL, so the decoded view no longer held the secret: each kind is also decoded alone."""
    redactor = Redactor([secret])
    for echo in echoes(secret):
        text = f"HTTP 500: {echo} (end)"
        assert leaks(redactor.redact(text), secret) == [], echo


def test_excerpt_is_one_short_line():
    assert excerpt("a\n b\t c", 100) == "a b c"
    assert excerpt("z" * 300, 200) == "z" * 199 + "…"


def test_http_request_logging_stays_quiet_when_the_root_logger_opens_up_later():
    """httpx logs each request's full URL at INFO (a Slack hook URL is a credential)."""
    import logging

    from tokengov.sinks.router.receivers.base import quiet_http_loggers

    httpx_logger = logging.getLogger("httpx")
    root = logging.getLogger()
    saved = (httpx_logger.level, root.level)
    try:
        httpx_logger.setLevel(logging.NOTSET)
        root.setLevel(logging.WARNING)  # quiet already when the receivers are built…
        quiet_http_loggers()
        root.setLevel(logging.DEBUG)  # …and a worker configures DEBUG logging afterwards
        assert not httpx_logger.isEnabledFor(logging.INFO)
    finally:
        httpx_logger.setLevel(saved[0])
        root.setLevel(saved[1])
