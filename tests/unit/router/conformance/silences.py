"""Alertmanager's silence tests, as data: ``silence/silence_test.go`` of
github.com/prometheus/alertmanager at commit 68fb2d575.

Upstream builds protobuf matchers (name, pattern, type); tokengov's silences hold matcher
text, so each matcher is written here in Alertmanager's syntax with the same name, type and
pattern (``{Name: "a", Pattern: "b", Type: REGEXP}`` is ``a=~"b"``). A ``None`` timestamp
is upstream's zero (nil) timestamp: the field is left out. Cases tokengov cannot express
carry a skip reason (listed in docs/alerting.md, "Differences from Alertmanager").
"""

from __future__ import annotations

from typing import NamedTuple

SKIP_BYTES = (
    "a label value that is not valid UTF-8: tokengov's matchers are text (JSON and Python "
    "str), which cannot hold such bytes; the JSON decoder refuses them before validation"
)
SKIP_TYPE = "an unknown matcher type: tokengov's matcher text has only =, !=, =~ and !~"
SKIP_MATCHER_SETS = (
    "several matcher sets (OR of ANDs): a tokengov silence has one set of matchers (AND)"
)


class MatcherCase(NamedTuple):
    upstream: str
    matcher: str
    #: a substring of the error (None: valid): upstream's, or where upstream's name cannot
    #: even be written in the classic syntax, the parser's "bad matcher format"
    error: str | None
    skip: str | None = None


#: upstream: "invalid label name"; the classic syntax cannot write such a name at all
_UNWRITABLE_NAME = "bad matcher format"


#: silence/silence_test.go TestValidateClassicMatcher (validateMatcher in classic mode).
VALIDATE_MATCHER: tuple[MatcherCase, ...] = (
    MatcherCase("silence_test.go TestValidateClassicMatcher [0] line 2438", 'a="b"', None),
    MatcherCase("silence_test.go TestValidateClassicMatcher [1] line 2445", 'a!="b"', None),
    MatcherCase("silence_test.go TestValidateClassicMatcher [2] line 2452", 'a=~"b"', None),
    MatcherCase("silence_test.go TestValidateClassicMatcher [3] line 2459", 'a!~"b"', None),
    MatcherCase(
        "silence_test.go TestValidateClassicMatcher [4] line 2466", '00="a"', _UNWRITABLE_NAME
    ),
    MatcherCase(
        "silence_test.go TestValidateClassicMatcher [5] line 2473",
        '"\U0001f642"="a"',
        _UNWRITABLE_NAME,
    ),
    MatcherCase(
        "silence_test.go TestValidateClassicMatcher [6] line 2480",
        'a=~"(("',
        "invalid regular expression",
    ),
    MatcherCase(
        "silence_test.go TestValidateClassicMatcher [7] line 2487",
        'a!~"))"',
        "invalid regular expression",
    ),
    MatcherCase(
        "silence_test.go TestValidateClassicMatcher [8] line 2494",
        'a="\\xff"',
        "invalid label value",
        SKIP_BYTES,
    ),
    MatcherCase("silence_test.go TestValidateClassicMatcher [9] line 2501", 'a="\U0001f642"', None),
    MatcherCase(
        "silence_test.go TestValidateClassicMatcher [10] line 2508",
        'a="b"',
        "unknown matcher type",
        SKIP_TYPE,
    ),
)


class SilenceCase(NamedTuple):
    upstream: str
    matchers: tuple[str, ...]
    #: seconds from now; None: the zero (nil) timestamp, i.e. the field left out
    starts_in_s: int | None
    ends_in_s: int | None
    error: str | None


#: silence/silence_test.go TestValidateSilence (validateSilence).
VALIDATE_SILENCE: tuple[SilenceCase, ...] = (
    SilenceCase("silence_test.go TestValidateSilence [0] line 2633", ('a="b"',), 0, 0, None),
    SilenceCase(
        "silence_test.go TestValidateSilence [1] line 2647", (), 0, 0, "matcher set 0 is empty"
    ),
    SilenceCase(
        "silence_test.go TestValidateSilence [2] line 2659",
        ('a="b"', '00="b"'),
        0,
        0,
        "invalid label matcher",
    ),
    SilenceCase(
        "silence_test.go TestValidateSilence [3] line 2672",
        ('a=""', 'b=~".*"'),
        0,
        0,
        "at least one matcher must not match the empty string",
    ),
    SilenceCase(
        "silence_test.go TestValidateSilence [4] line 2685",
        ('a="b"',),
        0,
        -1,
        "end time must not be before start time",
    ),
    SilenceCase(
        "silence_test.go TestValidateSilence [5] line 2699",
        ('a="b"',),
        None,
        0,
        "invalid zero start timestamp",
    ),
    SilenceCase(
        "silence_test.go TestValidateSilence [6] line 2713",
        ('a="b"',),
        0,
        None,
        "invalid zero end timestamp",
    ),
)

#: silence/silence_test.go TestQMatches: the alert's labels.
QMATCHES_LABELS = {"job": "test", "instance": "web-1", "path": "/user/profile", "method": "GET"}


class QMatchesCase(NamedTuple):
    upstream: str
    #: one tuple of matchers per matcher set
    matcher_sets: tuple[tuple[str, ...], ...]
    #: upstream's ``drop``: the filter's result, true when the silence matches the labels
    matches: bool
    skip: str | None = None


QMATCHES: tuple[QMatchesCase, ...] = (
    QMatchesCase("silence_test.go TestQMatches [0] line 1175", (('job="test"',),), True),
    QMatchesCase("silence_test.go TestQMatches [1] line 1185", (('job!="test"',),), False),
    QMatchesCase(
        "silence_test.go TestQMatches [2] line 1195", (('job="test"', 'method="POST"'),), False
    ),
    QMatchesCase(
        "silence_test.go TestQMatches [3] line 1206", (('job="test"', 'method!="POST"'),), True
    ),
    QMatchesCase("silence_test.go TestQMatches [4] line 1217", (('path=~"/user/.+"',),), True),
    QMatchesCase("silence_test.go TestQMatches [5] line 1227", (('path!~"/user/.+"',),), False),
    QMatchesCase(
        "silence_test.go TestQMatches [6] line 1241",
        (('path=~"/user/.+"', 'path=~"/nothing/.+"'),),
        False,
    ),
    QMatchesCase(
        "silence_test.go TestQMatches [7] line 1254",
        (('method!="GET"',), ('method=~"GET|POST"', 'job="test"')),
        True,
        SKIP_MATCHER_SETS,
    ),
    QMatchesCase(
        "silence_test.go TestQMatches [8] line 1272",
        (('method="GET"',), ('method=~"GET|POST"', 'job="test"')),
        True,
        SKIP_MATCHER_SETS,
    ),
    QMatchesCase(
        "silence_test.go TestQMatches [9] line 1290",
        (('method!="GET"',), ('method=~"GET|POST"', 'job!="test"')),
        False,
        SKIP_MATCHER_SETS,
    ),
)


class SilencerStep(NamedTuple):
    #: seconds since the scenario's start (upstream's synctest clock)
    at_s: int
    #: a silence to set first: (key, matcher, starts_in_s, ends_in_s) relative to ``at_s``;
    #: the key names the silence (setting a known key updates it, as ``Set`` with its Id)
    sets: tuple[str, str, int, int] | None
    #: whether {foo="bar"} is muted after the step
    muted: bool


#: silence/silence_test.go TestSilencer (lines 2272-2375): the alert {foo="bar"} through
#: silences set, expiring, updated into the future and overlapping.
SILENCER_UPSTREAM = "silence_test.go TestSilencer"
SILENCER: tuple[SilencerStep, ...] = (
    SilencerStep(0, None, False),
    SilencerStep(0, ("sil1", 'foo="baz"', -3600, 300), False),
    SilencerStep(0, ("sil2", 'foo="bar"', -3600, 300), True),
    SilencerStep(3600, None, False),  # one hour passes, the silence expires
    SilencerStep(3600, ("sil2", 'foo="bar"', 3600, 3 * 3600), False),  # moved to the future
    SilencerStep(3 * 3600, None, True),  # two hours pass: active (issue #2426)
    SilencerStep(3 * 3600, ("sil3", 'foo=~"b.."', 3600, 3 * 3600), True),
    SilencerStep(5 * 3600, None, True),  # first expired, the overlapping second active
)
