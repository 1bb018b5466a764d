"""Label matchers, parsed and matched exactly as Prometheus Alertmanager does.

Syntax (Alertmanager's classic matcher parser, ``pkg/labels/parse.go``)::

    team=search            severity=~"critical|warning"      kind!~"loop|retry_storm"
    {team="search", kind!="loop"}        quote="She said: \\"hi\\""

- a label name (``[a-zA-Z_:][a-zA-Z0-9_:]*``), one of ``=`` ``!=`` ``=~`` ``!~``, and a
  value that may be enclosed in double quotes; whitespace around each part is dropped;
- inside the value ``\\"`` is a double quote, ``\\\\`` a backslash and ``\\n`` a line feed;
  any other backslash is literal; an unescaped ``"`` anywhere but at both ends is an
  error (so are unbalanced quotes); single quotes and backticks are ordinary characters;
- :func:`parse_matchers` reads a comma-separated list, optionally in ``{…}``, with commas
  inside quotes kept in the value.

Regular expressions are RE2 (the engine Alertmanager's Go ``regexp`` package implements),
anchored as Alertmanager anchors them, ``^(?:…)$``: ``(?i)critical``, ``[[:digit:]]`` and
``\\p{L}`` work and mean what they mean there (``\\d`` is ASCII only). A label that is
absent matches as the empty string. ``str(matcher)`` is Alertmanager's ``Matcher.String()``
(``foo="bar "``, quotes and backslashes escaped), which parses back to the same matcher.

Upstream: github.com/prometheus/alertmanager ``pkg/labels/{parse,matcher}.go`` at 68fb2d575.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import re2

__all__ = [
    "MatchOp",
    "Matcher",
    "compile_regex",
    "from_match",
    "is_valid_label_name",
    "matches_all",
    "parse_matcher",
    "parse_matchers",
    "sort_matchers",
]

MatchOp = Literal["=", "!=", "=~", "!~"]

#: Prometheus' ``model.LabelNameRE``: what ``match``, ``group_by`` and ``equal`` accept.
_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# pkg/labels/parse.go's regular expression. Go's \s is [\t\n\f\r ] and its $ (no (?m)) is
# the end of the text, hence the explicit class and \Z; '=~' comes before '=' so that only
# '=' is not consumed with the '~' left to the value.
_WS = r"[\t\n\f\r ]"
_MATCHER: Final = re.compile(
    rf"{_WS}*([a-zA-Z_:][a-zA-Z0-9_:]*){_WS}*(=~|=|!=|!~){_WS}*((?s:.*?)){_WS}*\Z"
)
_RESERVED: Final = frozenset("{}!=~,\\\"'`")
#: Go's unicode.IsSpace (Python's str.isspace also takes U+001C..U+001F).
_GO_SPACE_CHARS: Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_GO_SPACE: Final = frozenset(_GO_SPACE_CHARS)
_ORDER: Final[dict[str, int]] = {"=": 0, "!=": 1, "=~": 2, "!~": 3}


def is_valid_label_name(name: str) -> bool:
    """Prometheus' classic label name rule, ``[a-zA-Z_][a-zA-Z0-9_]*``."""
    return _LABEL_NAME.fullmatch(name) is not None


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    return options


_OPTIONS: Final = _re2_options()


def compile_regex(pattern: str) -> Any:
    """``pattern`` as Alertmanager compiles a matcher's regex: RE2, ``^(?:pattern)$``.
    Raises ValueError with RE2's reason."""
    try:
        return re2.compile(f"^(?:{pattern})$", _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"invalid regular expression {pattern!r}: {reason}") from None


def _is_reserved(char: str) -> bool:
    # matcher.go isReserved: unicode.IsSpace or one of {}!=~,\"'`
    return char in _RESERVED or char in _GO_SPACE


def _open_metrics_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


_GO_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def _go_quote(value: str) -> str:
    """Go's ``strconv.Quote``: printable characters as they are, the rest escaped."""
    out = ['"']
    for char in value:
        if char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable() or char == " ":
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)


@dataclass(frozen=True)
class Matcher:
    """One condition on one label (Alertmanager's ``labels.Matcher``). Constructing one
    compiles its regex (RE2, anchored) and raises ValueError when it does not compile;
    the name is checked by the parsers and the policy, not here (as ``NewMatcher``)."""

    name: str
    op: MatchOp
    value: str
    _regex: Any = field(default=None, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        if self.op not in _ORDER:
            raise ValueError(f"unknown match operator {self.op!r}")
        if self.op in ("=~", "!~"):
            object.__setattr__(self, "_regex", compile_regex(self.value))

    @classmethod
    def equal(cls, name: str, value: str) -> Matcher:
        return cls(name, "=", value)

    @classmethod
    def regex(cls, name: str, pattern: str) -> Matcher:
        return cls(name, "=~", pattern)

    def matches_value(self, value: str) -> bool:
        """Alertmanager's ``Matcher.Matches(value)``."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = self._regex.search(value) is not None
        return hit if self.op == "=~" else not hit

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether the label set matches; an absent label is the empty string."""
        return self.matches_value(labels.get(self.name, ""))

    def matches_empty(self) -> bool:
        """Alertmanager's silence check ``matchesEmpty``: an ``=`` matcher on the empty
        value or an ``=~`` matcher whose regex matches it (``!=`` and ``!~`` never count).
        A silence whose matchers all match empty is refused."""
        if self.op == "=":
            return self.value == ""
        if self.op == "=~":
            return self.matches_value("")
        return False

    def __str__(self) -> str:
        """Alertmanager's ``Matcher.String()``: ``name="value"`` with the value escaped
        (``\\\\``, ``\\n``, ``\\"``); a name with reserved characters is quoted too."""
        if any(_is_reserved(c) for c in self.name):
            return f"{_go_quote(self.name)}{self.op}{_go_quote(self.value)}"
        return f'{self.name}{self.op}"{_open_metrics_escape(self.value)}"'

    def sort_key(self) -> tuple[str, str, int]:
        """Alertmanager's ``Matchers.Less``: by name, then value, then type."""
        return (self.name, self.value, _ORDER[self.op])


def parse_matcher(text: str) -> Matcher:
    """One matcher, as Alertmanager's ``labels.ParseMatcher``. Raises ValueError."""
    found = _MATCHER.match(text)
    if found is None:
        raise ValueError(f"bad matcher format: {text}")
    name, op, raw = found.groups()
    rest = raw
    expect_trailing_quote = rest.startswith('"')
    if expect_trailing_quote:
        rest = rest[1:]
    try:
        rest.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"matcher value not valid UTF-8: {raw}") from None
    value: list[str] = []
    escaped = False
    last = len(rest) - 1
    for i, char in enumerate(rest):
        if escaped:
            escaped = False
            if char == "n":
                value.append("\n")
            elif char in '"\\':
                value.append(char)
            else:  # a spurious escape: the backslash is literal
                value.append("\\" + char)
            continue
        if char == "\\":
            if i < last:
                escaped = True
                continue
            value.append("\\")  # a backslash as the last character is literal
        elif char == '"':
            if not expect_trailing_quote or i < last:
                raise ValueError(f"matcher value contains unescaped double quote: {raw}")
            expect_trailing_quote = False
        else:
            value.append(char)
    if expect_trailing_quote:
        raise ValueError(f"matcher value contains unescaped double quote: {raw}")
    return Matcher(name, op, "".join(value))  # type: ignore[arg-type]


def parse_matchers(text: str) -> list[Matcher]:
    """A comma-separated list, ``{a="b", c=~"d"}`` (braces optional), as Alertmanager's
    ``labels.ParseMatchers``: commas inside double quotes belong to the value, a trailing
    comma is allowed, ``{}`` is the empty list. Raises ValueError."""
    text = text.removeprefix("{").removesuffix("}")
    tokens: list[str] = []
    token: list[str] = []
    inside_quotes = escaped = False
    for char in text:
        if char == "," and not inside_quotes:
            tokens.append("".join(token))
            token = []
            continue
        if char == '"':
            if not escaped:
                inside_quotes = not inside_quotes
            else:
                escaped = False
        elif char == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(char)
    last = "".join(token).strip(_GO_SPACE_CHARS)  # Go's strings.TrimSpace
    if last:
        tokens.append(last)
    return [parse_matcher(t) for t in tokens]


def sort_matchers(matchers: Iterable[Matcher]) -> tuple[Matcher, ...]:
    """In Alertmanager's order (``sort.Sort(labels.Matchers)``)."""
    return tuple(sorted(matchers, key=Matcher.sort_key))


def from_match(match: Mapping[str, str], match_re: Mapping[str, str]) -> list[Matcher]:
    """A policy's ``match`` (equality) and ``match_re`` (regex) maps as matchers."""
    return [Matcher.equal(k, v) for k, v in match.items()] + [
        Matcher.regex(k, v) for k, v in match_re.items()
    ]


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
