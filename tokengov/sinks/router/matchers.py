"""Label matchers, as in Alertmanager: ``team=search``, ``kind!=loop``, ``task_id=~t-8.*``,
``severity!~info|warning``.

Regular expressions are anchored (they must match the whole value), and a label
that is absent matches as the empty string, exactly as Alertmanager does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["MatchOp", "Matcher", "from_match", "matches_all", "parse_matcher", "parse_matchers"]

MatchOp = Literal["=", "!=", "=~", "!~"]

_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
# Longest operators first so "=~" is not read as "=" followed by "~…".
_SPLIT = re.compile(r"^\s*([^=!~\s]+)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Matcher:
    """One condition on one label."""

    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not _LABEL.match(self.name):
            raise ValueError(f"invalid label name {self.name!r}")
        if self.op in ("=~", "!~"):
            try:
                compiled = re.compile(f"(?:{self.value})")
            except re.error as exc:
                raise ValueError(f"{self.name}{self.op}{self.value}: invalid regex: {exc}") from exc
            object.__setattr__(self, "_regex", compiled)

    @classmethod
    def equal(cls, name: str, value: str) -> Matcher:
        return cls(name, "=", value)

    @classmethod
    def regex(cls, name: str, pattern: str) -> Matcher:
        return cls(name, "=~", pattern)

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(value) is not None
        return hit if self.op == "=~" else not hit

    def matches_empty(self) -> bool:
        """True when an alert without this label would match (a silence must not be all such)."""
        return self.matches({})

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'

    def to_text(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def parse_matcher(text: str) -> Matcher:
    """``team=search`` → ``Matcher("team", "=", "search")``. Quotes around the value are dropped."""
    found = _SPLIT.match(text)
    if not found:
        raise ValueError(
            f"not a matcher: {text!r} (use label=value, label!=value, label=~regex or label!~regex)"
        )
    name, op, value = found.groups()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return Matcher(name, op, value)  # type: ignore[arg-type]


def from_match(match: Mapping[str, str], match_re: Mapping[str, str]) -> list[Matcher]:
    """A policy's ``match`` (equality) and ``match_re`` (regex) maps as matchers."""
    return [Matcher.equal(k, v) for k, v in match.items()] + [
        Matcher.regex(k, v) for k, v in match_re.items()
    ]


def parse_matchers(texts: Iterable[str]) -> list[Matcher]:
    return [parse_matcher(t) for t in texts]


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
