"""JSON for the streams' own records (state, partials, metrics) with integers of any size.

Money is counted in integer femto-USD (:mod:`tokengov.core.calls`) and token
counts are summed without bound, so a sum can pass 64 bits — $18,447 is 2**64
femto-USD — and orjson refuses such integers. :func:`dumps` writes every
integer outside the signed 64-bit range as its decimal text (``"150000000000000000000"``)
and :func:`big` reads either form back: exact at any size, with the cheap path
(orjson, no copy) whenever nothing is that large.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

import orjson

__all__ = ["big", "dumps", "wide", "wide_ints"]

_LOW: Final = -(2**63)
_HIGH: Final = 2**63 - 1


def wide(value: Any) -> Any:
    """``value`` with every integer beyond 64 bits as decimal text (containers copied only
    where needed is not worth it here: this runs only when orjson refused the fast way)."""
    kind = type(value)
    if kind is int:
        return value if _LOW <= value <= _HIGH else str(value)
    if kind is list or kind is tuple:
        return [wide(v) for v in value]
    if kind is dict:
        return {k: wide(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: wide(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def wide_ints(values: list[int]) -> list[int | str]:
    """:func:`wide` of a list of integers (a copy), without a call per item when none is
    beyond 64 bits, the usual case: the state records of stage 2's window groups hold one
    such list per row and partition, all rewritten at every flush."""
    if values and (min(values) < _LOW or max(values) > _HIGH):
        return [v if _LOW <= v <= _HIGH else str(v) for v in values]
    return list(values)


def dumps(doc: Any, option: int = 0) -> bytes:
    """orjson, or — when an integer is too large for it — orjson over :func:`wide` of it."""
    try:
        return orjson.dumps(doc, option=option)
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(wide(doc), option=option)


def big(value: int | str) -> int:
    """An integer written by :func:`dumps`: a JSON number, or decimal text when large."""
    return value if type(value) is int else int(value)
