"""Scrubbing secrets out of text, in whatever form a receiver echoes them back.

A failing endpoint may answer with the request it got: the URL (a Slack hook's path,
a token in a query string, basic-auth userinfo), the headers (``Authorization:
Basic base64(user:pass)``), the body (a PagerDuty routing key), an SMTP server its
view of ``AUTH PLAIN base64("\\0user\\0pass")``. It may quote them raw, percent-encoded
(either hex case, twice), JSON-escaped (``\\uXXXX``, ``\\/``), HTML-escaped, as a
Python bytes repr (``\\xNN``), base64 or base64url — whole, or cut anywhere.

:class:`Redactor` finds all of those. It decodes the text into a *view* (each
decoded character remembers the span of the original it came from), and in the view
it marks

- every run of at least :data:`FRAGMENT_CHARS` characters that is a piece of a secret
  (so the first 22 characters of a routing key are caught as surely as the whole), and
  every whole occurrence of a shorter secret (at least :data:`MIN_SECRET_CHARS`);
- every base64 or base64url token whose decoded bytes contain 6 bytes of a secret (8
  base64 characters' worth) or, read as text the same way, a piece as above (at any
  alignment: the secret may sit anywhere inside the encoded data).

The marked spans of the original text are replaced by :data:`REDACTED`, and the check
runs again on the result until nothing is found. Callers redact the *whole* text
first and cut it afterwards: a cut never leaves a recognisable piece behind.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import unquote, urlsplit

__all__ = [
    "FRAGMENT_CHARS",
    "MIN_SECRET_CHARS",
    "REDACTED",
    "Redactor",
    "excerpt",
    "secret_parts",
]

REDACTED: Final = "«redacted»"
#: A piece of a secret this long is as good as the secret: it is redacted wherever it is.
FRAGMENT_CHARS: Final = 8
#: Inside base64, 6 bytes of a secret (8 base64 characters) are enough to redact the token.
_B64_FRAGMENT_BYTES: Final = 6
#: Shorter values cannot be told from ordinary words; they are not redacted.
MIN_SECRET_CHARS: Final = 4
_MAX_ROUNDS = 4
_DECODE_DEPTH = 2

_PERCENT = r"(?:%[0-9A-Fa-f]{2})+"  # percent-encoded bytes (UTF-8 sequences decode together)
_BYTES_REPR = r"(?:\\x[0-9A-Fa-f]{2})+"  # a Python bytes repr
_JSON = (
    r"(?:\\u[0-9A-Fa-f]{4})+"  # JSON \uXXXX (surrogate pairs decode together)
    r"|\\[\"\\/bfnrt]"  # JSON's short escapes
)
_HTML = r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z]{2,8});"  # HTML character references
#: Every escape at once (an echo may mix them), then each kind alone: a secret may hold what
#: reads as another kind's escape (``%00`` in a JSON-escaped value must stay ``%00``).
_ESCAPES: Final = tuple(
    re.compile(pattern)
    for pattern in (
        "|".join((_PERCENT, _BYTES_REPR, _JSON, _HTML)),
        _PERCENT,
        _BYTES_REPR,
        _JSON,
        _HTML,
    )
)
_JSON_SHORT = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_B64_TOKEN = re.compile(r"[A-Za-z0-9+/_\-]{6,}={0,2}")


def _utf8(raw: bytes, step: int) -> list[tuple[str, int, int]]:
    """Decode escaped bytes (each written with ``step`` characters) into characters with
    their offsets in the escape sequence; a byte that is not UTF-8 stands for itself."""
    out: list[tuple[str, int, int]] = []
    i = 0
    while i < len(raw):
        lead = raw[i]
        size = 1 if lead < 0xC2 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        try:
            char = raw[i : i + size].decode("utf-8")
        except UnicodeDecodeError:
            char, size = raw[i : i + 1].decode("utf-8", errors="surrogateescape"), 1
        out.append((char, i * step, (i + size) * step))
        i += size
    return out


def _unescape(token: str) -> list[tuple[str, int, int]]:
    """What an escape sequence stands for: characters with their offsets in ``token``."""
    if token[0] == "%":
        return _utf8(bytes(int(token[i + 1 : i + 3], 16) for i in range(0, len(token), 3)), 3)
    if token.startswith("\\x"):
        return _utf8(bytes(int(token[i + 2 : i + 4], 16) for i in range(0, len(token), 4)), 4)
    if token.startswith("\\u"):
        units = [int(token[i + 2 : i + 6], 16) for i in range(0, len(token), 6)]
        out: list[tuple[str, int, int]] = []
        k = 0
        while k < len(units):
            high, low = units[k], units[k + 1] if k + 1 < len(units) else 0
            if 0xD800 <= high < 0xDC00 <= low < 0xE000:
                pair = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                out.append((chr(pair), 6 * k, 6 * k + 12))
                k += 2
            else:
                out.append((chr(high), 6 * k, 6 * k + 6))
                k += 1
        return out
    if token[0] == "\\":
        return [(_JSON_SHORT.get(token[1], token[1]), 0, len(token))]
    return [(char, 0, len(token)) for char in html.unescape(token)]


def _decode(text: str, escapes: re.Pattern[str]) -> tuple[str, list[tuple[int, int]]]:
    """One pass of unescaping what ``escapes`` matches: the decoded text and, for each of its
    characters, the span of ``text`` it came from."""
    chars: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    for match in escapes.finditer(text):
        chars.append(text[pos : match.start()])
        spans.extend((i, i + 1) for i in range(pos, match.start()))
        for char, start, end in _unescape(match.group()):
            chars.append(char)
            spans.append((match.start() + start, match.start() + end))
        pos = match.end()
    chars.append(text[pos:])
    spans.extend((i, i + 1) for i in range(pos, len(text)))
    return "".join(chars), spans


_View = tuple[str, list[tuple[int, int]]]


def _passes(view: _View, escapes: re.Pattern[str]) -> list[_View]:
    """Each pass of unescaping what ``escapes`` matches, until nothing changes (at most three:
    double encoding), with the spans of the original text its characters came from."""
    out: list[_View] = []
    text, spans = view
    for _ in range(3):
        decoded, inner = _decode(text, escapes)
        if decoded == text:
            break
        spans = [(spans[a][0], spans[b - 1][1]) for a, b in inner]
        text = decoded
        out.append((text, spans))
    return out


def _views(text: str) -> tuple[list[_View], _View]:
    """Every view of ``text`` to search — the text, each pass of unescaping every kind of
    escape at once, then of each kind alone (a secret may itself contain what looks like
    another kind's escape) — and the fullest decoding (where base64 is looked for)."""
    raw: _View = (text, [(i, i + 1) for i in range(len(text))])
    every_kind, *each_kind = _ESCAPES
    combined = _passes(raw, every_kind)
    views = [raw, *combined]
    seen = {view for view, _ in views}
    for escapes in each_kind:
        for view in _passes(raw, escapes):
            if view[0] not in seen:
                seen.add(view[0])
                views.append(view)
    return views, combined[-1] if combined else raw


def _canonical(text: str) -> str:
    # A form-encoded space is "+": let either stand for the other.
    return text.replace(" ", "+")


def secret_parts(value: str) -> tuple[list[str], list[str]]:
    """What of one secret value must be redacted: (pieces that are secret in any part,
    values that are secret only whole). A URL's scheme and host are not secret (they are
    shown, as ``safe_target``); its path, query, fragment and userinfo are, so a URL is
    redacted whole and those parts piecewise."""
    parts = urlsplit(value)
    if not (parts.scheme and parts.netloc):
        return [value], []
    pieces = [
        p
        for p in (
            parts.path if len(parts.path) > 1 else "",
            parts.query,
            parts.fragment,
            parts.username or "",
            parts.password or "",
        )
        if p
    ]
    pieces += [unquote(p) for p in pieces if unquote(p) != p]
    return pieces, [value]


class Redactor:
    """Knows a receiver's secrets and scrubs them from text (see the module's doc)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._pieces: set[str] = set()
        self._whole: set[str] = set()
        self._grams: set[str] = set()
        self._short: list[str] = []
        self._byte_grams: set[bytes] = set()
        self._byte_short: list[bytes] = []
        for secret in secrets:
            self.add(secret)

    def add(self, value: str) -> None:
        pieces, whole = secret_parts(value)
        for piece in pieces:
            if len(piece) >= MIN_SECRET_CHARS and piece not in self._pieces:
                self._pieces.add(piece)
                canonical = _canonical(piece)
                if len(canonical) >= FRAGMENT_CHARS:
                    self._grams.update(
                        canonical[i : i + FRAGMENT_CHARS]
                        for i in range(len(canonical) - FRAGMENT_CHARS + 1)
                    )
                else:
                    self._short.append(canonical)
                raw = piece.encode("utf-8", errors="surrogateescape")
                if len(canonical) >= FRAGMENT_CHARS:
                    n = _B64_FRAGMENT_BYTES
                    self._byte_grams.update(raw[i : i + n] for i in range(len(raw) - n + 1))
                else:
                    self._byte_short.append(raw)
        self._whole.update(w for w in whole if len(w) >= MIN_SECRET_CHARS)

    def __bool__(self) -> bool:
        return bool(self._pieces or self._whole)

    # ----------------------------------------------------------------- finding

    def _marks(self, view: str) -> list[tuple[int, int]]:
        """Spans of ``view`` (decoded text) that are a secret or a piece of one."""
        canonical = _canonical(view)
        n = FRAGMENT_CHARS
        marks = [
            (i, i + n) for i in range(len(canonical) - n + 1) if canonical[i : i + n] in self._grams
        ]
        for value in [*self._short, *(_canonical(w) for w in self._whole)]:
            at = canonical.find(value)
            while at >= 0:
                marks.append((at, at + len(value)))
                at = canonical.find(value, at + 1)
        return marks

    def _bytes_secret(self, raw: bytes, depth: int) -> bool:
        n = _B64_FRAGMENT_BYTES
        if any(raw[i : i + n] in self._byte_grams for i in range(len(raw) - n + 1)):
            return True
        if any(short in raw for short in self._byte_short):
            return True
        if depth <= 0:
            return False
        # The decoded data may itself be escaped or encoded (JSON in base64, …); look
        # inside when it reads as text (a wrong alignment decodes to noise: skip it).
        text = raw.decode("utf-8", errors="replace")
        if text.count("\ufffd") > len(text) // 20:
            return False
        return bool(self._find(text, depth - 1))

    def _base64_secret(self, token: str, depth: int) -> bool:
        """Whether a base64 or base64url token carries a secret, wherever in it the
        encoded secret starts (each of the four alignments is decoded)."""
        body = token.rstrip("=").replace("-", "+").replace("_", "/")
        for offset in range(4):
            chunk = body[offset:]
            if len(chunk) % 4 == 1:
                chunk = chunk[:-1]
            if not chunk:
                continue
            try:
                raw = base64.b64decode(chunk + "=" * (-len(chunk) % 4), validate=True)
            except (binascii.Error, ValueError):
                continue
            if self._bytes_secret(raw, depth):
                return True
        return False

    def _find(self, text: str, depth: int = _DECODE_DEPTH) -> list[tuple[int, int]]:
        """Spans of ``text`` to redact."""
        views, (view, spans) = _views(text)
        found: list[tuple[int, int]] = []
        for decoded, decoded_spans in views:
            found += [
                (decoded_spans[a][0], decoded_spans[b - 1][1])
                for a, b in self._marks(decoded)
                if b > a
            ]
        for match in _B64_TOKEN.finditer(view):
            if self._base64_secret(match.group(), depth):
                found.append((spans[match.start()][0], spans[match.end() - 1][1]))
        return found

    # -------------------------------------------------------------- redacting

    def redact(self, text: str) -> str:
        """``text`` with every secret, encoded or not, whole or in pieces, replaced by
        :data:`REDACTED`."""
        if not self:
            return text
        for _ in range(_MAX_ROUNDS):
            found = sorted(self._find(text))
            if not found:
                return text
            merged: list[tuple[int, int]] = []
            for start, end in found:
                if merged and start <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
                else:
                    merged.append((start, end))
            out: list[str] = []
            pos = 0
            for start, end in merged:
                out.append(text[pos:start])
                out.append(REDACTED)
                pos = end
            out.append(text[pos:])
            text = "".join(out)
        # Still finding something after several rounds: give up on the text, not the secret.
        return REDACTED if self._find(text) else text


def excerpt(text: str, limit: int) -> str:
    """At most ``limit`` characters of ``text`` on one line (cut *after* redacting)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
