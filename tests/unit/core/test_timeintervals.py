"""Time intervals against Alertmanager's own test cases.

Ported as data from prometheus/alertmanager ``timeinterval/timeinterval_test.go`` at
commit 68fb2d575; each case names its upstream test (and the upstream comment or index
where it has one). Go struct values are written in the policy's YAML syntax (upstream
``TimeRange{540, 1020}`` is ``{start_time: "09:00", end_time: "17:00"}``, weekday ``1`` is
``monday``); times are upstream's RFC 822 strings, parsed the same way.

Not ported: ``TestYamlMarshal`` / ``TestJsonMarshal`` (round trips of Go's marshallers;
tokengov only reads the policy file).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from tokengov.core.timeintervals import Intervener, NamedTimeInterval, TimeInterval, TimeRange

UPSTREAM = "timeinterval/timeinterval_test.go@68fb2d575"
INTERVALS = TypeAdapter(list[TimeInterval])


def rfc822z(text: str) -> datetime:
    """Go's ``time.Parse(time.RFC822Z, …)`` (two-digit years: 69-99 → 19xx, else 20xx)."""
    return datetime.strptime(text, "%d %b %y %H:%M %z")


BUSINESS_HOURS = {"times": [{"start_time": "09:00", "end_time": "17:00"}]}

# --------------------------------------------------------------- TestContainsTime

CONTAINS_TIME: list[tuple[str, dict[str, Any], list[str], list[str]]] = [
    (
        "timeIntervalTestCases[0]: empty interval",
        {},
        ["02 Jan 06 15:04 +0000", "03 Jan 07 10:04 +0000", "04 Jan 06 09:04 +0000"],
        [],
    ),
    (
        "timeIntervalTestCases[1]: 9am to 5pm, monday to friday",
        {**BUSINESS_HOURS, "weekdays": ["monday:friday"]},
        ["04 May 20 15:04 +0000", "05 May 20 10:04 +0000", "09 Jun 20 09:04 +0000"],
        ["03 May 20 15:04 +0000", "04 May 20 08:59 +0000", "05 May 20 05:00 +0000"],
    ),
    (
        "timeIntervalTestCases[2]: Easter 2020",
        {"days_of_month": ["4:6"], "months": ["4"], "years": ["2020"]},
        ["04 Apr 20 15:04 +0000", "05 Apr 20 00:00 +0000", "06 Apr 20 23:05 +0000"],
        [
            "03 May 18 15:04 +0000",
            "03 Apr 20 23:59 +0000",
            "04 Jun 20 23:59 +0000",
            "06 Apr 19 23:59 +0000",
            "07 Apr 20 00:00 +0000",
        ],
    ),
    (
        "timeIntervalTestCases[3]: negative days of month, last 3 days of each month",
        {"days_of_month": ["-3:-1"]},
        [
            "31 Jan 20 15:04 +0000",
            "30 Jan 20 15:04 +0000",
            "29 Jan 20 15:04 +0000",
            "30 Jun 20 00:00 +0000",
            "29 Feb 20 23:05 +0000",
        ],
        [
            "03 May 18 15:04 +0000",
            "27 Jan 20 15:04 +0000",
            "03 Apr 20 23:59 +0000",
            "04 Jun 20 23:59 +0000",
            "06 Apr 19 23:59 +0000",
            "07 Apr 20 00:00 +0000",
            "01 Mar 20 00:00 +0000",
        ],
    ),
    (
        "timeIntervalTestCases[4]: out of bound days are clamped to month boundaries",
        # upstream builds this struct directly: -31:31 would not pass the YAML validation
        {"_construct": True, "months": [(6, 6)], "days_of_month": [(-31, 31)]},
        ["30 Jun 20 00:00 +0000", "01 Jun 20 00:00 +0000"],
        # upstream's "1 Jul 20 …" does not parse in Go (zero time, also excluded)
        ["31 May 20 00:00 +0000", "1 Jul 20 00:00 +0000"],
    ),
    (
        "timeIntervalTestCases[5]: AEST 9AM to 5PM, Monday to Friday",
        {**BUSINESS_HOURS, "weekdays": ["monday:friday"], "location": "Australia/Sydney"},
        ["06 Apr 21 13:00 +1000"],
        ["06 Apr 21 13:00 +0000"],
    ),
    (
        "timeIntervalTestCases[6]: alternative timezone during daylight savings time",
        {
            **BUSINESS_HOURS,
            "weekdays": ["monday:friday"],
            "months": ["11"],
            "location": "Australia/Sydney",
        },
        ["01 Nov 21 09:00 +1100", "31 Oct 21 22:00 +0000"],
        ["31 Oct 21 21:00 +0000"],
    ),
    (
        "timeIntervalTestCases[7]: last-day mutes should not shift during spring-forward months",
        {"days_of_month": ["-1"], "location": "America/New_York"},
        ["31 Mar 21 12:00 -0400"],
        ["30 Mar 21 12:00 -0400"],
    ),
]


@pytest.mark.parametrize(
    ("case", "spec", "inside", "outside"), CONTAINS_TIME, ids=[c[0] for c in CONTAINS_TIME]
)
def test_contains_time(
    case: str, spec: dict[str, Any], inside: list[str], outside: list[str]
) -> None:
    if spec.get("_construct"):
        fields = {k: v for k, v in spec.items() if k != "_construct"}
        interval = TimeInterval.model_construct(**fields)
    else:
        interval = TimeInterval.model_validate(spec)
    for ts in inside:
        assert interval.contains(rfc822z(ts)), f"{UPSTREAM} TestContainsTime {case}: {ts}"
    for ts in outside:
        assert not interval.contains(rfc822z(ts)), f"{UPSTREAM} TestContainsTime {case}: {ts}"


# ------------------------------------------------------------ TestParseTimeString

PARSE_TIME: list[tuple[str, tuple[int, int] | None]] = [
    ("{'start_time': '00:00', 'end_time': '24:00'}", (0, 1440)),
    ("{'start_time': '01:35', 'end_time': '17:39'}", (95, 1059)),
    ("{'start_time': '09:35', 'end_time': '09:39'}", (575, 579)),
    ("{'start_time': '17:31', 'end_time': '17:31'}", None),  # begin and end are the same
    ("{'start_time': '12:30', 'end_time': '24:01'}", None),  # end time out of range
    ("{'start_time': '09:30', 'end_time': '07:41'}", None),  # start greater than end
    ("{'start_time': '24:00', 'end_time': '17:41'}", None),  # start out of range and > end
    ("{'start_time': '14:03'}", None),  # no range specified
]


@pytest.mark.parametrize(("text", "want"), PARSE_TIME, ids=[c[0] for c in PARSE_TIME])
def test_parse_time_string(text: str, want: tuple[int, int] | None) -> None:
    doc = yaml.safe_load(text)
    if want is None:
        with pytest.raises(ValidationError):
            TimeRange.model_validate(doc)
        return
    parsed = TimeRange.model_validate(doc)
    assert (parsed.start_minute, parsed.end_minute) == want, f"{UPSTREAM} TestParseTimeString"


# ---------------------------------------------------------------- TestYamlUnmarshal


def _shape(interval: TimeInterval) -> dict[str, Any]:
    """The parsed interval as upstream's expected struct (only the fields that are set)."""
    out: dict[str, Any] = {}
    if interval.times is not None:
        out["times"] = [(r.start_minute, r.end_minute) for r in interval.times]
    for name in ("weekdays", "days_of_month", "months", "years"):
        if getattr(interval, name) is not None:
            out[name] = list(getattr(interval, name))
    if interval.location is not None:
        out["location"] = interval.location
    return out


YAML_UNMARSHAL: list[dict[str, Any]] = [
    {
        "case": "yamlUnmarshalTestCases[0]: simple business hours test",
        "in": """
- weekdays: ['monday:friday']
  times:
    - start_time: '09:00'
      end_time: '17:00'
""",
        "intervals": [{"weekdays": [(1, 5)], "times": [(540, 1020)]}],
        "contains": ["08 Jul 20 09:00 +0000", "08 Jul 20 16:59 +0000"],
        "excludes": ["08 Jul 20 05:00 +0000", "08 Jul 20 08:59 +0000"],
    },
    {
        "case": "yamlUnmarshalTestCases[1]: more advanced test with negative indices and ranges",
        "in": """
- weekdays: ['monday:friday', 'sunday']
  months: ['january:march']
  days_of_month: ['-7:-1']
  years: ['2020:2025', '2030:2035']
  times:
    - start_time: '09:00'
      end_time: '17:00'
""",
        "intervals": [
            {
                "weekdays": [(1, 5), (0, 0)],
                "times": [(540, 1020)],
                "months": [(1, 3)],
                "days_of_month": [(-7, -1)],
                "years": [(2020, 2025), (2030, 2035)],
            }
        ],
        "contains": [
            "27 Jan 21 09:00 +0000",
            "28 Jan 21 16:59 +0000",
            "29 Jan 21 13:00 +0000",
            "31 Mar 25 13:00 +0000",
            "31 Mar 25 13:00 +0000",
            "31 Jan 35 13:00 +0000",
        ],
        "excludes": [
            "30 Jan 21 13:00 +0000",  # Saturday
            "01 Apr 21 13:00 +0000",  # 4th month
            "30 Jan 26 13:00 +0000",  # 2026
            "31 Jan 35 17:01 +0000",  # After 5pm
        ],
    },
    {
        "case": "yamlUnmarshalTestCases[2]",
        "in": """
- weekdays: ['monday:friday']
  times:
    - start_time: '09:00'
      end_time: '17:00'""",
        "intervals": [{"weekdays": [(1, 5)], "times": [(540, 1020)]}],
        "contains": ["01 Apr 21 13:00 +0000"],
    },
    {
        "case": "yamlUnmarshalTestCases[3]: invalid start time",
        "in": "- times:\n    - start_time: '01:99'\n      end_time: '23:59'",
        "err": "couldn't parse timestamp 01:99, invalid format",
    },
    {
        "case": "yamlUnmarshalTestCases[4]: invalid end time",
        "in": "- times:\n    - start_time: '00:00'\n      end_time: '99:99'",
        "err": "couldn't parse timestamp 99:99, invalid format",
    },
    {
        "case": "yamlUnmarshalTestCases[5]: start day before end day",
        "in": "- weekdays: ['friday:monday']",
        "err": "start day cannot be before end day",
    },
    {
        "case": "yamlUnmarshalTestCases[6]: invalid weekdays",
        "in": "- weekdays: ['blurgsday:flurgsday']",
        "err": "blurgsday is not a valid weekday",
    },
    {
        "case": "yamlUnmarshalTestCases[7]: numeric weekdays aren't allowed",
        "in": "- weekdays: ['1:3']",
        "err": "1 is not a valid weekday",
    },
    {
        "case": "yamlUnmarshalTestCases[8]: negative numeric weekdays aren't allowed",
        "in": "- weekdays: ['-2:-1']",
        "err": "-2 is not a valid weekday",
    },
    {
        "case": "yamlUnmarshalTestCases[9]: 0 day of month",
        "in": "- days_of_month: ['0']",
        "err": "0 is not a valid day of the month: out of range",
    },
    {
        "case": "yamlUnmarshalTestCases[10]: start day of month < 0",
        "in": "- days_of_month: ['-50:-20']",
        "err": "-50 is not a valid day of the month: out of range",
    },
    {
        "case": "yamlUnmarshalTestCases[11]: end day of month > 31",
        "in": "- days_of_month: ['1:50']",
        "err": "50 is not a valid day of the month: out of range",
    },
    {
        "case": "yamlUnmarshalTestCases[12]: negative indices should work",
        "in": "- days_of_month: ['1:-1']",
        "intervals": [{"days_of_month": [(1, -1)]}],
    },
    {
        "case": "yamlUnmarshalTestCases[13]: end day must be negative if begin day is negative",
        "in": "- days_of_month: ['-15:5']",
        "err": "end day must be negative if start day is negative",
    },
    {
        "case": "yamlUnmarshalTestCases[14]: negative end date before positive start date",
        "in": "- days_of_month: ['10:-25']",
        "err": "end day -25 is always before start day 10",
    },
    {
        "case": "yamlUnmarshalTestCases[15]: months should work regardless of case",
        "in": "- months: ['January:december']",
        "intervals": [{"months": [(1, 12)]}],
    },
    {
        "case": "yamlUnmarshalTestCases[16]: time zones may be specified by location",
        "in": "- years: ['2020:2022']\n  location: 'Australia/Sydney'",
        "intervals": [{"years": [(2020, 2022)], "location": "Australia/Sydney"}],
    },
    {
        "case": "yamlUnmarshalTestCases[17]: invalid start month",
        "in": "- months: ['martius:june']",
        "err": "martius is not a valid month",
    },
    {
        "case": "yamlUnmarshalTestCases[18]: invalid end month",
        "in": "- months: ['march:junius']",
        "err": "junius is not a valid month",
    },
    {
        "case": "yamlUnmarshalTestCases[19]: start month after end month",
        "in": "- months: ['december:january']",
        "err": "end month january is before start month december",
    },
    {
        "case": "yamlUnmarshalTestCases[20]: start year after end year",
        "in": "- years: ['2022:2020']",
        "err": "end year 2020 is before start year 2022",
    },
]


@pytest.mark.parametrize("case", YAML_UNMARSHAL, ids=[c["case"] for c in YAML_UNMARSHAL])
def test_yaml_unmarshal(case: dict[str, Any]) -> None:
    where = f"{UPSTREAM} TestYamlUnmarshal {case['case']}"
    doc = yaml.safe_load(case["in"])
    if "err" in case:
        with pytest.raises(ValidationError) as caught:
            INTERVALS.validate_python(doc)
        assert case["err"] in str(caught.value), where
        return
    intervals = INTERVALS.validate_python(doc)
    assert [_shape(i) for i in intervals] == case["intervals"], where
    for ts in case.get("contains", []):
        assert any(i.contains(rfc822z(ts)) for i in intervals), f"{where}: {ts}"
    for ts in case.get("excludes", []):
        assert not any(i.contains(rfc822z(ts)) for i in intervals), f"{where}: {ts}"


# ---------------------------------------------------------- TestTimeIntervalComplete

COMPLETE: list[tuple[str, str, list[str], list[str]]] = [
    (
        "completeTestCases[0]",
        """
weekdays: ['monday:wednesday', 'saturday', 'sunday']
times:
  - start_time: '13:00'
    end_time: '15:00'
days_of_month: ['1', '10', '20:-1']
years: ['2020:2023']
months: ['january:march']
""",
        ["10 Jan 21 13:00 +0000", "30 Jan 21 14:24 +0000"],
        ["09 Jan 21 13:00 +0000", "20 Jan 21 12:59 +0000", "02 Feb 21 13:00 +0000"],
    ),
    (
        "completeTestCases[1]: broken clamping (begin date after the end of the month)",
        "days_of_month: ['30:31']\nyears: ['2020:2023']\nmonths: ['february']\n",
        [],
        ["28 Feb 21 13:00 +0000"],
    ),
]


@pytest.mark.parametrize(
    ("case", "text", "inside", "outside"), COMPLETE, ids=[c[0] for c in COMPLETE]
)
def test_time_interval_complete(
    case: str, text: str, inside: list[str], outside: list[str]
) -> None:
    interval = TimeInterval.model_validate(yaml.safe_load(text))
    for ts in inside:
        assert interval.contains(rfc822z(ts)), f"{UPSTREAM} TestTimeIntervalComplete {case}"
    for ts in outside:
        assert not interval.contains(rfc822z(ts)), f"{UPSTREAM} TestTimeIntervalComplete {case}"


# ------------------------------------------------------------ TestIntervener_Mutes

SYDNEY = ZoneInfo("Australia/Sydney")
EVENINGS_AND_WEEKENDS = [
    NamedTimeInterval.model_validate(
        {
            "name": "evenings",
            "time_intervals": [
                {
                    "times": [
                        {"start_time": "00:00", "end_time": "09:00"},
                        {"start_time": "17:00", "end_time": "24:00"},
                    ],
                    "location": "Australia/Sydney",
                }
            ],
        }
    ),
    NamedTimeInterval.model_validate(
        {
            "name": "weekends",
            "time_intervals": [
                {"weekdays": ["saturday", "sunday"], "location": "Australia/Sydney"}
            ],
        }
    ),
]

INTERVENER: list[tuple[str, datetime, list[str]]] = [
    (
        "Should be muted outside working hours",
        datetime(2024, 1, 1, 0, 0, tzinfo=SYDNEY),
        ["evenings"],
    ),
    ("Should not be muted during working hours", datetime(2024, 1, 1, 9, 0, tzinfo=SYDNEY), []),
    ("Should be muted during weekends", datetime(2024, 1, 6, 10, 0, tzinfo=SYDNEY), ["weekends"]),
    (
        "Should be muted during weekend evenings",
        datetime(2024, 1, 6, 17, 0, tzinfo=SYDNEY),
        ["evenings", "weekends"],
    ),
    (
        "Should be muted at 12pm UTC on a weekday",
        datetime(2024, 1, 1, 10, 0, tzinfo=UTC),
        ["evenings"],
    ),
    (
        "Should be muted at 12pm UTC on a weekend",
        datetime(2024, 1, 6, 10, 0, tzinfo=UTC),
        ["evenings", "weekends"],
    ),
]


@pytest.mark.parametrize(("case", "now", "muted_by"), INTERVENER, ids=[c[0] for c in INTERVENER])
def test_intervener_mutes(case: str, now: datetime, muted_by: list[str]) -> None:
    intervener = Intervener(EVENINGS_AND_WEEKENDS)
    got = intervener.containing(["evenings", "weekends"], now)
    assert got == muted_by, f"{UPSTREAM} TestIntervener_Mutes/{case}"


def test_intervener_refuses_an_undefined_name() -> None:
    with pytest.raises(KeyError, match="time interval nope doesn't exist in config"):
        Intervener(EVENINGS_AND_WEEKENDS).containing(["nope"], datetime(2024, 1, 1, tzinfo=UTC))
