"""FOCUS export: the history's model spend as FinOps Open Cost and Usage Specification rows.

One row per team × workflow × agent × model × provider × charge period (an hour or a day,
UTC), read from ``token_events`` through a :class:`~tokengov.sinks.clickhouse.reader.Reader`
(the running worker's endpoint or the store itself, as ``tokengov query``). The columns are
FOCUS 1.0's (:data:`FOCUS_VERSION`, the version ``focus-validator`` 1.0.0 validates by default);
tokengov's own columns carry the ``x_`` prefix the spec requires of custom columns, its tag
keys the prefix ``tokengov/`` (:data:`TAG_PREFIX`).

Money stays exact: ``cost_usd`` is summed in ClickHouse as ``Decimal(76, 12)`` and arrives as
:class:`~decimal.Decimal`; CSV writes it as plain decimal text, Parquet as ``decimal128(38, 12)``.
tokengov records one price per call (the policy's rate), so ListCost, ContractedCost,
EffectiveCost and BilledCost are that one cost; unit prices are null because one row mixes
input, output and cache tokens priced at different rates. docs/focus.md maps every column.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from tokengov.sinks.clickhouse.reader import Reader

__all__ = [
    "FOCUS_COLUMNS",
    "FOCUS_VERSION",
    "TAG_PREFIX",
    "FileFormat",
    "FocusWindow",
    "Granularity",
    "focus_rows",
    "focus_sql",
    "write_csv",
    "write_focus",
    "write_parquet",
]

#: The FOCUS specification version the rows conform to.
FOCUS_VERSION: Final = "1.0"
#: Scale of the money columns (``cost_usd`` is ``Decimal(38, 12)``).
MONEY_SCALE: Final = 12
_TOKEN_KINDS: Final = ("input", "output", "cached_input", "cache_write", "reasoning")


class Granularity(StrEnum):
    hour = "hour"
    day = "day"

    @property
    def step(self) -> timedelta:
        return timedelta(hours=1) if self is Granularity.hour else timedelta(days=1)

    def floor(self, when: datetime) -> datetime:
        """The start of the period that holds ``when`` (UTC)."""
        when = when.astimezone(UTC)
        if self is Granularity.hour:
            return when.replace(minute=0, second=0, microsecond=0)
        return when.replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class FocusWindow:
    """Whole charge periods ``since`` ≤ t < ``until`` (UTC period boundaries)."""

    since: datetime
    until: datetime
    granularity: Granularity = Granularity.hour

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value: datetime = getattr(self, name)
            if value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware, got {value}")
            if self.granularity.floor(value) != value:
                raise ValueError(
                    f"{name} ({value.isoformat()}) must start an hour"
                    if self.granularity is Granularity.hour
                    else f"{name} ({value.isoformat()}) must start a day (UTC)"
                )
        if self.since > self.until:
            raise ValueError(f"since ({self.since}) must not be after until ({self.until})")

    @classmethod
    def covering(cls, since: datetime, until: datetime, granularity: Granularity) -> FocusWindow:
        """The whole periods between two instants: both rounded down to a period start, so
        that the period still in progress at ``until`` is left for a later export and two
        exports of adjacent windows never share a charge period."""
        return cls(granularity.floor(since), granularity.floor(until), granularity)

    def chunks(self) -> list[FocusWindow]:
        """The window cut at each UTC day (hourly periods) or month (daily periods)."""
        pieces: list[FocusWindow] = []
        start = self.since
        while start < self.until:
            if self.granularity is Granularity.hour:
                boundary = Granularity.day.floor(start) + timedelta(days=1)
            else:
                boundary = _month(start)[1]
            end = min(boundary, self.until)
            pieces.append(FocusWindow(start, end, self.granularity))
            start = end
        return pieces

    def parameters(self) -> dict[str, Any]:
        fmt = "%Y-%m-%d %H:%M:%S"
        return {
            "since": self.since.astimezone(UTC).strftime(fmt),
            "until": self.until.astimezone(UTC).strftime(fmt),
        }


def focus_sql(granularity: Granularity) -> str:
    """The sums behind the rows. Reads only ``token_events`` columns that exist since schema
    version 2, by name, so added columns change nothing; ``FINAL`` so that an event stored
    twice (a retried insert not yet merged) counts once. The bounds are ``DateTime64(3)``
    like ``ts``: compared with a ``DateTime`` bound, this chdb drops an event at
    23:59:59.999 from the range that ends at the next midnight (measured; the test's ``e0``)."""
    bucket = "toStartOfHour(ts)" if granularity is Granularity.hour else "toStartOfDay(ts)"
    # Sums in types no sum of contract values overflows (as the reports do).
    tokens = ",\n    ".join(f"sum(toUInt256({k}_tokens)) AS {k}_tokens" for k in _TOKEN_KINDS)
    return f"""SELECT toUnixTimestamp({bucket}) AS period_start_s,
    team, workflow, agent, provider, model,
    count() AS calls,
    {tokens},
    sum(toDecimal256(cost_usd, {MONEY_SCALE})) AS cost_usd,
    countIf(cost_source = 'unpriced') AS unpriced_calls
FROM token_events FINAL
WHERE ts >= {{since:DateTime64(3, 'UTC')}} AND ts < {{until:DateTime64(3, 'UTC')}}
GROUP BY period_start_s, team, workflow, agent, provider, model
ORDER BY period_start_s, team, workflow, agent, provider, model"""


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "decimal" (money), "quantity" (a whole count as a FOCUS Decimal),
    # "datetime", "string", "json", "integer"


_M, _Q, _T, _S, _J, _I = "decimal", "quantity", "datetime", "string", "json", "integer"

#: The columns in file order: FOCUS 1.0's, then tokengov's (``x_``).
FOCUS_COLUMNS: Final = tuple(
    Column(name, kind)
    for name, kind in (
        ("AvailabilityZone", _S),
        ("BilledCost", _M),
        ("BillingAccountId", _S),
        ("BillingAccountName", _S),
        ("BillingCurrency", _S),
        ("BillingPeriodEnd", _T),
        ("BillingPeriodStart", _T),
        ("ChargeCategory", _S),
        ("ChargeClass", _S),
        ("ChargeDescription", _S),
        ("ChargeFrequency", _S),
        ("ChargePeriodEnd", _T),
        ("ChargePeriodStart", _T),
        ("CommitmentDiscountCategory", _S),
        ("CommitmentDiscountId", _S),
        ("CommitmentDiscountName", _S),
        ("CommitmentDiscountStatus", _S),
        ("CommitmentDiscountType", _S),
        ("ConsumedQuantity", _Q),
        ("ConsumedUnit", _S),
        ("ContractedCost", _M),
        ("ContractedUnitPrice", _M),
        ("EffectiveCost", _M),
        ("InvoiceIssuerName", _S),
        ("ListCost", _M),
        ("ListUnitPrice", _M),
        ("PricingCategory", _S),
        ("PricingQuantity", _Q),
        ("PricingUnit", _S),
        ("ProviderName", _S),
        ("PublisherName", _S),
        ("RegionId", _S),
        ("RegionName", _S),
        ("ResourceId", _S),
        ("ResourceName", _S),
        ("ResourceType", _S),
        ("ServiceCategory", _S),
        ("ServiceName", _S),
        ("SkuId", _S),
        ("SkuPriceId", _S),
        ("SubAccountId", _S),
        ("SubAccountName", _S),
        ("Tags", _J),
        ("x_Calls", _I),
        ("x_InputTokens", _I),
        ("x_OutputTokens", _I),
        ("x_CachedInputTokens", _I),
        ("x_CacheWriteTokens", _I),
        ("x_ReasoningTokens", _I),
        ("x_UnpricedCalls", _I),
    )
)

CONSUMED_UNIT: Final = "Tokens"  # FOCUS Unit Format: a plural count-based unit
#: The prefix of tokengov's tag keys. FOCUS 1.0 (Tags): provider-defined tags MUST carry a
#: provider-specified prefix (its example: ``acme/``), user-defined ones none; team, workflow
#: and agent are keys tokengov defines. (``x_`` is the prefix of custom *columns*.)
TAG_PREFIX: Final = "tokengov/"
SERVICE_CATEGORY: Final = "AI and Machine Learning"


def _month(start: datetime) -> tuple[datetime, datetime]:
    first = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following


def _focus_row(sums: dict[str, Any], step: timedelta) -> dict[str, Any]:
    start = datetime.fromtimestamp(int(sums["period_start_s"]), UTC)
    billing_start, billing_end = _month(start)
    provider, model = str(sums["provider"]), str(sums["model"])
    team, workflow, agent = str(sums["team"]), str(sums["workflow"]), str(sums["agent"])
    cost = Decimal(sums["cost_usd"])
    tokens = int(sums["input_tokens"]) + int(sums["output_tokens"])
    sku = f"{provider}/{model}"
    tags = {
        f"{TAG_PREFIX}team": team,
        f"{TAG_PREFIX}workflow": workflow,
        f"{TAG_PREFIX}agent": agent,
    }
    return {
        "AvailabilityZone": None,
        "BilledCost": cost,
        "BillingAccountId": provider,
        "BillingAccountName": provider,
        "BillingCurrency": "USD",
        "BillingPeriodEnd": billing_end,
        "BillingPeriodStart": billing_start,
        "ChargeCategory": "Usage",
        "ChargeClass": None,  # not a correction
        "ChargeDescription": (
            f"{model} tokens from {provider} for workflow {workflow} of team {team}, agent {agent}"
        ),
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": start + step,
        "ChargePeriodStart": start,
        "CommitmentDiscountCategory": None,
        "CommitmentDiscountId": None,
        "CommitmentDiscountName": None,
        "CommitmentDiscountStatus": None,
        "CommitmentDiscountType": None,
        "ConsumedQuantity": tokens,
        "ConsumedUnit": CONSUMED_UNIT,
        "ContractedCost": cost,
        "ContractedUnitPrice": None,
        "EffectiveCost": cost,
        "InvoiceIssuerName": provider,
        "ListCost": cost,
        "ListUnitPrice": None,
        "PricingCategory": "Standard",
        "PricingQuantity": tokens,
        "PricingUnit": CONSUMED_UNIT,
        "ProviderName": provider,
        "PublisherName": provider,
        "RegionId": None,
        "RegionName": None,
        "ResourceId": model,
        "ResourceName": model,
        "ResourceType": "Model",
        "ServiceCategory": SERVICE_CATEGORY,
        "ServiceName": f"{provider} API",
        "SkuId": sku,
        "SkuPriceId": sku,  # one price entry per model and provider (see docs/focus.md)
        "SubAccountId": None,
        "SubAccountName": None,
        "Tags": tags,
        "x_Calls": int(sums["calls"]),
        "x_InputTokens": int(sums["input_tokens"]),
        "x_OutputTokens": int(sums["output_tokens"]),
        "x_CachedInputTokens": int(sums["cached_input_tokens"]),
        "x_CacheWriteTokens": int(sums["cache_write_tokens"]),
        "x_ReasoningTokens": int(sums["reasoning_tokens"]),
        "x_UnpricedCalls": int(sums["unpriced_calls"]),
    }


def focus_rows(reader: Reader, window: FocusWindow) -> list[dict[str, Any]]:
    """The FOCUS rows of ``window``, keyed by :data:`FOCUS_COLUMNS` names, in period order.

    One query per :meth:`FocusWindow.chunks` piece (a day of hours, a month of days), so
    that a long window stays within the reader's per-query limits (result rows, time)."""
    step = window.granularity.step
    rows: list[dict[str, Any]] = []
    for piece in window.chunks():
        result = reader.query(focus_sql(window.granularity), piece.parameters())
        rows.extend(_focus_row(sums, step) for sums in result.dicts())
    return rows


def _text(value: Any, kind: str) -> str:
    """One CSV field: null is empty; datetimes ``YYYY-MM-DDTHH:MM:SSZ``; money as plain
    decimal text at its full scale; a FOCUS Decimal quantity with its decimal point (a
    whole count is still a Decimal column)."""
    if value is None:
        return ""
    if kind == _T:
        return str(value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    if kind == _M:
        return format(value.quantize(Decimal(1).scaleb(-MONEY_SCALE)), "f")
    if kind == _Q:
        return f"{int(value)}.0"
    if kind == _J:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return str(value)


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """RFC 4180 CSV, UTF-8, a header row even when there are no rows."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([c.name for c in FOCUS_COLUMNS])
        for row in rows:
            writer.writerow([_text(row[c.name], c.kind) for c in FOCUS_COLUMNS])


def write_parquet(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Parquet: money ``decimal128(38, 12)``, quantities ``decimal128(38, 0)``, times
    ``timestamp[ms, UTC]``, Tags a JSON object string, counts ``int64``. The schema is
    the same with no rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        _M: pa.decimal128(38, MONEY_SCALE),
        _Q: pa.decimal128(38, 0),
        _T: pa.timestamp("ms", tz="UTC"),
        _S: pa.string(),
        _J: pa.string(),
        _I: pa.int64(),
    }
    arrays = []
    for column in FOCUS_COLUMNS:
        values: list[Any] = [row[column.name] for row in rows]
        if column.kind == _J:
            values = [_text(v, _J) if v is not None else None for v in values]
        elif column.kind == _Q:
            values = [Decimal(v) if v is not None else None for v in values]
        arrays.append(pa.array(values, type=types[column.kind]))
    schema = pa.schema(
        [pa.field(c.name, types[c.kind]) for c in FOCUS_COLUMNS],
        metadata={"focus_version": FOCUS_VERSION, "generator": "tokengov"},
    )
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path)


class FileFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"

    @classmethod
    def of(cls, path: Path, given: FileFormat | None) -> FileFormat:
        """``given``, else the file's suffix (``.csv``, ``.parquet``/``.pq``)."""
        if given is not None:
            return given
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return cls.csv
        if suffix in (".parquet", ".pq"):
            return cls.parquet
        raise ValueError(
            f"--out {path}: cannot tell the format from the suffix {suffix or '(none)'!r}; "
            "name the file .csv or .parquet, or pass --format csv|parquet"
        )


def write_focus(rows: Sequence[dict[str, Any]], path: Path, fmt: FileFormat) -> None:
    """Writes a temporary file beside ``path`` and renames it: a reader (or a failed export)
    never sees half a file."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        if fmt is FileFormat.csv:
            write_csv(rows, partial)
        else:
            write_parquet(rows, partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
