"""Silences: mute alerts that match a set of matchers for a while, with who and why.

A silence is created, listed and expired from the CLI (``tokengov alerts silence``),
published on the compacted topic ``tokengov.silences`` (key = silence id, the
latest version wins) and followed by every router. Expiring a silence
publishes it again with ``ends_at`` = now.

Matchers are Alertmanager's (:mod:`tokengov.core.matchers`) and are stored in
Alertmanager's ``Matcher.String()`` form (``team="search"``, ``foo="bar "``: quoted and
escaped, so a silence read back means what it meant), with ``matcher_syntax:
"alertmanager"``. A stored silence without ``matcher_syntax`` was written before
(issue 15) in the old unquoted form ``name<op>value``; it is read with the old rules
(the value verbatim after the operator, surrounding whitespace and one pair of quotes
dropped) and from then on kept in the new form.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tokengov.core.contracts import UtcTimestamp, utcnow
from tokengov.core.matchers import Matcher, is_valid_label_name, matches_all, parse_matcher

__all__ = ["Silence", "SilenceState", "SilenceStore", "new_silence"]

SilenceState = Literal["pending", "active", "expired"]

#: The form silences were stored in before issue 15: ``name<op>value``, unquoted.
_LEGACY = re.compile(r"^\s*([^=!~\s]+)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


def _parse_legacy(text: str) -> Matcher:
    """A matcher as stored before issue 15 (the value verbatim, one pair of quotes dropped)."""
    found = _LEGACY.match(text)
    if not found:
        raise ValueError(f"not a matcher: {text!r}")
    name, op, value = found.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return Matcher(name, op, value)  # type: ignore[arg-type]


class Silence(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    silence_id: str = Field(min_length=1, max_length=128)
    matchers: list[str] = Field(
        min_length=1,
        description='Alertmanager matchers, stored as Matcher.String(): team="search", '
        'kind=~"loop|runaway", severity!="info"',
    )
    matcher_syntax: Literal["alertmanager"] = Field(
        default="alertmanager",
        description="How matchers are written; absent in silences stored before issue 15.",
    )
    starts_at: UtcTimestamp
    ends_at: UtcTimestamp
    created_by: str = Field(min_length=1, max_length=256)
    reason: str = Field(min_length=1, max_length=2000)
    updated_at: UtcTimestamp

    @model_validator(mode="before")
    @classmethod
    def _read_legacy(cls, data: Any, info: ValidationInfo) -> Any:
        """A stored silence without ``matcher_syntax`` is in the old form: rewrite it."""
        stored = bool(info.context and info.context.get("stored"))
        if not (stored and isinstance(data, dict) and "matcher_syntax" not in data):
            return data
        matchers = data.get("matchers")
        if isinstance(matchers, list) and all(isinstance(m, str) for m in matchers):
            data = {**data, "matchers": [str(_parse_legacy(m)) for m in matchers]}
        return {**data, "matcher_syntax": "alertmanager"}

    @field_validator("matchers")
    @classmethod
    def _parse(cls, value: list[str]) -> list[str]:
        parsed = []
        for i, text in enumerate(value):
            try:
                matcher = parse_matcher(text)
            except ValueError as exc:
                raise ValueError(f"matchers[{i}]: {exc}") from None
            if not is_valid_label_name(matcher.name):
                raise ValueError(f"matchers[{i}]: invalid label name {matcher.name!r}")
            parsed.append(matcher)
        if all(m.matches_empty() for m in parsed):
            raise ValueError(
                "at least one matcher must not match the empty string "
                "(a silence must not mute everything)"
            )
        return [str(m) for m in parsed]

    @model_validator(mode="after")
    def _ordered(self) -> Silence:
        if self.ends_at < self.starts_at:
            raise ValueError("ends_at is before starts_at")
        return self

    @cached_property
    def parsed(self) -> tuple[Matcher, ...]:
        return tuple(parse_matcher(m) for m in self.matchers)

    def state(self, now: datetime) -> SilenceState:
        if now < self.starts_at:
            return "pending"
        if now >= self.ends_at:
            return "expired"
        return "active"

    def mutes(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.state(now) == "active" and matches_all(self.parsed, labels)

    def expired(self, now: datetime) -> Silence:
        """The same silence ending now (or unchanged when it already ended)."""
        if self.state(now) == "expired":
            return self
        ends = max(now, self.starts_at)
        return self.model_copy(update={"ends_at": ends, "updated_at": now})

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Silence:
        """A stored silence (topic or state), in the current or the pre-issue-15 form."""
        return cls.model_validate_json(raw, context={"stored": True})


def new_silence(
    matchers: Iterable[str],
    *,
    created_by: str,
    reason: str,
    ends_at: datetime,
    starts_at: datetime | None = None,
    now: datetime | None = None,
) -> Silence:
    now = now or utcnow()
    return Silence(
        silence_id=str(uuid.uuid4()),
        matchers=list(matchers),
        starts_at=starts_at or now,
        ends_at=ends_at,
        created_by=created_by,
        reason=reason,
        updated_at=now,
    )


class SilenceStore:
    """The silences a router knows, latest version per id. Thread-safe: the topic
    follower thread writes, the dispatcher reads."""

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Silence] = {}
        for silence in silences:
            self.apply(silence)

    def apply(self, silence: Silence) -> bool:
        """Keep ``silence`` unless a newer version of it is already known. True when kept."""
        with self._lock:
            known = self._by_id.get(silence.silence_id)
            if known is not None and known.updated_at >= silence.updated_at:
                return False
            self._by_id[silence.silence_id] = silence
            return True

    def get(self, silence_id: str) -> Silence | None:
        with self._lock:
            return self._by_id.get(silence_id)

    def all(self) -> list[Silence]:
        with self._lock:
            return sorted(self._by_id.values(), key=lambda s: (s.starts_at, s.silence_id))

    def muting(self, labels: Mapping[str, str], now: datetime) -> list[Silence]:
        with self._lock:
            return [s for s in self._by_id.values() if s.mutes(labels, now)]
