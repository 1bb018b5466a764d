"""The bytes of a ``tokengov.events`` message, read within the limits of the wire.

:func:`load_items` turns a message into its items (one event, or the elements
of a batch envelope) and the parts that break a limit, each with its reason:

- a message larger than :data:`~tokengov.core.contracts.MAX_MESSAGE_BYTES` is refused
  whole, unread;
- JSON that is not valid (a syntax error, ``NaN``/``Infinity``, a number too
  large for a double, a byte-order mark, an empty message) is refused whole;
- an item nested deeper than :data:`~tokengov.core.contracts.MAX_JSON_DEPTH` levels
  is refused, the other items of its envelope kept (a message nested so deep
  that it cannot be parsed at all, beyond 1024 levels, is refused whole);
- an item with text that is not valid UTF-8 (in any string or key, known field
  or not) is refused, the other items of its envelope kept.

What an item means (fields, ranges, timestamps) is for the decoder
(:mod:`tokengov.core.decoding`: its fast paths and the contract's models); this module,
its first step, only says which items they may look at. It never raises on any
input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from tokengov.core.contracts import MAX_ID_CHARS, MAX_JSON_DEPTH, MAX_MESSAGE_BYTES

__all__ = ["DecodeFailure", "Loaded", "item_problem", "load_items", "plain_id"]


@dataclass(frozen=True, slots=True)
class DecodeFailure:
    """One part of a message that cannot be trusted, and why (the reason names the field)."""

    reason: str
    index: int | None = None  # position in a batch envelope; None for the whole message
    event_id: str | None = None


def _shallow(item: Any) -> bool:
    """True for the usual event: no container below its second level (then nothing in it can
    break a limit that :func:`item_problem` checks, in valid UTF-8). A quick look, no walk."""
    if type(item) is not dict:
        return False
    for value in item.values():
        kind = type(value)
        if kind is dict:
            for inner in value.values():
                if type(inner) is dict or type(inner) is list:
                    return False
        elif kind is list:
            return False
    return True


def item_problem(item: Any, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why one parsed item breaks a limit of the wire (None: it does not): nesting deeper
    than ``limit`` levels, or text that is not valid UTF-8 (lone surrogates: what
    :func:`load_items` makes of invalid bytes, or a ``\\udc80`` escape)."""
    stack: list[tuple[Any, int, str]] = [(item, 1, "")]
    while stack:
        value, depth, path = stack.pop()
        if len(path) > 60:
            path = path[:60] + "…"
        if type(value) is str:
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    return f"{path or 'the event'}: text is not valid UTF-8"
            continue
        if type(value) is dict:
            if depth > limit:
                return f"{path or 'the event'}: nested more than {limit} levels deep"
            for key, child in value.items():
                name = f"{path}.{key}" if path else str(key)
                if not key.isascii():
                    try:
                        key.encode("utf-8")
                    except UnicodeEncodeError:
                        shown = name.encode("utf-8", "backslashreplace").decode()
                        return f"{shown}: a key that is not valid UTF-8"
                stack.append((child, depth + 1, name))
        elif type(value) is list:
            if depth > limit:
                return f"{path or 'the event'}: nested more than {limit} levels deep"
            stack.extend((child, depth + 1, f"{path}[{i}]") for i, child in enumerate(value))
    return None


@dataclass(slots=True)
class Loaded:
    """A message's items to decode, ``(index, item)``, and the parts refused here."""

    items: list[tuple[int, Any]] = field(default_factory=list)
    failures: list[tuple[DecodeFailure, Any]] = field(default_factory=list)  # (why, the item)
    envelope: bool = False


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is too large for a double")
    return value


def _salvage(raw: bytes) -> Any:
    """Parse JSON whose text is not all valid UTF-8: the invalid bytes become lone
    surrogates (``surrogateescape``), which :func:`item_problem` then finds in their item.
    Same rules as orjson otherwise (no NaN/Infinity, no infinite numbers)."""
    text = raw.decode("utf-8", "surrogateescape")
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite)


def _whole(result: Loaded, reason: str) -> Loaded:
    result.failures.append((DecodeFailure(reason), None))
    return result


def plain_id(value: Any) -> bool:
    """An ``event_id`` fit to name an item in a log line or a dead-letter record."""
    return (
        type(value) is str
        and 0 < len(value) <= MAX_ID_CHARS
        and value.isprintable()
        and item_problem(value) is None
    )


def load_items(raw: bytes | None) -> Loaded:
    """The items of one message within the limits (see the module docstring)."""
    result = Loaded()
    if raw is None:
        return _whole(result, "empty message (no value)")
    if len(raw) > MAX_MESSAGE_BYTES:
        return _whole(
            result,
            f"message too large: {len(raw)} bytes, the limit is {MAX_MESSAGE_BYTES} (1 MiB); "
            "send fewer events per envelope",
        )
    utf8 = True
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            utf8 = False
        if utf8:
            message = str(exc)
            if "depth limit" in message or "recursion" in message:
                message = f"nested deeper than can be parsed (over 1024 levels): {message}"
            return _whole(result, f"not valid JSON: {message}")
        try:
            doc = _salvage(raw)
        except (ValueError, RecursionError) as salvage_exc:
            return _whole(
                result,
                f"not valid JSON (and not valid UTF-8 text): {str(salvage_exc)[:200]}",
            )
    if type(doc) is list:
        result.envelope = True
        items: list[Any] = doc
    else:
        items = [doc]
    for index, item in enumerate(items):
        problem = None if utf8 and _shallow(item) else item_problem(item)
        if problem is None:
            result.items.append((index, item))
            continue
        event_id = item.get("event_id") if type(item) is dict else None
        if not plain_id(event_id):
            event_id = None
        failure = DecodeFailure(problem, index if result.envelope else None, event_id)
        result.failures.append((failure, item))
    return result
