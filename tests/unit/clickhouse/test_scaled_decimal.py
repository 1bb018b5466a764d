"""The cost column written from scaled integers (encode.ScaledDecimal, encode.scaled_costs)
against clickhouse-connect's own Decimal serializer (the reference: what its ``insert``
writes for the Decimal values), and the LowCardinality strings (encode.RepeatedString)
against its String serializer."""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

from clickhouse_connect.datatypes.numeric import Decimal as ChDecimal
from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.insert import InsertContext
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tokengov.core.pricing import EXACT_FEMTO, cost_decimal
from tokengov.sinks.clickhouse.encode import (
    RepeatedString,
    ScaledDecimal,
    _wire,
    scaled_costs,
    wire_type,
)


def _reference(kind: ChDecimal, values: list[Decimal]) -> bytes:
    dest = bytearray()
    ctx = InsertContext("t", ["c"], [kind], data=[values], column_oriented=True)
    kind.write_column_data(values, dest, ctx)
    return bytes(dest)


def _scaled(kind: ChDecimal, values: list[int]) -> bytes:
    dest = bytearray()
    scaled = ScaledDecimal.of(kind)
    ctx = InsertContext("t", ["c"], [scaled], data=[values], column_oriented=True)
    scaled.write_column_data(values, dest, ctx)
    return bytes(dest)


# Femto-USD amounts: the usual ones (below 2**63 once scaled), the exact range's edges, and
# beyond it (a Decimal each), negative ones included (reported costs are checked later).
_AMOUNTS = st.one_of(
    st.integers(0, 10**15),
    st.integers(0, EXACT_FEMTO - 1),
    st.sampled_from([0, 1, 999, 1000, 2**63 - 1, 2**63, 2**64, EXACT_FEMTO - 1]),
    st.integers(-(10**20), -1),
    st.integers(EXACT_FEMTO, 10**35),
)


@settings(max_examples=300, deadline=None)
@given(
    amounts=st.lists(_AMOUNTS, max_size=40),
    type_name=st.sampled_from(["Decimal(38, 12)", "Decimal(18, 6)", "Decimal(38, 15)"]),
)
# found by hypothesis: more digits than a Decimal(18, 6) holds, rounded by clickhouse-connect
@example(amounts=[180_345_425_182_257_593_500_000_000], type_name="Decimal(18, 6)")
def test_scaled_costs_serialize_as_the_decimals_do(amounts: list[int], type_name: str) -> None:
    kind = get_from_name(type_name)
    assert isinstance(kind, ChDecimal)
    sources = ["catalog"] * len(amounts)
    decimals = [cost_decimal(a, "catalog") for a in amounts]
    with localcontext() as context:
        context.prec = kind.prec
        fits = all(abs(int(d * 10**kind.scale)) < 2 ** (kind.byte_size * 8 - 1) for d in decimals)
    if not fits:  # a value the column cannot hold: not this test's business
        return
    assert _scaled(kind, scaled_costs(kind, amounts, sources)) == _reference(kind, decimals)


def _written(kind: Any, values: list[Any]) -> bytes | str:
    dest = bytearray()
    ctx = InsertContext("t", ["c"], [kind], data=[values], column_oriented=True)
    try:
        kind.write_column_data(values, dest, ctx)
    except Exception as exc:  # the same refusal (a value UTF-8 cannot encode)
        return type(exc).__name__
    return bytes(dest)


# Text of any length (a LEB128 length of one to three bytes), repeated, with NULLs, and text
# UTF-8 cannot encode (a lone surrogate).
_TEXTS = st.one_of(
    st.sampled_from(["", "support", "é", "x" * 127, "y" * 128, "z" * 16_384, "a\ud800"]),
    st.text(max_size=200),
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.one_of(
        st.lists(st.one_of(_TEXTS, st.none()), max_size=40),
        st.builds(lambda v, n: [v] * n, st.one_of(_TEXTS, st.none()), st.integers(1, 40)),
    ),
    nullable=st.booleans(),
)
def test_repeated_strings_serialize_as_strings_do(values: list[str | None], nullable: bool) -> None:
    """A LowCardinality(String) column (encode.RepeatedString: each distinct value encoded
    once) gives clickhouse-connect's String serializer's bytes, or its refusal."""
    name = "LowCardinality(Nullable(String))" if nullable else "LowCardinality(String)"
    if not nullable:
        values = [v for v in values if v is not None]
    repeated = _wire(name)
    assert isinstance(repeated, RepeatedString)
    reference = get_from_name(wire_type(name))
    assert _written(repeated, values) == _written(reference, values)


_INTS = st.one_of(st.none(), st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2**31, True]))


@settings(max_examples=300, deadline=None)
@given(
    values=st.one_of(
        st.lists(_INTS, max_size=40),
        st.builds(lambda v, n: [v] * n, _INTS, st.integers(1, 40)),
        st.lists(st.integers(0, 2**32 - 1), max_size=40).map(tuple),
    ),
    type_name=st.sampled_from(["Nullable(UInt64)", "Nullable(UInt32)", "Nullable(Int64)"]),
)
def test_nullable_ints_serialize_as_clickhouse_connect_does(
    values: list[int | None], type_name: str
) -> None:
    """A Nullable integer column (encode._NullableInts: no NULL, or only NULLs, in C) gives
    clickhouse-connect's bytes for it."""
    fast = _wire(type_name)
    reference = get_from_name(type_name)
    assert type(fast) is not type(reference)
    assert _written(fast, values) == _written(reference, values)
