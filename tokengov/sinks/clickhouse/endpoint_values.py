"""Values from the query endpoint's JSON back to the Python values the store itself returns.

The endpoint (:mod:`tokengov.sinks.clickhouse.endpoint`) sends money and big integers as
strings and times as ISO strings, with each column's ClickHouse type name; this
module decodes them by that type so an :class:`~tokengov.sinks.clickhouse.reader.EndpointReader`
and a :class:`~tokengov.sinks.clickhouse.reader.StoreReader` return equal rows:

* ``Nullable(T)``, ``LowCardinality(T)``, ``SimpleAggregateFunction(f, T)`` → as ``T``
  (``None`` stays ``None``);
* ``Decimal*`` → :class:`~decimal.Decimal`; ``(U)Int*`` → ``int``;
* ``DateTime``/``DateTime64`` → timezone-aware UTC :class:`~datetime.datetime`;
  ``Date``/``Date32`` → :class:`~datetime.date`; ``UUID`` → :class:`~uuid.UUID`;
* ``Array(T)`` → ``list``, ``Tuple(T, ...)`` → ``tuple`` (a named ``Tuple(a T, ...)`` →
  ``dict``, as clickhouse-connect gives it), ``Map(K, V)`` → ``dict``, each element
  decoded by its own type;
* anything else as JSON gave it.

Query parameters travel the other way: :func:`encode_parameters` tags the values JSON
cannot carry (``{"$decimal": "1.10"}``, ``$datetime``, ``$date``, ``$uuid``, ``$tuple``)
and the endpoint's :func:`decode_parameters` restores them, so clickhouse-connect binds
the same Python values on both paths.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

__all__ = ["decode_parameters", "decode_row", "decoder", "encode_parameters", "split_type"]

Decoder = Callable[[Any], Any]

_WRAPPERS = ("Nullable", "LowCardinality")
_NAMED_ELEMENT = re.compile(r"^(`(?:[^`\\]|\\.)*`|[A-Za-z_][A-Za-z0-9_]*)\s+(?=[A-Z])")


def split_type(name: str) -> tuple[str, list[str]]:
    """``"Map(String, Array(Int64))"`` → ``("Map", ["String", "Array(Int64)"])``."""
    name = name.strip()
    open_at = name.find("(")
    if open_at < 0 or not name.endswith(")"):
        return name, []
    head, inner = name[:open_at].strip(), name[open_at + 1 : -1]
    args: list[str] = []
    depth, start, quoted = 0, 0, False
    for i, ch in enumerate(inner):
        if ch == "'" and (i == 0 or inner[i - 1] != "\\"):
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(inner[start:i].strip())
            start = i + 1
    args.append(inner[start:].strip())
    return head, args


def _identity(value: Any) -> Any:
    return value


def _none_or(decode: Decoder) -> Decoder:
    return lambda value: None if value is None else decode(value)


def _datetime(value: Any) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _date(value: Any) -> date:
    return date.fromisoformat(str(value))


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value)) if not isinstance(value, Decimal) else value


def _int(value: Any) -> Any:
    return int(value) if isinstance(value, str) else value


def _uuid(value: Any) -> UUID:
    return UUID(str(value))


def _array(element: Decoder) -> Decoder:
    return lambda value: [element(v) for v in value]


def _tuple(elements: Sequence[Decoder]) -> Decoder:
    return lambda value: tuple(d(v) for d, v in zip(elements, value, strict=False))


def _named_tuple(elements: Mapping[str, Decoder]) -> Decoder:
    """The store gives a named tuple as a dict of its elements."""
    return lambda value: {k: elements[k](v) if k in elements else v for k, v in value.items()}


def _tuple_decoder(args: Sequence[str]) -> Decoder:
    named: dict[str, Decoder] = {}
    for arg in args:
        match = _NAMED_ELEMENT.match(arg)
        if match is None:
            return _tuple([decoder(a) for a in args])
        named[match.group(1).strip("`")] = decoder(arg[match.end() :])
    return _named_tuple(named)


def _map(key: Decoder, item: Decoder) -> Decoder:
    return lambda value: {key(k): item(v) for k, v in value.items()}


@functools.lru_cache(maxsize=512)
def decoder(type_name: str) -> Decoder:
    """How to turn a JSON value of ClickHouse type ``type_name`` into the store's Python value."""
    head, args = split_type(type_name)
    if head in _WRAPPERS and args:
        return _none_or(decoder(args[0]))
    if head == "SimpleAggregateFunction" and len(args) == 2:
        return _none_or(decoder(args[1]))
    if head.startswith("Decimal"):
        return _none_or(_decimal)
    if head in ("DateTime", "DateTime64"):
        return _none_or(_datetime)
    if head in ("Date", "Date32"):
        return _none_or(_date)
    if head == "UUID":
        return _none_or(_uuid)
    if re.fullmatch(r"U?Int\d+", head):
        return _none_or(_int)
    if head == "Array" and args:
        return _none_or(_array(decoder(args[0])))
    if head == "Tuple" and args:
        return _none_or(_tuple_decoder(args))
    if head == "Map" and len(args) == 2:
        return _none_or(_map(decoder(args[0]), decoder(args[1])))
    return _identity


def decode_row(decoders: Sequence[Decoder], row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(d(v) for d, v in zip(decoders, row, strict=True))


_TAGS: dict[str, Decoder] = {
    "$decimal": Decimal,
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$uuid": UUID,
}


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return {"$decimal": format(value, "f")}
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, UUID):
        return {"$uuid": str(value)}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v) for v in value]}
    if isinstance(value, list | set | frozenset):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag in _TAGS:
                return _TAGS[tag](inner)
            if tag == "$tuple":
                return tuple(_decode(v) for v in inner)
        return {k: _decode(v) for k, v in value.items()}
    return value


def encode_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Query parameters as JSON, the values JSON cannot carry tagged by their type."""
    return {str(k): _encode(v) for k, v in (parameters or {}).items()}


def decode_parameters(parameters: Any) -> dict[str, Any]:
    """The parameters :func:`encode_parameters` sent, back as Python values."""
    if not isinstance(parameters, dict):
        raise ValueError("parameters must be a JSON object")
    decoded: dict[str, Any] = {}
    for name, value in parameters.items():
        try:
            decoded[str(name)] = _decode(value)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise ValueError(f"parameter {name}: {exc}") from exc
    return decoded
