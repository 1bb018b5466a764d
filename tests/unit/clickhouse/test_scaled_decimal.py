"""The cost column written from scaled integers (encode.ScaledDecimal, encode.scaled_costs)
against clickhouse-connect's own Decimal serializer (the reference: what its ``insert``
writes for the Decimal values)."""

from __future__ import annotations

from decimal import Decimal, localcontext

from clickhouse_connect.datatypes.numeric import Decimal as ChDecimal
from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.insert import InsertContext
from hypothesis import given, settings
from hypothesis import strategies as st

from tokengov.core.pricing import EXACT_FEMTO, cost_decimal
from tokengov.sinks.clickhouse.encode import ScaledDecimal, scaled_costs


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
