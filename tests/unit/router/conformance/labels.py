"""Alertmanager's classic matcher tests, as data: ``pkg/labels/parse_test.go`` and
``pkg/labels/matcher_test.go`` of github.com/prometheus/alertmanager at commit 68fb2d575.

Each case names its upstream test function, its subtest or table index and the line of
the case in that file. Extracted verbatim from the Go source (raw strings kept as they
are, interpreted strings decoded); expected values are upstream's, never tokengov's.
"""

from __future__ import annotations

from typing import NamedTuple


class ParseCase(NamedTuple):
    upstream: str
    input: str
    #: (name, op, value) per matcher, in order; empty when an error is expected
    want: tuple[tuple[str, str, str], ...]
    #: upstream's error message (None: no error)
    error: str | None


#: pkg/labels/parse_test.go, TestMatchers (labels.ParseMatchers); the subtest name is the input.
PARSE_MATCHERS: tuple[ParseCase, ...] = (
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 28",
        "{}",
        (),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 32",
        ",",
        (),
        "bad matcher format: ",
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 36",
        "{,}",
        (),
        "bad matcher format: ",
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 40",
        "{foo='}",
        (("foo", "=", "'"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 48",
        "{foo=`}",
        (("foo", "=", "`"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 56",
        '{foo=\\"}',
        (("foo", "=", '"'),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 64",
        "{foo=bar}",
        (("foo", "=", "bar"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 72",
        '{foo="bar"}',
        (("foo", "=", "bar"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 80",
        "{foo=~bar.*}",
        (("foo", "=~", "bar.*"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 88",
        '{foo=~"bar.*"}',
        (("foo", "=~", "bar.*"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 96",
        "{foo!=bar}",
        (("foo", "!=", "bar"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 104",
        '{foo!="bar"}',
        (("foo", "!=", "bar"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 112",
        "{foo!~bar.*}",
        (("foo", "!~", "bar.*"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 120",
        '{foo!~"bar.*"}',
        (("foo", "!~", "bar.*"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 128",
        '{foo="bar", baz!="quux"}',
        (("foo", "=", "bar"), ("baz", "!=", "quux")),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 137",
        '{foo="bar", baz!~"quux.*"}',
        (("foo", "=", "bar"), ("baz", "!~", "quux.*")),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 146",
        '{foo="bar",baz!~".*quux", derp="wat"}',
        (("foo", "=", "bar"), ("baz", "!~", ".*quux"), ("derp", "=", "wat")),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 156",
        '{foo="bar", baz!="quux", derp="wat"}',
        (("foo", "=", "bar"), ("baz", "!=", "quux"), ("derp", "=", "wat")),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 166",
        '{foo="bar", baz!~".*quux.*", derp="wat"}',
        (("foo", "=", "bar"), ("baz", "!~", ".*quux.*"), ("derp", "=", "wat")),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 176",
        '{foo="bar", instance=~"some-api.*"}',
        (("foo", "=", "bar"), ("instance", "=~", "some-api.*")),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 185",
        '{foo=""}',
        (("foo", "=", ""),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 193",
        '{foo="bar,quux", job="job1"}',
        (("foo", "=", "bar,quux"), ("job", "=", "job1")),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 202",
        '{foo = "bar", dings != "bums", }',
        (("foo", "=", "bar"), ("dings", "!=", "bums")),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 211",
        "foo=bar,dings!=bums",
        (("foo", "=", "bar"), ("dings", "!=", "bums")),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 220",
        '{quote="She said: \\"Hi, ladies! That\'s gender-neutral…\\""}',
        (("quote", "=", 'She said: "Hi, ladies! That\'s gender-neutral…"'),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 228",
        'statuscode=~"5.."',
        (("statuscode", "=~", "5.."),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 236",
        "tricky=~~~",
        (("tricky", "=~", "~~"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 244",
        'trickier==\\\\=\\=\\"',
        (("trickier", "=", '=\\=\\="'),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 252",
        'contains_quote != "\\"" , contains_comma !~ "foo,bar" , ',
        (("contains_quote", "!=", '"'), ("contains_comma", "!~", "foo,bar")),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 261",
        "{foo=bar}}",
        (("foo", "=", "bar}"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 269",
        "{foo=bar}},}",
        (("foo", "=", "bar}}"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 277",
        "{foo=,bar=}}",
        (("foo", "=", ""), ("bar", "=", "}")),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 286",
        "{foo=bar\\t}",
        (("foo", "=", "bar\\t"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 294",
        "{foo=bar\\n}",
        (("foo", "=", "bar\n"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 302",
        "{foo=bar\\}",
        (("foo", "=", "bar\\"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 310",
        "{foo=bar\\\\}",
        (("foo", "=", "bar\\"),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 318",
        '{foo=bar\\"}',
        (("foo", "=", 'bar"'),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 326",
        "job=",
        (("job", "=", ""),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 333",
        'job="value',
        (),
        'matcher value contains unescaped double quote: "value',
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 337",
        'job=value"',
        (),
        'matcher value contains unescaped double quote: value"',
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 341",
        'trickier==\\\\=\\=\\""',
        (),
        'matcher value contains unescaped double quote: =\\\\=\\=\\""',
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 345",
        'contains_unescaped_quote = foo"bar',
        (),
        'matcher value contains unescaped double quote: foo"bar',
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 349",
        '{invalid-name = "valid label"}',
        (),
        'bad matcher format: invalid-name = "valid label"',
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 353",
        '{foo=~"invalid[regexp"}',
        (),
        "error parsing regexp: missing closing ]: `[regexp)$`",
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 358",
        '"{foo=\\"bar"}',
        (),
        'bad matcher format: "{foo=\\"bar"',
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 362",
        '"foo=\\"bar"',
        (),
        'bad matcher format: "foo=\\"bar"',
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 366",
        '"foo=\\"bar\\""',
        (),
        'bad matcher format: "foo=\\"bar\\""',
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 370",
        '"foo=\\"bar\\"',
        (),
        'bad matcher format: "foo=\\"bar\\"',
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 374",
        '"{foo=\\"bar\\"}"',
        (),
        'bad matcher format: "{foo=\\"bar\\"}"',
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 378",
        '"foo="bar""',
        (),
        'bad matcher format: "foo="bar""',
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 382",
        "{{foo=",
        (),
        "bad matcher format: {foo=",
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 386",
        "{foo=",
        (("foo", "=", ""),),
        None,
    ),
    ParseCase(
        "pkg/labels/parse_test.go TestMatchers line 394",
        "{foo=}b",
        (("foo", "=", "}b"),),
        None,
    ),
)


class MatchCase(NamedTuple):
    upstream: str
    op: str
    pattern: str
    value: str
    match: bool


#: pkg/labels/matcher_test.go, TestMatcher (labels.Matcher.Matches): table index and line.
MATCHES: tuple[MatchCase, ...] = (
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [0] line 36",
        "=",
        "bar",
        "bar",
        True,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [1] line 41",
        "=",
        "bar",
        "foo-bar",
        False,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [2] line 46",
        "!=",
        "bar",
        "bar",
        False,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [3] line 51",
        "!=",
        "bar",
        "foo-bar",
        True,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [4] line 56",
        "=~",
        "bar",
        "bar",
        True,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [5] line 61",
        "=~",
        "bar",
        "foo-bar",
        False,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [6] line 66",
        "=~",
        ".*bar",
        "foo-bar",
        True,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [7] line 71",
        "!~",
        "bar",
        "bar",
        False,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [8] line 76",
        "!~",
        "bar",
        "foo-bar",
        True,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [9] line 81",
        "!~",
        ".*bar",
        "foo-bar",
        False,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [10] line 86",
        "=~",
        "foo.bar",
        "foo-bar",
        True,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [11] line 91",
        "=~",
        "foo\\.bar",
        "foo-bar",
        False,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [12] line 96",
        "=~",
        "foo\\.bar",
        "foo.bar",
        True,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [13] line 101",
        "=",
        "foo\nbar",
        "foo\nbar",
        True,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [14] line 106",
        "=~",
        "foo.bar",
        "foo\nbar",
        False,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [15] line 111",
        "=~",
        "(?s)foo.bar",
        "foo\nbar",
        True,
    ),
    MatchCase(
        "pkg/labels/matcher_test.go TestMatcher [16] line 116",
        "=",
        '~!="',
        '~!="',
        True,
    ),
)


class StringCase(NamedTuple):
    upstream: str
    name: str
    op: str
    value: str
    want: str


#: pkg/labels/matcher_test.go, TestMatcherString (labels.Matcher.String): index and line.
STRINGS: tuple[StringCase, ...] = (
    StringCase(
        "pkg/labels/matcher_test.go TestMatcherString [0] line 137",
        "foo",
        "=",
        "bar",
        'foo="bar"',
    ),
    StringCase(
        "pkg/labels/matcher_test.go TestMatcherString [1] line 143",
        "foo",
        "!=",
        "bar",
        'foo!="bar"',
    ),
    StringCase(
        "pkg/labels/matcher_test.go TestMatcherString [2] line 149",
        "foo",
        "=~",
        "bar",
        'foo=~"bar"',
    ),
    StringCase(
        "pkg/labels/matcher_test.go TestMatcherString [3] line 155",
        "foo",
        "!~",
        "bar",
        'foo!~"bar"',
    ),
    StringCase(
        "pkg/labels/matcher_test.go TestMatcherString [4] line 161",
        "foo",
        "=",
        "back\\slash",
        'foo="back\\\\slash"',
    ),
    StringCase(
        "pkg/labels/matcher_test.go TestMatcherString [5] line 167",
        "foo",
        "=",
        'double"quote',
        'foo="double\\"quote"',
    ),
    StringCase(
        "pkg/labels/matcher_test.go TestMatcherString [6] line 173",
        "foo",
        "=",
        "new\nline",
        'foo="new\\nline"',
    ),
    StringCase(
        "pkg/labels/matcher_test.go TestMatcherString [7] line 180",
        "foo",
        "=",
        "tab\tstop",
        'foo="tab\tstop"',
    ),
    StringCase(
        "pkg/labels/matcher_test.go TestMatcherString [8] line 186",
        "foo",
        "=",
        "🙂",
        'foo="🙂"',
    ),
    StringCase(
        "pkg/labels/matcher_test.go TestMatcherString [9] line 192",
        "foo!",
        "!=",
        "bar",
        '"foo!"!="bar"',
    ),
    StringCase(
        "pkg/labels/matcher_test.go TestMatcherString [10] line 198",
        "foo🙂",
        "=",
        "bar",
        'foo🙂="bar"',
    ),
    StringCase(
        "pkg/labels/matcher_test.go TestMatcherString [11] line 204",
        "foo bar",
        "=",
        "baz",
        '"foo bar"="baz"',
    ),
)
