"""From the bytes of a ``tokengov.events`` message to calls and outcomes: the one decoder.

Every consumer of the events topic decodes here — the streams (stage 1), the
token-debt role, the ClickHouse writer, ``tokengov tail`` and ``tokengov emit`` —
into one internal form (:mod:`tokengov.core.calls`: :class:`~tokengov.core.calls.Call`,
:class:`~tokengov.core.calls.Done`). A message is one event or a batch envelope (a JSON
array); valid items of an envelope are kept, each with its index (its position
in the envelope), and every part that cannot be trusted comes back as a
:class:`~tokengov.core.message_items.DecodeFailure` with a reason naming the field.

The limits of the wire (size, nesting, UTF-8) are :mod:`tokengov.core.message_items`'s. Then
three paths, each applying the contract's rules (:mod:`tokengov.core.contracts`), the
faster ones only to what they are sure about:

1. :func:`fast_message` — the whole message through msgspec, which parses the
   JSON and checks types, ranges and lengths in C against a strict mirror of the
   contract (``_CallWire``, ``_OutcomeWire``, fields in the models' order); the
   remaining rules (printable text, attribution, timestamp shape, parts within totals)
   are checked here, a message's times at once when they are all UTC-shaped
   (:func:`_utc_stamps`), an event's usual names once per distinct set, each name then one
   object in every event (:data:`_NAMES`). Any item it is not sure about sends the whole
   message to path 2. ~2.5 µs CPU per event (the bench mix), about half of it msgspec's.
2. :func:`fast_event` — per item of the parsed JSON, the same rules on the dict.
3. The pydantic models, which accept the item or say precisely what is wrong.

All three agree on every input the faster ones accept
(``tests/unit/streams/test_decode.py`` checks it with hypothesis). A single
object that must be a valid event (``tokengov emit``'s lines) is
:func:`parse_event`'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from operator import add, gt
from typing import Annotated, Any, Final, Literal, NamedTuple, cast, get_type_hints

import msgspec
from pydantic import ValidationError

from tokengov.core.calls import (
    CALL_ARGS,
    NO_COMPONENTS,
    Call,
    CallArgs,
    Done,
    call_args,
    from_model,
)
from tokengov.core.contracts import (
    COMPONENT_NAMES,
    MAX_COUNT,
    MAX_ID_CHARS,
    MAX_MESSAGE_BYTES,
    MAX_NAME_CHARS,
    TS_MAX,
    TS_MIN,
    UNATTRIBUTED,
    CallEvent,
    Outcome,
    describe_validation_error,
    event_adapter,
)
from tokengov.core.errors import ContractError
from tokengov.core.message_items import DecodeFailure, load_items, plain_id

__all__ = [
    "CallColumns",
    "DecodeFailure",
    "Decoded",
    "decode_call_args",
    "decode_call_columns",
    "decode_events",
    "fast_event",
    "fast_message",
    "parse_event",
]

_CTRL: Final = re.compile(r"[\x00-\x1f\x7f]")
_INT_LIMIT: Final = MAX_COUNT + 1  # every integer field: 0 <= n < 2**63
_STATUSES: Final = frozenset(("ok", "error", "timeout"))
_OUTCOME_STATUSES: Final = frozenset(("success", "failure", "abandoned"))
_MISSING: Final = object()


def parse_event(obj: Any) -> CallEvent | Outcome:
    """Validate one decoded JSON object with the contract's models (path 3). Raises
    :class:`~tokengov.core.errors.ContractError` naming the field."""
    if not isinstance(obj, dict):
        raise ContractError(f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.get("kind")
    if kind not in ("call", "outcome"):
        shown = repr(kind) if len(repr(kind)) <= 80 else repr(kind)[:80] + "…"
        raise ContractError(f"unknown kind {shown}; expected 'call' or 'outcome'", field="kind")
    try:
        return event_adapter.validate_python(obj)
    except ValidationError as exc:
        raise ContractError(describe_validation_error(exc)) from exc


class _Slow(Exception):
    """The fast path is not sure: let the pydantic models decide."""


def _text(value: Any, limit: int) -> str:
    if type(value) is not str or not 0 < len(value) <= limit:
        raise _Slow
    if not value.isprintable() and _CTRL.search(value):
        raise _Slow
    return value


def _attribution(value: Any) -> str:
    # the usual case first, without a call: a plainly printable, non-blank name
    if (
        type(value) is str
        and 0 < len(value) <= MAX_NAME_CHARS
        and value.isprintable()
        and not value.isspace()
    ):
        return value
    if value is None or value is _MISSING:
        return UNATTRIBUTED
    if type(value) is str:
        if _ok_text(value, MAX_NAME_CHARS) and not value.isspace():
            return value
        if not value.strip():
            return UNATTRIBUTED
    raise _Slow


def _ts_shaped(text: str) -> bool:
    """``text`` is shaped as the fast paths take a time,
    ``[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})``,
    given that :meth:`datetime.fromisoformat` reads it — at half the cost of that regular
    expression: ASCII; the separators of ``YYYY-MM-DDTHH:MM:SS`` in place (so a calendar date,
    not a week date, and a time with colons, whose digits ``fromisoformat`` requires); then, told
    by the length, up to six decimals after a ``.`` and ``Z``, or an offset ``±HH:MM`` (its sign
    the first one, where ``fromisoformat`` looks for the offset, and its digits required).
    ``tests/unit/streams/test_decode.py`` checks the fast paths' times against the models'."""
    n = len(text)
    if text[-1:] == "Z":
        shaped = n == 20 or (21 < n < 28 and text[19] == ".")
    else:
        shaped = (n == 25 or (26 < n < 33 and text[19] == ".")) and text[-6] in "+-"
        shaped = shaped and text[-3] == ":"
    return shaped and text[4:17:3] == "--T::" and text.isascii()


def _ts(value: Any) -> datetime:
    if type(value) is not str or not _ts_shaped(value):
        raise _Slow
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _Slow from None
    if not TS_MIN <= parsed < TS_MAX:
        raise _Slow  # out of range: the models say so (and converting could overflow)
    return parsed if value[-1] == "Z" else parsed.astimezone(UTC)


def _ok_text(value: Any, limit: int) -> bool:
    return (
        type(value) is str
        and 0 < len(value) <= limit
        and (value.isprintable() or not _CTRL.search(value))
    )


def _fast_call(d: dict[str, Any]) -> Call:
    # Inlined on purpose: this runs once per event (see the module docstring). Every check
    # is the contract's; a string that is not plainly printable goes to _ok_text.
    get = d.get
    version = get("schema_version", 1)
    if version != 1 or type(version) is not int:
        raise _Slow
    event_id = get("event_id")
    if not (
        type(event_id) is str and 0 < len(event_id) <= MAX_ID_CHARS and event_id.isprintable()
    ) and not _ok_text(event_id, MAX_ID_CHARS):
        raise _Slow
    ts = _ts(get("ts"))
    task = get("task_id")
    if task is None:
        task = event_id
    elif not (
        type(task) is str and 0 < len(task) <= MAX_ID_CHARS and task.isprintable()
    ) and not _ok_text(task, MAX_ID_CHARS):
        raise _Slow
    tokens = get("tokens", _MISSING)
    if tokens is _MISSING:
        inp = out = cached = write = write_1h = reasoning = 0
    elif type(tokens) is dict:
        tget = tokens.get
        inp, out = tget("input", 0), tget("output", 0)
        cached, write = tget("cached_input", 0), tget("cache_write", 0)
        write_1h, reasoning = tget("cache_write_1h", 0), tget("reasoning", 0)
        if (
            type(inp) is not int
            or type(out) is not int
            or type(cached) is not int
            or type(write) is not int
            or type(write_1h) is not int
            or type(reasoning) is not int
            or not 0 <= inp < _INT_LIMIT
            or not 0 <= out < _INT_LIMIT
            or cached < 0
            or write < 0
            or write_1h < 0
            or reasoning < 0
            or cached + write > inp
            or write_1h > write
            or reasoning > out
        ):
            raise _Slow
    else:
        raise _Slow
    comps = get("components", _MISSING)
    if comps is _MISSING:
        components = NO_COMPONENTS
    elif type(comps) is dict:
        cget = comps.get
        c0, c1, c2, c3 = (
            cget("system", 0),
            cget("tool_definitions", 0),
            cget("retrieved", 0),
            cget("history", 0),
        )
        c4, c5, c6 = cget("tool_responses", 0), cget("handoff", 0), cget("memory", 0)
        if (
            type(c0) is not int
            or type(c1) is not int
            or type(c2) is not int
            or type(c3) is not int
            or type(c4) is not int
            or type(c5) is not int
            or type(c6) is not int
            or min(c0, c1, c2, c3, c4, c5, c6) < 0
            or c0 + c1 + c2 + c3 + c4 + c5 + c6 > inp
        ):
            raise _Slow
        components = (c0, c1, c2, c3, c4, c5, c6)
    else:
        raise _Slow
    status = get("status", "ok")
    if type(status) is not str or status not in _STATUSES:
        raise _Slow
    if get("cost_usd") is not None:
        raise _Slow  # a reported cost: Decimal rules are the models' job
    step, attempt, calls = get("step", 0), get("attempt", 1), get("tool_calls", 0)
    if (
        type(step) is not int
        or type(attempt) is not int
        or type(calls) is not int
        or not 0 <= step < _INT_LIMIT
        or not 1 <= attempt < _INT_LIMIT
        or not 0 <= calls < _INT_LIMIT
    ):
        raise _Slow
    latency, window = get("latency_ms"), get("context_window")
    if latency is not None and (type(latency) is not int or not 0 <= latency < _INT_LIMIT):
        raise _Slow
    if window is not None and (type(window) is not int or not 0 <= window < _INT_LIMIT):
        raise _Slow
    missing = get("usage_missing", False)
    if type(missing) is not bool or (missing and (inp or out)):
        raise _Slow
    model = get("model")
    agent, provider = get("agent", "agent"), get("provider", "unknown")
    parent, tool = get("parent_agent"), get("tool_name")
    tier = get("service_tier")
    team, workflow = get("team"), get("workflow")
    # the names, all at once: each is a non-empty printable string within the limit
    names = [model, agent, provider]
    if parent is not None:
        names.append(parent)
    if tool is not None:
        names.append(tool)
    if tier is not None:
        names.append(tier)
    for name in names:
        if not (
            type(name) is str and 0 < len(name) <= MAX_NAME_CHARS and name.isprintable()
        ) and not _ok_text(name, MAX_NAME_CHARS):
            raise _Slow
    team = _attribution(team)
    workflow = _attribution(workflow)
    return Call(
        cast(str, event_id),
        ts,
        team,
        workflow,
        cast(str, task),
        cast(str, agent),
        parent,
        step,
        cast(str, model),
        inp,
        out,
        cached,
        write,
        reasoning,
        components,
        attempt,
        calls,
        tool,
        status,
        None,
        window,
        cast(str, provider),
        latency,
        write_1h,
        tier,
        missing,
    )


def _fast_outcome(d: dict[str, Any]) -> Done:
    get = d.get
    if get("schema_version", 1) != 1 or type(get("schema_version", 1)) is not int:
        raise _Slow
    status = get("status", _MISSING)
    if type(status) is not str or status not in _OUTCOME_STATUSES:
        raise _Slow
    quality = get("quality")
    if quality is not None and (type(quality) is not float or not 0.0 <= quality <= 1.0):
        raise _Slow
    return Done(
        _text(get("event_id", _MISSING), MAX_ID_CHARS),
        _ts(get("ts", _MISSING)),
        _attribution(get("team", _MISSING)),
        _attribution(get("workflow", _MISSING)),
        _text(get("task_id", _MISSING), MAX_ID_CHARS),
        status,
        quality,
    )


def fast_event(item: Any) -> Call | Done | None:
    """The fast path alone: the event, or None when the models must decide."""
    if type(item) is not dict:
        return None
    kind = item.get("kind")
    try:
        if kind == "call":
            return _fast_call(item)
        if kind == "outcome":
            return _fast_outcome(item)
    except _Slow:
        return None
    return None


# -- path 1: the whole message through msgspec ----------------------------------------

_Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
_WireName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_CHARS)]
_WireId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
#: Team and workflow: blank is ``unattributed`` for the models, so only the length is checked
#: (a longer one, even blank, goes to the slower paths).
_WireAttribution = Annotated[str, msgspec.Meta(max_length=MAX_NAME_CHARS)] | None


class _TokensWire(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    input: _Count = 0
    output: _Count = 0
    cached_input: _Count = 0
    cache_write: _Count = 0
    cache_write_1h: _Count = 0
    reasoning: _Count = 0


class _ComponentsWire(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    system: _Count = 0
    tool_definitions: _Count = 0
    retrieved: _Count = 0
    history: _Count = 0
    tool_responses: _Count = 0
    handoff: _Count = 0
    memory: _Count = 0


if _ComponentsWire.__struct_fields__ != COMPONENT_NAMES:  # _astuple's order is the contract's
    raise RuntimeError("_ComponentsWire's fields are not COMPONENT_NAMES, in that order")
_astuple: Final = msgspec.structs.astuple
_UNSET: Final = msgspec.UNSET
_NO_TOKENS: Final = _TokensWire()
_NO_COMPONENTS_WIRE: Final = _ComponentsWire()


class _CallWire(
    msgspec.Struct,
    tag_field="kind",
    tag="call",
    forbid_unknown_fields=True,
    gc=False,
    kw_only=True,
):
    """A call as path 1 accepts it: strictly typed (no coercion), a reported cost refused
    (Decimal rules are the models' job); absent ``tokens``/``components`` are UNSET (a JSON
    ``null`` there is refused, as the contract refuses it). Unknown fields are left to path 2,
    which checks how deep they nest; so nothing here nests deeper than three levels. The
    fields in the models' order (checked below): the order producers write them in, in which
    msgspec finds each key at its first try."""

    schema_version: Literal[1] = 1
    event_id: _WireId
    ts: str
    team: _WireAttribution = None
    workflow: _WireAttribution = None
    task_id: _WireId | None = None
    agent: _WireName = "agent"
    parent_agent: _WireName | None = None
    step: _Count = 0
    provider: _WireName = "unknown"
    model: _WireName
    tokens: _TokensWire | msgspec.UnsetType = msgspec.UNSET
    components: _ComponentsWire | msgspec.UnsetType = msgspec.UNSET
    attempt: Annotated[int, msgspec.Meta(ge=1, le=MAX_COUNT)] = 1
    tool_calls: _Count = 0
    tool_name: _WireName | None = None
    latency_ms: _Count | None = None
    status: Literal["ok", "error", "timeout"] = "ok"
    cost_usd: None = None
    context_window: _Count | None = None
    service_tier: _WireName | None = None
    usage_missing: bool = False


class _OutcomeWire(
    msgspec.Struct,
    tag_field="kind",
    tag="outcome",
    forbid_unknown_fields=True,
    gc=False,
    kw_only=True,
):
    schema_version: Literal[1] = 1
    event_id: _WireId
    ts: str
    team: _WireAttribution = None
    workflow: _WireAttribution = None
    task_id: _WireId
    status: Literal["success", "failure", "abandoned"]
    quality: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None


_Wire = _CallWire | _OutcomeWire
for _wire, _model in ((_CallWire, CallEvent), (_OutcomeWire, Outcome)):
    # _columns unpacks a call's fields in this order
    if _wire.__struct_fields__ != tuple(_model.model_fields)[1:]:  # (``kind``: the tag)
        raise RuntimeError(f"{_wire.__name__}'s fields are not {_model.__name__}'s, in order")
_WIRE: Final = msgspec.json.Decoder(list[_Wire] | _Wire)


def _call_tuple(*args: Any) -> CallArgs:
    """A call's :data:`~tokengov.core.calls.CallArgs`, as :func:`_from_wire` makes them."""
    return args


#: An event's names as the wire has them — a call's (team, workflow, agent, model, provider),
#: an outcome's (team, workflow) — to the same as :func:`_from_wire` makes them (a blank or
#: absent team or workflow ``unattributed``), each name one object (:data:`_NAME`) in every
#: event that has it: the consumers' dicts keyed by names (the streams' tasks, windows and
#: budgets, the debt tallies) then find it by identity, its hash kept, instead of hashing and
#: comparing a new string per event. Only names all plainly printable (``str.isprintable``)
#: are kept, so that an answer holds for any message. At most :data:`_NAMES_MAX` entries
#: (then emptied: the names are the producers').
_NAMES: Final[dict[tuple[str | None, ...], tuple[Any, ...]]] = {}
_NAMES_MAX: Final = 4096
#: Each name of :data:`_NAMES`' answers, as one object (the same in every answer that has it).
_NAME: Final[dict[str, str]] = {}


def _names(key: tuple[Any, ...], plain: bool) -> tuple[Any, ...]:
    """:func:`_from_wire`'s rules for an event's names (``key``, as in :data:`_NAMES`): team and
    workflow blank or absent are ``unattributed``; the others printable (``plain``: the
    message holds neither a backslash nor DEL, so they are); else :class:`_Slow`. Keeps the
    answer in :data:`_NAMES` when every name is plainly printable."""
    team, workflow = key[0], key[1]
    printable = all(name is None or name.isprintable() for name in key)
    if not (plain or printable):
        for name in key[2:]:
            if name is not None and not name.isprintable():
                raise _Slow
    # (None, or text within MAX_NAME_CHARS: _WireAttribution)
    if not (team and (plain or team.isprintable()) and not team.isspace()):
        team = _attribution(team)
    if not (workflow and (plain or workflow.isprintable()) and not workflow.isspace()):
        workflow = _attribution(workflow)
    names = (team, workflow, *key[2:])
    if printable:
        if len(_NAMES) >= _NAMES_MAX:
            _NAMES.clear()
            _NAME.clear()
        one = _NAME.setdefault
        names = tuple(name if name is None else one(name, name) for name in names)
        _NAMES[key] = names
    return names


def _from_wire(
    w: _CallWire | _OutcomeWire,
    plain: bool,
    make: Callable[..., Any] = Call,
    stamp: datetime | None = None,
) -> Call | Done:
    # ``make``: Call, or _call_tuple for a consumer that wants the call's arguments.
    # ``stamp``: ``w.ts`` as this function reads it, read already (_utc_stamps), or None.
    # Printable text: ``plain`` (the message holds neither a backslash nor DEL) means every
    # text in it is printable as the contract means it (JSON refuses raw C0 controls); else
    # str.isprintable(), stricter than the contract (it also refuses, say, a soft hyphen): a
    # name it refuses sends the message to path 2, which decides exactly.
    if type(w) is _OutcomeWire:
        if not (plain or (w.event_id.isprintable() and w.task_id.isprintable())):
            raise _Slow
        pair: tuple[str | None, ...] = (w.team, w.workflow)
        names = _NAMES.get(pair)
        if names is None:
            names = _names(pair, plain)
        return Done(
            w.event_id,
            _ts(w.ts) if stamp is None else stamp,
            names[0],
            names[1],
            w.task_id,
            w.status,
            w.quality,
        )
    c: _CallWire = w  # type: ignore[assignment]  # an outcome has returned (no cast() call)
    # (at most three names to an assignment: CPython builds a tuple for four)
    event_id, task, tier = c.event_id, c.task_id, c.service_tier
    parent, tool = c.parent_agent, c.tool_name
    if not plain and not (
        event_id.isprintable()
        and (task is None or task.isprintable())
        and (parent is None or parent.isprintable())
        and (tool is None or tool.isprintable())
        and (tier is None or tier.isprintable())
    ):
        raise _Slow
    # the usual names, checked once and each one object (_NAMES)
    key = (c.team, c.workflow, c.agent, c.model, c.provider)
    names = _NAMES.get(key)
    if names is None:
        names = _names(key, plain)
    team, workflow, agent, model, provider = names
    t = c.tokens
    if t is _UNSET:
        t = _NO_TOKENS
    p = c.components
    components = NO_COMPONENTS if p is _UNSET else _astuple(p)  # COMPONENT_NAMES order
    inp, out, reasoning = t.input, t.output, t.reasoning
    cached, write, write_1h = t.cached_input, t.cache_write, t.cache_write_1h
    missing = c.usage_missing
    if (
        cached + write > inp
        or write_1h > write
        or reasoning > out
        or (p is not _UNSET and sum(components) > inp)
        or (missing and (inp or out))
    ):
        raise _Slow
    # a message whose times are not all UTC-shaped reads each on its own (no longer the usual
    # case, so no longer inlined)
    ts = _ts(c.ts) if stamp is None else stamp
    return make(  # type: ignore[no-any-return]  # a Call, or its arguments for _call_tuple
        event_id,
        ts,
        team,
        workflow,
        event_id if task is None else task,
        agent,
        parent,
        c.step,
        model,
        inp,
        out,
        cached,
        write,
        reasoning,
        components,
        c.attempt,
        c.tool_calls,
        tool,
        c.status,
        None,
        c.context_window,
        provider,
        c.latency_ms,
        write_1h,
        tier,
        missing,
    )


def _plain(raw: bytes) -> bool:
    """The message holds neither a backslash nor DEL: all its text is printable as the
    contract means it (JSON refuses raw C0 controls)."""
    return b"\\" not in raw and b"\x7f" not in raw


def _wire_items(raw: bytes) -> tuple[bool, list[_Wire]] | None:
    """Path 1's reading of a message: (is an envelope, its items as wire structs), or None
    when the message is too large or msgspec refuses it (a slower path decides)."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return None
    try:
        doc = _WIRE.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):  # DecodeError includes ValidationError
        return None
    return (True, doc) if type(doc) is list else (False, [cast(_Wire, doc)])


def fast_message(
    raw: bytes, make: Callable[..., Any] = Call
) -> tuple[bool, list[Call | Done]] | None:
    """Path 1: (is an envelope, every event of the message), or None when any part of the
    message needs a slower path (then nothing of it is taken from here). ``make``: how a call
    is made of its arguments (:func:`decode_call_args`)."""
    read = _wire_items(raw)
    if read is None:
        return None
    envelope, items = read
    plain = _plain(raw)
    stamps = _utc_stamps([w.ts for w in items])
    try:
        if stamps is None:  # each time read on its own, or refused
            return envelope, [_from_wire(w, plain, make) for w in items]
        return envelope, list(map(_from_wire, items, repeat(plain), repeat(make), stamps))
    except _Slow:
        return None


@dataclass(slots=True)
class Decoded:
    #: (index, event); from :func:`decode_call_args`, each call as its ``CallArgs``.
    events: list[tuple[int, Call | Done]] = field(default_factory=list)
    failures: list[tuple[DecodeFailure, Any]] = field(default_factory=list)  # (why, the item)
    envelope: bool = False
    slow: int = 0  # items the models had to decide


def decode_events(raw: bytes | None) -> Decoded:
    """Every event of one message, and every part of it that cannot be trusted with its
    reason. Never raises: the limits of the wire (:mod:`tokengov.core.message_items`) come first."""
    return _decode(raw, Call)


def decode_call_args(raw: bytes | None) -> Decoded:
    """:func:`decode_events`, each call as its :data:`~tokengov.core.calls.CallArgs` (the
    tuple ``Call(*args)`` takes) rather than a :class:`~tokengov.core.calls.Call`: the same
    rules, the same values, for a consumer that lays calls out as columns (the ClickHouse
    sink's decoders), without the cost of building each call."""
    return _decode(raw, _call_tuple)


def _decode(raw: bytes | None, make: Callable[..., Any], fast_first: bool = True) -> Decoded:
    # fast_first=False: path 1 has been tried already (decode_call_columns)
    result = Decoded()
    if raw is not None and fast_first:
        fast = fast_message(raw, make)
        if fast is not None:
            result.envelope, events = fast
            result.events = list(enumerate(events))
            return result
    loaded = load_items(raw)
    result.envelope = loaded.envelope
    result.failures = loaded.failures
    append = result.events.append
    for index, item in loaded.items:
        event = fast_event(item)
        if event is None:
            result.slow += 1
            try:
                event = from_model(parse_event(item))
            except ContractError as exc:
                event_id = item.get("event_id") if isinstance(item, dict) else None
                failure = DecodeFailure(
                    str(exc),
                    index if result.envelope else None,
                    event_id if plain_id(event_id) else None,
                )
                result.failures.append((failure, item))
                continue
        if make is not Call and type(event) is Call:
            # decode_call_args: the call's arguments in its place (see Decoded.events)
            append((index, cast(Call, call_args(event))))
        else:
            append((index, event))
    if len(result.failures) > 1:
        result.failures.sort(key=lambda f: -1 if f[0].index is None else f[0].index)
    return result


# -- path 1 for the sink: the calls as columns -------------------------------------------


class CallColumns(NamedTuple):
    """The calls of a message as columns: ``columns`` in :data:`~tokengov.core.calls.CALL_ARGS`
    order, each one value per call (``components`` a column of tuples), and ``at`` the calls'
    items (their indices in the message)."""

    at: Sequence[int]
    columns: list[Sequence[Any]]


_NO_CALLS: Final = CallColumns((), [()] * len(CALL_ARGS))
_fromisoformat: Final = datetime.fromisoformat
_SEPARATORS: Final = ((4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"))


def decode_call_columns(raw: bytes | None) -> tuple[Decoded, CallColumns]:
    """:func:`decode_call_args` with the calls laid out as columns (:class:`CallColumns`;
    ``events`` of the :class:`Decoded` holds the outcomes only): the same rules, the same
    values — ``Call(*row)`` for each ``row`` of ``zip(*columns)`` is the call
    :func:`decode_events` gives at that item. The ClickHouse sink's decoders' path: a
    message of printable text (neither a backslash nor DEL) whose times share one shape is
    checked column by column over its calls (:func:`_wire_columns`), in C where it can be;
    any other goes through :func:`decode_call_args`, its calls then transposed."""
    tried = raw is not None and _plain(raw)
    read = _wire_items(raw) if tried and raw is not None else None
    if read is not None:
        try:
            return _wire_columns(read[1], read[0])
        except _Slow:
            pass  # the models decide (path 2), as decode_call_args does
    # (a message of printable text that path 1 refused: fast_message would refuse it too)
    decoded = _decode(raw, _call_tuple, fast_first=not tried)
    events = decoded.events
    calls = [(i, e) for i, e in events if type(e) is not Done]
    if not calls:
        return decoded, _NO_CALLS
    if len(calls) < len(events):
        decoded.events = [(i, e) for i, e in events if type(e) is Done]
    else:
        decoded.events = []
    at, args = zip(*calls, strict=True)
    return decoded, CallColumns(at, list(zip(*args, strict=True)))


def _wire_columns(doc: list[_Wire], envelope: bool) -> tuple[Decoded, CallColumns]:
    """The events of a decoded message of printable text (:func:`decode_call_columns`), or
    :class:`_Slow` when the models must decide."""
    result = Decoded(envelope=envelope)
    calls: list[_CallWire] = [w for w in doc if type(w) is _CallWire]
    if len(calls) == len(doc):
        at: Sequence[int] = range(len(doc))
    else:
        at = [i for i, w in enumerate(doc) if type(w) is _CallWire]
        result.events = [
            (i, _from_wire(w, True)) for i, w in enumerate(doc) if type(w) is not _CallWire
        ]
    if not calls:
        return result, _NO_CALLS
    columns = _columns(calls)
    if columns is None:  # not the usual shape: call by call, as path 1 does
        columns = list(zip(*[_from_wire(w, True, _call_tuple) for w in calls], strict=True))
    return result, CallColumns(at, columns)


def _columns(calls: list[_CallWire]) -> list[Sequence[Any]] | None:
    """:func:`_from_wire`'s rules over the calls of a message of printable text, column by
    column (``_from_wire(w, True, _call_tuple)`` of each, transposed); None when any call is
    not of the usual shape (times of one length, all in ``Z`` or all ``+00:00``; counts within
    their totals): then call by call, where :func:`_from_wire` decides. Raises :class:`_Slow`
    where :func:`_from_wire` would."""
    (
        _version,
        event_id,
        ts,
        team,
        workflow,
        task,
        agent,
        parent,
        step,
        provider,
        model,
        tokens,
        parts,
        attempt,
        tool_calls,
        tool,
        latency,
        status,
        cost,
        context,
        tier,
        missing,
    ) = zip(*map(_astuple, calls), strict=True)
    if _UNSET in tokens:
        tokens = tuple(_NO_TOKENS if t is _UNSET else t for t in tokens)
    inp, out, cached, write, write_1h, reasoning = zip(*map(_astuple, tokens), strict=True)
    if _UNSET in parts:
        components = [NO_COMPONENTS if p is _UNSET else _astuple(p) for p in parts]
    else:
        components = list(map(_astuple, parts))  # COMPONENT_NAMES order
    if (
        any(map(gt, map(add, cached, write), inp))
        or any(map(gt, write_1h, write))
        or any(map(gt, reasoning, out))
        or any(map(gt, map(sum, components), inp))  # (no components: 0)
        or (
            True in missing
            and any(m and (i or o) for m, i, o in zip(missing, inp, out, strict=True))
        )
    ):
        return None
    stamps = _utc_stamps(ts)
    if stamps is None:
        return None
    if None in task:
        task = tuple(e if t is None else t for e, t in zip(event_id, task, strict=True))
    named = {
        "event_id": event_id,
        "ts": stamps,
        "team": _attributed(team),
        "workflow": _attributed(workflow),
        "task_id": task,
        "agent": agent,
        "parent_agent": parent,
        "step": step,
        "model": model,
        "input": inp,
        "output": out,
        "cached_input": cached,
        "cache_write": write,
        "reasoning": reasoning,
        "components": components,
        "attempt": attempt,
        "tool_calls": tool_calls,
        "tool_name": tool,
        "status": status,
        "cost_femto": cost,
        "context_window": context,
        "provider": provider,
        "latency_ms": latency,
        "cache_write_1h": write_1h,
        "service_tier": tier,
        "usage_missing": missing,
    }
    # in Call's argument order, whatever it is (a name of it missing here: KeyError, at once)
    return [named[name] for name in CALL_ARGS]


def _utc_stamps(ts: Sequence[str]) -> list[datetime] | None:
    """The times ``ts`` as :func:`_from_wire` reads them, all at once (in C where it can be),
    when every one has its shape (:func:`_shaped`: ``Z`` or ``+00:00``), reads and is in the
    contract's range; else None (then each is read, or refused, on its own)."""
    lengths = set(map(len, ts))
    if not lengths:
        return None
    if len(lengths) == 1:
        if not _shaped(ts, lengths.pop()):
            return None
    elif not all(_shaped([t for t in ts if len(t) == n], n) for n in lengths):
        return None
    try:
        stamps = list(map(_fromisoformat, ts))
    except ValueError:
        return None
    if min(stamps) < TS_MIN or max(stamps) >= TS_MAX:
        return None
    return stamps


def _shaped(ts: Sequence[str], n: int) -> bool:
    """Every time of ``ts`` (each ``n`` characters long) has :func:`_from_wire`'s shape,
    and reads as UTC as it is (``Z`` or ``+00:00``): the times laid end to end, each rule on
    a position is one slice of every n-th character."""
    k = len(ts)
    joined = "".join(ts)
    if n < 20 or not joined.isascii() or any(joined[i::n] != c * k for i, c in _SEPARATORS):
        return False
    if joined[n - 1 :: n] == "Z" * k:
        return n == 20 or (21 < n < 28 and joined[19::n] == "." * k)
    if all(joined[n - 6 + j :: n] == c * k for j, c in enumerate("+00:00")):
        return n == 25 or (26 < n < 33 and joined[19::n] == "." * k)
    return False  # other offsets: each converted to UTC, call by call


def _attributed(column: Sequence[Any]) -> Sequence[Any]:
    """A team or workflow column of printable text as :func:`_from_wire` makes it: each
    distinct value once."""
    named = {
        v: v
        if type(v) is str and 0 < len(v) <= MAX_NAME_CHARS and not v.isspace()
        else _attribution(v)
        for v in set(column)
    }
    if all(k is v for k, v in named.items()):
        return column
    return list(map(named.__getitem__, column))


# -- path 1 for a producer: the answer alone --------------------------------------------


class _CallCheck(_CallWire, kw_only=True):
    """:class:`_CallWire` with the rules msgspec can check in C on the whole message (the
    timestamp parsed by msgspec's RFC 3339 reader, which refuses everything the models
    refuse but a missing offset and the range, both :func:`_check_item`'s); the rest is
    :func:`_check_item`'s."""

    ts: datetime  # type: ignore[assignment]  # msgspec reads a field again in a subclass


class _OutcomeCheck(_OutcomeWire, kw_only=True):
    ts: datetime  # type: ignore[assignment]


_Check = _CallCheck | _OutcomeCheck
_CHECK: Final = msgspec.json.Decoder(list[_Check] | _Check)
_CHECK_ONE: Final = msgspec.json.Decoder(_Check)
_RAW_ITEMS: Final = msgspec.json.Decoder(list[msgspec.Raw])


def _printable(*texts: str | None) -> bool:
    """The contract's printable text: no C0 control character nor DEL."""
    return not any(t is not None and _CTRL.search(t) for t in texts)


def _check_item(w: Any, plain: bool) -> bool:
    """The rules of one event (a :class:`_CallCheck` or :class:`_OutcomeCheck`) that
    :data:`_CHECK` did not check. ``plain``: the message holds neither a backslash nor DEL,
    so no string in it has a control character (JSON refuses them raw) and every text is
    printable as the contract means it."""
    ts = w.ts
    if ts.tzinfo is None or not TS_MIN <= ts < TS_MAX:
        return False
    if type(w) is _OutcomeCheck:
        return plain or _printable(w.event_id, w.task_id, w.team, w.workflow)
    t = w.tokens
    if t is _UNSET:
        t = _NO_TOKENS
    inp = t.input
    if (
        t.cached_input + t.cache_write > inp
        or t.cache_write_1h > t.cache_write
        or t.reasoning > t.output
        or (w.usage_missing and (inp or t.output))
    ):
        return False
    p = w.components
    if p is not _UNSET and (
        p.system
        + p.tool_definitions
        + p.retrieved
        + p.history
        + p.tool_responses
        + p.handoff
        + p.memory
        > inp
    ):
        return False
    return plain or _printable(
        w.event_id,
        w.team,
        w.workflow,
        w.task_id,
        w.agent,
        w.parent_agent,
        w.provider,
        w.model,
        w.tool_name,
        w.service_tier,
    )


def check_message(raw: bytes) -> list[int] | None:
    """Path 1 for a producer that needs the answer only, not the events: ``[]`` when the
    models accept every event of the message as it is, else the indexes (positions in the
    envelope) of the items a slower path must decide. None: the slower paths decide the whole
    message (too large, not JSON, an empty envelope, or one event this path cannot take).
    Never answers ``[]`` for a message the models would not take whole
    (``tests/unit/streams/test_decode.py`` checks it with hypothesis)."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return None
    plain = _plain(raw)
    try:
        doc = _CHECK.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):  # DecodeError includes ValidationError
        doc = None
    if type(doc) is list:
        return [i for i, w in enumerate(doc) if not _check_item(w, plain)] if doc else None
    if doc is not None:
        return [] if _check_item(doc, plain) else None
    # an item or more is not for this path: which ones
    try:
        items = _RAW_ITEMS.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    slow = []
    for i, item in enumerate(items):
        try:
            ok = _check_item(_CHECK_ONE.decode(item), plain)
        except (msgspec.DecodeError, UnicodeDecodeError):
            ok = False
        if not ok:
            slow.append(i)
    return slow or None


#: A call's values in the models' field order (``kind`` left out), with the types
#: :class:`_CallCheck` gives them: msgspec checks a sender's values in C (``msgspec.convert``
#: of a tuple), with no JSON read back.
_CallValues: Final = msgspec.defstruct(
    "_CallValues",
    [
        (name, get_type_hints(_CallCheck, include_extras=True)[name])
        for name in CallEvent.model_fields
        if name != "kind"
    ],
    array_like=True,
    gc=False,
)
_CALL_VALUES: Final = list[_CallValues]  # type: ignore[valid-type]


def check_calls(calls: list[tuple[Any, ...]], raw: bytes) -> list[int] | None:
    """:func:`check_message` for a sender that holds the values it wrote: ``calls``, each a
    call's values in the models' field order (``kind`` left out; tokens and components as
    dicts), and ``raw``, the message msgspec's encoder wrote of them, in that
    order (one call: not in a list). The values' types and rules are checked as they are,
    in C: a value is taken only where its JSON is what :func:`check_message` takes (no float
    for an integer, no bool for a number, text as text); ``tests/unit/streams/test_decode.py``
    checks that the models take what this takes, as :func:`check_message` does."""
    if len(raw) > MAX_MESSAGE_BYTES or not calls:
        return None
    plain = _plain(raw)
    try:
        checked = msgspec.convert(calls, _CALL_VALUES)
    except msgspec.ValidationError:
        checked = None
    if checked is not None:
        return [i for i, w in enumerate(checked) if not _check_item(w, plain)]
    slow = []
    for i, values in enumerate(calls):
        try:
            ok = _check_item(msgspec.convert(values, _CallValues), plain)
        except msgspec.ValidationError:
            ok = False
        if not ok:
            slow.append(i)
    return slow
