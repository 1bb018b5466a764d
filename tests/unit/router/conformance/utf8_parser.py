"""The UTF-8 matcher parser's tests (``matcher/parse/parse_test.go`` of
github.com/prometheus/alertmanager at commit 68fb2d575), as data, with how tokengov's
parser (Alertmanager's classic one, ``pkg/labels/parse.go``) stands to each case.

Alertmanager's default mode (``matcher/compat/parse.go``, ``FallbackMatchersParser`` and
``FallbackMatcherParser``) parses with both parsers and, whenever the classic parser
accepts the input, returns the classic result (the UTF-8 one only when they agree). So
tokengov agrees with Alertmanager's default on every input the classic parser accepts;
it differs only where the classic parser refuses what the UTF-8 parser accepts. Each case
is marked (``status``):

- ``None``: tokengov gives upstream's expected result (or an error where upstream has one);
- ``"compat_braces"``: a single matcher in braces; the compat layer refuses it before either
  parser runs (``unexpected open or close brace``), as tokengov's ``parse_matcher`` does;
- a ``SKIP_*`` reason: a deliberate difference, listed in docs/alerting.md ("Differences
  from Alertmanager"); the case is skipped with that reason.
"""

from __future__ import annotations

from typing import NamedTuple

SKIP_QUOTED_NAME = (
    "quoted label names are read only by the UTF-8 parser; tokengov implements the classic "
    "parser (label names are [a-zA-Z_][a-zA-Z0-9_]*, they never need quotes)"
)
SKIP_STRICTER = (
    "the UTF-8 parser refuses this and the classic parser accepts it; Alertmanager's default "
    "(fallback) mode then returns the classic result, which is what tokengov returns"
)
SKIP_DISAGREE = (
    "both parsers accept this with different results; Alertmanager's default (fallback) mode "
    "logs the disagreement and returns the classic result, which is what tokengov returns"
)


class Utf8Case(NamedTuple):
    upstream: str
    input: str
    #: (name, op, value) per matcher; empty when an error is expected
    want: tuple[tuple[str, str, str], ...]
    error: str | None
    status: str | None


#: matcher/parse/parse_test.go TestMatchers (parse.Matchers; compared with tokengov's parse_matchers).
MATCHERS: tuple[Utf8Case, ...] = (
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/no braces line 31",
        "",
        (),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/open and closing braces line 35",
        "{}",
        (),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals line 39",
        "{foo=bar}",
        (("foo", "=", "bar"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals with trailing comma line 43",
        "{foo=bar,}",
        (("foo", "=", "bar"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/not equals line 47",
        "{foo!=bar}",
        (("foo", "!=", "bar"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/match regex line 51",
        "{foo=~[a-z]+}",
        (("foo", "=~", "[a-z]+"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/doesn't match regex line 55",
        "{foo!~[a-z]+}",
        (("foo", "!~", "[a-z]+"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals unicode emoji line 59",
        "{foo=🙂}",
        (("foo", "=", "🙂"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals unicode sentence line 63",
        "{foo=🙂bar}",
        (("foo", "=", "🙂bar"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals without braces line 67",
        "foo=bar",
        (("foo", "=", "bar"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals without braces but with trailing comma line 71",
        "foo=bar,",
        (("foo", "=", "bar"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/not equals without braces line 75",
        "foo!=bar",
        (("foo", "!=", "bar"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/match regex without braces line 79",
        "foo=~[a-z]+",
        (("foo", "=~", "[a-z]+"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/doesn't match regex without braces line 83",
        "foo!~[a-z]+",
        (("foo", "!~", "[a-z]+"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals in quotes line 87",
        '{"foo"="bar"}',
        (("foo", "=", "bar"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals in quotes and with trailing comma line 91",
        '{"foo"="bar",}',
        (("foo", "=", "bar"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/not equals in quotes line 95",
        '{"foo"!="bar"}',
        (("foo", "!=", "bar"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/match regex in quotes line 99",
        '{"foo"=~"[a-z]+"}',
        (("foo", "=~", "[a-z]+"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/match regex digit in quotes line 103",
        '{"foo"=~"\\\\d+"}',
        (("foo", "=~", "\\d+"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/doesn't match regex in quotes line 107",
        '{"foo"!~"[a-z]+"}',
        (("foo", "!~", "[a-z]+"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals unicode emoji in quotes line 111",
        '{"foo"="🙂"}',
        (("foo", "=", "🙂"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals unicode emoji as bytes in quotes line 115",
        '{"foo"="\\xf0\\x9f\\x99\\x82"}',
        (("foo", "=", "🙂"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals unicode emoji as code points in quotes line 119",
        '{"foo"="\\U0001f642"}',
        (("foo", "=", "🙂"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals unicode sentence in quotes line 123",
        '{"foo"="🙂bar"}',
        (("foo", "=", "🙂bar"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals with newline in quotes line 127",
        '{"foo"="bar\\n"}',
        (("foo", "=", "bar\n"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals with tab in quotes line 131",
        '{"foo"="bar\\t"}',
        (("foo", "=", "bar\t"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals with escaped quotes in quotes line 135",
        '{"foo"="\\"bar\\""}',
        (("foo", "=", '"bar"'),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals with escaped backslash in quotes line 139",
        '{"foo"="bar\\\\"}',
        (("foo", "=", "bar\\"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals without braces in quotes line 143",
        '"foo"="bar"',
        (("foo", "=", "bar"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/equals without braces in quotes with trailing comma line 147",
        '"foo"="bar",',
        (("foo", "=", "bar"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/complex line 151",
        "{foo=bar,bar!=baz}",
        (("foo", "=", "bar"), ("bar", "!=", "baz")),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/complex in quotes line 158",
        '{foo="bar",bar!="baz"}',
        (("foo", "=", "bar"), ("bar", "!=", "baz")),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/complex without braces line 165",
        "foo=bar,bar!=baz",
        (("foo", "=", "bar"), ("bar", "!=", "baz")),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/complex without braces in quotes line 172",
        'foo="bar",bar!="baz"',
        (("foo", "=", "bar"), ("bar", "!=", "baz")),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/comma line 179",
        ",",
        (),
        "0:1: unexpected ,: expected label name",
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/comma in braces line 183",
        "{,}",
        (),
        "1:2: unexpected ,: expected label name",
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/open brace line 187",
        "{",
        (),
        "0:1: end of input: expected close brace",
        SKIP_STRICTER,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/close brace line 191",
        "}",
        (),
        "0:1: }: expected opening brace",
        SKIP_STRICTER,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/no open brace line 195",
        "foo=bar}",
        (),
        "0:8: }: expected opening brace",
        SKIP_STRICTER,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/no close brace line 199",
        "{foo=bar",
        (),
        "0:8: end of input: expected close brace",
        SKIP_STRICTER,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/invalid input after operator and before quotes line 203",
        '{foo=:"bar"}',
        (),
        '6:11: unexpected "bar": expected a comma or close brace',
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/invalid escape sequence line 207",
        '{foo="bar\\w"}',
        (),
        '5:12: "bar\\w": invalid input',
        SKIP_STRICTER,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/invalid escape sequence regex digits line 211",
        '{"foo"=~"\\d+"}',
        (),
        '8:13: "\\d+": invalid input',
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/no unquoted escape sequences line 215",
        "{foo=bar\\n}",
        (),
        "8:9: \\: invalid input: expected a comma or close brace",
        SKIP_STRICTER,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatchers/invalid unicode line 219",
        '{"foo"="\\xf0\\x9f"}',
        (),
        '7:17: "\\xf0\\x9f": invalid input',
        None,
    ),
)


#: matcher/parse/parse_test.go TestMatcher (parse.Matcher; compared with tokengov's parse_matcher).
MATCHER: tuple[Utf8Case, ...] = (
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals line 244",
        "{foo=bar}",
        (("foo", "=", "bar"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals with trailing comma line 248",
        "{foo=bar,}",
        (("foo", "=", "bar"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/not equals line 252",
        "{foo!=bar}",
        (("foo", "!=", "bar"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/match regex line 256",
        "{foo=~[a-z]+}",
        (("foo", "=~", "[a-z]+"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/doesn't match regex line 260",
        "{foo!~[a-z]+}",
        (("foo", "!~", "[a-z]+"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals unicode emoji line 264",
        "{foo=🙂}",
        (("foo", "=", "🙂"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals unicode emoji as bytes in quotes line 268",
        '{"foo"="\\xf0\\x9f\\x99\\x82"}',
        (("foo", "=", "🙂"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals unicode emoji as code points in quotes line 272",
        '{"foo"="\\U0001f642"}',
        (("foo", "=", "🙂"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals unicode sentence line 276",
        "{foo=🙂bar}",
        (("foo", "=", "🙂bar"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals without braces line 280",
        "foo=bar",
        (("foo", "=", "bar"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals without braces but with trailing comma line 284",
        "foo=bar,",
        (("foo", "=", "bar"),),
        None,
        SKIP_DISAGREE,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/not equals without braces line 288",
        "foo!=bar",
        (("foo", "!=", "bar"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/match regex without braces line 292",
        "foo=~[a-z]+",
        (("foo", "=~", "[a-z]+"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/doesn't match regex without braces line 296",
        "foo!~[a-z]+",
        (("foo", "!~", "[a-z]+"),),
        None,
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals in quotes line 300",
        '{"foo"="bar"}',
        (("foo", "=", "bar"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals in quotes and with trailing comma line 304",
        '{"foo"="bar",}',
        (("foo", "=", "bar"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/not equals in quotes line 308",
        '{"foo"!="bar"}',
        (("foo", "!=", "bar"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/match regex in quotes line 312",
        '{"foo"=~"[a-z]+"}',
        (("foo", "=~", "[a-z]+"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/doesn't match regex in quotes line 316",
        '{"foo"!~"[a-z]+"}',
        (("foo", "!~", "[a-z]+"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals unicode emoji in quotes line 320",
        '{"foo"="🙂"}',
        (("foo", "=", "🙂"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals unicode sentence in quotes line 324",
        '{"foo"="🙂bar"}',
        (("foo", "=", "🙂bar"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals with newline in quotes line 328",
        '{"foo"="bar\\n"}',
        (("foo", "=", "bar\n"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals with tab in quotes line 332",
        '{"foo"="bar\\t"}',
        (("foo", "=", "bar\t"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals with escaped quotes in quotes line 336",
        '{"foo"="\\"bar\\""}',
        (("foo", "=", '"bar"'),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals with escaped backslash in quotes line 340",
        '{"foo"="bar\\\\"}',
        (("foo", "=", "bar\\"),),
        None,
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals without braces in quotes line 344",
        '"foo"="bar"',
        (("foo", "=", "bar"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/equals without braces in quotes with trailing comma line 348",
        '"foo"="bar",',
        (("foo", "=", "bar"),),
        None,
        SKIP_QUOTED_NAME,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/no input line 352",
        "",
        (),
        "no matchers",
        None,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/open and closing braces line 355",
        "{}",
        (),
        "no matchers",
        "compat_braces",
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/two or more returns error line 359",
        "foo=bar,bar=baz",
        (),
        "expected 1 matcher, found 2",
        SKIP_STRICTER,
    ),
    Utf8Case(
        "matcher/parse/parse_test.go TestMatcher/invalid unicode line 363",
        'foo="\\xf0\\x9f"',
        (),
        '4:14: "\\xf0\\x9f": invalid input',
        SKIP_STRICTER,
    ),
)
