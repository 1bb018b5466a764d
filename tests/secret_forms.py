"""Every form of a secret a leak check looks for, built with the standard library only:
the secret raw, percent-encoded (both hex cases), form-encoded, JSON-escaped (with and
without ``\\/``), HTML-escaped, as a bytes repr, base64 and base64url (whole, and the
characters any base64 text carrying it must contain, at each alignment), the SMTP AUTH
PLAIN and basic-auth forms, and every 8-character piece of it."""

from __future__ import annotations

import base64
import html
import json
import re
from urllib.parse import quote, quote_plus

PIECE_CHARS = 8


def pct_lower(encoded: str) -> str:
    """Percent-encoding with lower-case hex digits (the text itself untouched)."""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded)


def b64_cores(raw: bytes) -> set[str]:
    """The characters of base64/base64url(prefix + raw + suffix) fixed by ``raw`` alone,
    for each of the three alignments: present in any encoding that carries ``raw``."""
    cores: set[str] = set()
    for k in range(3):
        std = base64.b64encode(b"\0" * k + raw).decode()
        start = -(-8 * k // 6)
        end = (8 * (k + len(raw))) // 6
        core = std[start:end]
        if len(core) >= PIECE_CHARS:
            cores.update({core, core.replace("+", "-").replace("/", "_")})
    return cores


def forms(secret: str, *, user: str = "") -> set[str]:
    raw = secret.encode("utf-8", errors="surrogatepass")
    found = {
        secret,
        quote(secret, safe=""),
        pct_lower(quote(secret, safe="")),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1].replace("/", "\\/"),
        html.escape(secret),
        repr(raw)[2:-1],
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    if user:
        found.add(base64.b64encode(b"\0" + user.encode() + b"\0" + raw).decode())
        found.add(base64.b64encode(user.encode() + b":" + raw).decode())
    found |= b64_cores(raw)
    found |= {secret[i : i + PIECE_CHARS] for i in range(len(secret) - PIECE_CHARS + 1)}
    return {f for f in found if len(f) >= PIECE_CHARS}


def leaks(text: str, secret: str, *, user: str = "") -> list[str]:
    """The forms of ``secret`` found in ``text``."""
    return sorted(f for f in forms(secret, user=user) if f in text)
