"""Kafka messages → ClickHouse Native blocks, in a pool of decoder processes (or inline).

Decoding a call (parse, the contract's checks, pricing) and serializing it for
ClickHouse cost ~6 µs of Python per row; the insert itself ~1.5 µs of engine time.
The writer therefore hands runs of consecutive messages of one partition to a
:class:`DecodePool`: each run comes back as an :class:`Encoded` — per table, the
rows already serialized in ClickHouse's Native format by clickhouse-connect's own
column serializers, plus what the writer needs without the rows themselves (event
ids and millisecond timestamps for its duplicate lookup, row counts, rejects). The
decoders build no row per call, nor a :class:`~tokengov.core.calls.Call`: the calls
are decoded as columns of their constructor's arguments, with their costs
(``MessageDecoder.decode(..., columns=True)``, through
:func:`~tokengov.core.decoding.decode_call_columns`), laid out as the table's columns by
:func:`~tokengov.sinks.clickhouse.rows.call_columns`, the cost column from integer
femto-USD (:class:`ScaledDecimal`: the bytes clickhouse-connect writes for the
Decimals, without a Decimal per row), the ``LowCardinality`` strings from each distinct
value's bytes (:class:`RepeatedString`), a ``Nullable`` integer column's null map in C
(:class:`_NullableInts`). The writer concatenates the blocks of a flush and inserts them in one statement.

Anything unusual — rows to leave out because they are already stored, a block
ClickHouse refuses, rollups to reconcile — takes the row path: the writer decodes
the run's messages again in its own thread (:class:`MessageDecoder` is
deterministic) and works on rows, as it always did.

``processes=0`` encodes in the caller's thread (the same artifacts, no pool).
Pool workers are spawned (never forked from a process running librdkafka and
chdb threads), ignore SIGINT (the worker stops them), and exit on their own when
the process that started them dies (a SIGKILL leaves nothing behind).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import types
from array import array
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from operator import itemgetter
from typing import Any, Final

from clickhouse_connect.datatypes.base import ClickHouseType
from clickhouse_connect.datatypes.numeric import Decimal as ChDecimal
from clickhouse_connect.datatypes.numeric import IntBase
from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.datatypes.string import String
from clickhouse_connect.driver.ctypes import data_conv
from clickhouse_connect.driver.insert import InsertContext
from clickhouse_connect.driver.transform import NativeTransform

from tokengov.core.calls import check_call_arg_positions, epoch_ms
from tokengov.core.policy import PriceCatalog
from tokengov.core.pricing import EXACT_FEMTO, CostSource, cost_decimal, load_catalog_data
from tokengov.sinks.clickhouse.decode import (
    TOKEN_EVENTS,
    Decoded,
    MessageDecoder,
    Reject,
    TopicKind,
)
from tokengov.sinks.clickhouse.rows import TABLE_COLUMNS, TOKEN_EVENT_COLUMNS, call_columns

__all__ = [
    "DEDUP_TABLES",
    "DecodePool",
    "Encoded",
    "Encoder",
    "ScaledDecimal",
    "default_decoders",
    "epoch_ms",
    "merge",
    "native_block",
    "rejected",
    "scaled_costs",
    "summarize",
    "wire_type",
]

log = logging.getLogger(__name__)

#: Tables whose rows are deduplicated by event id before inserting.
DEDUP_TABLES: Final = ("token_events", "task_outcomes")


def default_decoders() -> int:
    """Decoder processes for a worker: one per CPU this process may use, at most four."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def native_block(
    table: str,
    columns: Sequence[str],
    types: Sequence[ClickHouseType],
    data: Sequence[Sequence[Any]],
) -> bytes | None:
    """Columns ``data`` (in ``columns`` order) in ClickHouse's Native format, serialized by
    clickhouse-connect exactly as its ``insert`` would; None when a value cannot be
    serialized for its column (the row path then finds which row, and why)."""
    context = InsertContext(table, list(columns), list(types), data=data, column_oriented=True)
    chunks = list(NativeTransform.build_insert(context))
    if context.insert_exception is not None:
        return None
    # The first chunk starts with the statement clickhouse-connect sends over HTTP; the data
    # for `INSERT … FORMAT Native` (HTTP body or chdb's INFILE) starts after its newline.
    head = chunks[0]
    if not head.startswith(b"INSERT INTO "):
        raise RuntimeError("clickhouse-connect's Native insert no longer starts with INSERT")
    chunks[0] = head[head.index(b"\n") + 1 :]
    return b"".join(chunks)


@dataclass(slots=True)
class Encoded:
    """A run of messages, ready to insert. ``blocks`` lacks a table whose rows could not be
    serialized (the writer takes the row path for it)."""

    rows: dict[str, int] = field(default_factory=dict)
    blocks: dict[str, bytes] = field(default_factory=dict)
    ids: dict[str, list[str]] = field(default_factory=dict)  # DEDUP_TABLES, in row order
    ts_ms: dict[str, list[int]] = field(default_factory=dict)  # aligned with ids
    rejects: list[tuple[int, Reject]] = field(default_factory=list)  # (message index, why)
    invalid_events: int = 0
    tombstones: int = 0
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (message index, why)
    messages: int = 0

    @property
    def row_count(self) -> int:
        return sum(self.rows.values())


def wire_type(name: str) -> str:
    """The type a column is serialized as in the decoders' blocks: its own, but a
    ``LowCardinality(T)`` column as ``T`` — ClickHouse builds the dictionary itself when it
    reads the block (``input_format_native_allow_types_conversion``, on by default), in
    C++, where clickhouse-connect would build it in Python (measured: ~10 % of a decoder's
    time). The values stored are the same (tests/integration/clickhouse/test_native.py)."""
    if name.startswith("LowCardinality(") and name.endswith(")"):
        return name[len("LowCardinality(") : -1]
    return name


def _wire(name: str) -> ClickHouseType:
    """The serializer of a column of type ``name`` (:func:`wire_type`); a
    ``LowCardinality(String)`` column's values repeat: :class:`RepeatedString`."""
    kind = get_from_name(wire_type(name))
    if type(kind) is String and name.startswith("LowCardinality("):
        return RepeatedString(kind.type_def)
    if isinstance(kind, IntBase) and kind.nullable and not kind.low_card:
        return _nullable_ints(kind)
    return kind


class RepeatedString(String, registered=False):
    """A ``String`` column whose values repeat (a ``LowCardinality`` column's): each distinct
    value encoded once, the column joined from them in C — the bytes clickhouse-connect's
    String serializer writes (a LEB128 length, the UTF-8 bytes; ``NULL`` as an empty string
    after the null map), at half its cost. Any other value (not text, or text UTF-8 cannot
    encode) leaves the column to that serializer."""

    def _write_column_binary(self, column: Sequence[Any], dest: bytearray, ctx: Any) -> None:
        if (ctx.encoding or self.encoding).replace("-", "").lower() != "utf8":
            super()._write_column_binary(column, dest, ctx)  # (never, from the Encoder)
            return
        if not column:
            return
        try:
            if (  # one value (often): the first is the last, and every one
                column and column[0] == column[-1] and column.count(column[0]) == len(column)
            ):
                dest += _string_bytes(column[0], self.nullable) * len(column)
                return
            encoded = {value: _string_bytes(value, self.nullable) for value in set(column)}
        except (TypeError, UnicodeEncodeError):
            super()._write_column_binary(column, dest, ctx)
            return
        dest += b"".join(itemgetter(*column)(encoded))  # (two values or more: a tuple)

    def write_column_data(self, column: Sequence[Any], dest: bytearray, ctx: Any) -> None:
        if self.nullable and not self.low_card:
            dest += _null_map(column)
            self._write_column_binary(column, dest, ctx)
        else:
            super().write_column_data(column, dest, ctx)


class _NullableInts(IntBase, registered=False):
    """A ``Nullable`` integer column: the bytes clickhouse-connect writes (the null map, then
    each value, 0 for NULL), the usual columns — no NULL, or nothing but NULL — without a
    Python pass over the values. Made for each integer type by :func:`_wire`."""

    def write_column_data(self, column: Sequence[Any], dest: bytearray, ctx: Any) -> None:
        nulls = column.count(None)
        if column and (nulls == len(column) or (nulls == 0 and type(column[0]) is int)):
            dest += _null_map(column, nulls)
            if nulls:  # every one: 0 each
                dest += bytes(len(column) * array(self._array_type).itemsize)
            else:
                data_conv.write_native_col(self._array_type, column, dest, ctx.column_name)
            return
        super().write_column_data(column, dest, ctx)


def _null_map(column: Sequence[Any], nulls: int | None = None) -> bytes:
    """``bytes([1 if x is None else 0 for x in column])`` (clickhouse-connect's null map), in
    C for a column without NULL or of NULLs only."""
    if nulls is None:
        nulls = column.count(None)
    if nulls == 0:
        return bytes(len(column))
    if nulls == len(column):
        return b"\x01" * nulls
    return bytes([1 if x is None else 0 for x in column])


def _nullable_ints(kind: IntBase) -> IntBase:
    """``kind`` (a ``Nullable`` integer type) as a :class:`_NullableInts`."""
    made = _NULLABLE_INTS.get(type(kind))
    if made is None:
        made = _NULLABLE_INTS[type(kind)] = types.new_class(
            f"Nullable{type(kind).__name__}", (_NullableInts, type(kind)), {"registered": False}
        )
    return made(kind.type_def)


_NULLABLE_INTS: dict[type[IntBase], type[IntBase]] = {}


def _string_bytes(value: str | None, nullable: bool) -> bytes:
    if type(value) is not str:
        if value is None and nullable:
            return b"\x00"
        raise TypeError("not text")
    data = value.encode()
    size = len(data)
    prefix = bytearray()
    while size > 0x7F:
        prefix.append(0x80 | (size & 0x7F))
        size >>= 7
    prefix.append(size)
    return bytes(prefix) + data


class Encoder:
    """Serializes decoded messages for the tables' actual column types (``types``: table →
    ClickHouse type names in :data:`TABLE_COLUMNS` order, read from the store; see
    :func:`wire_type`)."""

    def __init__(self, types: Mapping[str, Sequence[str]]) -> None:
        self.type_names = {table: list(names) for table, names in types.items()}
        self.types = {t: [_wire(n) for n in names] for t, names in types.items()}
        # The calls' (decoded with columns=True) costs are written from scaled integers.
        self._call_types = list(self.types.get(TOKEN_EVENTS, ()))
        if self._call_types:
            cost = self._call_types[_COST_AT]
            if isinstance(cost, ChDecimal) and not cost.nullable and 0 <= cost.scale <= 15:
                self._call_types[_COST_AT] = ScaledDecimal.of(cost)

    def encode(self, decoded: Sequence[Decoded]) -> Encoded:
        out, rows = summarize(decoded)
        for table, table_rows in rows.items():
            data: list[Sequence[Any]] = list(zip(*table_rows, strict=True))
            stamps = out.ts_ms.get(table)
            if stamps is not None:
                # The milliseconds already worked out for the id lookup are exactly what the
                # DateTime64(3) column keeps; clickhouse-connect writes integers as they are.
                data[TABLE_COLUMNS[table].index("ts")] = stamps
            block = native_block(table, TABLE_COLUMNS[table], self.types[table], data)
            if block is not None:
                out.blocks[table] = block
        if out.rows.get(TOKEN_EVENTS) and not rows.get(TOKEN_EVENTS):
            block = self._calls(decoded, out.ts_ms[TOKEN_EVENTS])
            if block is not None:
                out.blocks[TOKEN_EVENTS] = block
        return out

    def warm(self) -> None:
        """Do now what the first run would do once (~0.2 s of CPU each): load the price
        catalog's data and clickhouse-connect's lazy imports (pandas and NumPy, on its first
        insert context) — a decoder process does it when it starts, not on the first
        messages it is handed."""
        load_catalog_data()
        InsertContext(TOKEN_EVENTS, ["event_id"], [get_from_name("String")], data=[[]])

    def _calls(self, decoded: Sequence[Decoded], stamps: list[int]) -> bytes | None:
        """The token_events block of the messages' calls (decoded with ``columns=True``)."""
        calls = _call_columns(decoded)
        amounts: list[int | Decimal] = []
        sources: list[CostSource] = []
        versions: list[str] = []
        for message in decoded:
            amounts += message.amounts
            sources += message.sources
            versions += message.versions
        types = self._call_types
        cost_type = types[_COST_AT]
        cost: list[Any]
        if isinstance(cost_type, ScaledDecimal):
            cost = scaled_costs(cost_type, amounts, sources)
        else:
            cost = [cost_decimal(a, s) for a, s in zip(amounts, sources, strict=True)]
        data = call_columns(calls, stamps, cost, sources, versions)
        return native_block(TOKEN_EVENTS, TOKEN_EVENT_COLUMNS, types, data)


def _call_columns(decoded: Sequence[Decoded]) -> list[Sequence[Any]]:
    """The calls' columns of messages decoded with ``columns=True``, one after the other."""
    parts = [message.calls for message in decoded if message.calls]
    if len(parts) == 1:
        return parts[0]
    columns: list[Sequence[Any]] = []
    for pieces in zip(*parts, strict=True):
        column: list[Any] = []
        for piece in pieces:
            column += piece
        columns.append(column)
    return columns


_COST_AT: Final = TOKEN_EVENT_COLUMNS.index("cost_usd")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
check_call_arg_positions("the encoder's ids and ts_ms of calls", {0: "event_id", 1: "ts"})
_LITTLE: Final = sys.byteorder == "little" and array("q").itemsize == 8


class ScaledDecimal(ChDecimal, registered=False):
    """A ``Decimal(P, S)`` column written from integers already scaled (value × 10**S): the
    same type in the block, the same bytes as clickhouse-connect's Decimal serializer writes
    for the Decimal values, without a Decimal per row (:func:`scaled_costs`)."""

    @classmethod
    def of(cls, kind: ChDecimal) -> ScaledDecimal:
        return cls(kind.type_def, kind.prec, kind.byte_size * 8, kind.scale)

    def _write_column_binary(self, column: Sequence[Any], dest: bytearray, _ctx: Any) -> None:
        size = self.byte_size
        if _LITTLE and size in (8, 16):
            # The usual costs (≥ 0 and < 2**63) as machine integers in C; an array refuses
            # (OverflowError) any other, and the column is then written value by value.
            try:
                words = array("q", column)
            except OverflowError:
                pass
            else:
                if min(words, default=0) >= 0:
                    if size == 16:  # low word, then a high word of 0
                        wide = array("q", bytes(16 * len(words)))
                        wide[::2] = words
                        words = wide
                    dest += words
                    return
        dest += b"".join([v.to_bytes(size, "little", signed=True) for v in column])


def scaled_costs(
    kind: ChDecimal, amounts: Sequence[int | Decimal], sources: Sequence[CostSource]
) -> list[int]:
    """The costs (:data:`~tokengov.core.pricing.Cost` amounts) of a ``Decimal(P, S)`` column
    (S ≤ 15) as the integers its Native form holds: exactly clickhouse-connect's
    ``int(value × 10**S)`` at precision P of each cost's Decimal
    (:func:`~tokengov.core.pricing.cost_decimal`) — for a femto-USD amount in
    [0, EXACT_FEMTO) that Decimal is exact, and if the amount has at most P digits the
    product is exact at precision P too (it has the amount's digits): the integer is then the
    amount ÷ 10**(15 − S). Beyond P digits (a narrow column: ``Decimal(18, 6)``) the product
    is rounded at precision P, as clickhouse-connect rounds it."""
    divisor = 10 ** (15 - kind.scale)
    exact_below = min(EXACT_FEMTO, 10**kind.prec)  # Decimal(38, 12): EXACT_FEMTO
    if (
        amounts
        and set(map(type, amounts)) == {int}
        and min(amounts) >= 0
        and max(amounts) < exact_below
    ):
        return [a // divisor for a in amounts]  # the usual run: every cost in femto-USD
    # The few amounts that need their Decimal: made as the pricer makes them (its context).
    slow = {
        i: cost_decimal(a, sources[i])
        for i, a in enumerate(amounts)
        if type(a) is not int or not 0 <= a < exact_below
    }
    values = [a // divisor if type(a) is int else 0 for a in amounts]
    if slow:
        mult = 10**kind.scale
        with localcontext() as context:
            context.prec = kind.prec  # as clickhouse-connect does
            for i, value in slow.items():
                values[i] = int(value * mult)
    return values


def summarize(decoded: Sequence[Decoded]) -> tuple[Encoded, dict[str, list[tuple[Any, ...]]]]:
    """What the writer needs to know of decoded messages (no blocks), and their rows (the
    calls of messages decoded with ``columns=True`` are counted, not made rows)."""
    out = Encoded(messages=len(decoded))
    rows: dict[str, list[tuple[Any, ...]]] = {}
    calls = False
    for index, message in enumerate(decoded):
        out.invalid_events += message.invalid_events
        out.tombstones += message.tombstones
        out.rejects.extend((index, r) for r in message.rejects)
        out.invalid.extend((index, r) for r in message.invalid_reasons)
        for item in message.items:
            table_rows = rows.get(item.table)
            if table_rows is None:
                table_rows = rows[item.table] = []
                if item.table in DEDUP_TABLES:
                    out.ids[item.table] = []
                    out.ts_ms[item.table] = []
            table_rows.append(item.row)
            if item.event_id is not None and item.ts is not None:
                out.ids[item.table].append(item.event_id)
                out.ts_ms[item.table].append(epoch_ms(item.ts))
        calls = calls or bool(message.calls and message.calls[0])
    out.rows = {table: len(table_rows) for table, table_rows in rows.items()}
    if calls:
        if TOKEN_EVENTS in rows:
            raise ValueError("a run mixes calls and token_events rows")
        ids: list[str] = []
        stamps: list[datetime] = []
        for message in decoded:
            if message.calls:
                ids += message.calls[0]
                stamps += message.calls[1]
        out.rows[TOKEN_EVENTS] = len(ids)
        out.ids[TOKEN_EVENTS] = ids
        # epoch_ms of each call's ts (CallArgs position 1), inlined
        out.ts_ms[TOKEN_EVENTS] = [
            (d := ts - _EPOCH).days * 86_400_000 + d.seconds * 1000 + d.microseconds // 1000
            for ts in stamps
        ]
    return out, rows


def merge(parts: Sequence[Encoded]) -> Encoded:
    """Encoded runs of consecutive messages as one run (each part one or more messages, in
    order). A table keeps a block only when every part that has rows for it has one."""
    out = Encoded()
    base = 0
    for part in parts:
        out.invalid_events += part.invalid_events
        out.tombstones += part.tombstones
        out.rejects.extend((base + i, r) for i, r in part.rejects)
        out.invalid.extend((base + i, r) for i, r in part.invalid)
        for table, count in part.rows.items():
            out.rows[table] = out.rows.get(table, 0) + count
        for table, ids in part.ids.items():
            out.ids.setdefault(table, []).extend(ids)
            out.ts_ms.setdefault(table, []).extend(part.ts_ms[table])
        base += part.messages
    out.messages = base
    for table in out.rows:
        blocks = [p.blocks.get(table) for p in parts if p.rows.get(table)]
        if all(b is not None for b in blocks):
            out.blocks[table] = b"".join(b for b in blocks if b is not None)
    return out


def rejected(value: bytes | None, reason: str) -> Encoded:
    """One message that cannot be decoded at all, as a run of one: a reject with why."""
    return Encoded(rejects=[(0, Reject(reason, value or b"", whole=True))], messages=1)


# -- the pool -----------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _watch_parent(parent: int) -> None:
    """Exit when the process that started this worker is gone (killed, crashed)."""
    while True:
        threading.Event().wait(1.0)
        if os.getppid() != parent:
            os._exit(0)


_NICE: Final = 5
_START_TIMEOUT_S: Final = 120.0

#: A decoder process collects cycles itself, every this many runs (see _init_worker).
_COLLECT_EVERY: Final = 200


def _init_worker(types: Mapping[str, Sequence[str]], parent: int, started: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker["started"] = started
    # Decoders run flat out while the writer catches up with a backlog; a lower priority keeps
    # the worker's other roles (streams, router) responsive meanwhile.
    os.nice(_NICE)
    _worker["encoder"] = encoder = Encoder(types)
    encoder.warm()
    _worker["runs"] = 0
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    # Decoding makes many short-lived containers and keeps nothing: the automatic collector
    # would rescan each run's live objects again and again (measured: ~15 % of a decoder's
    # time). Reference counting frees them; cycles are collected every _COLLECT_EVERY runs,
    # over what survives only (the imports are frozen out of every collection).
    gc.freeze()
    gc.disable()


def _encode_in_worker(catalog_blob: bytes, kind: TopicKind, values: list[bytes | None]) -> Encoded:
    _worker["runs"] += 1
    if _worker["runs"] % _COLLECT_EVERY == 0:
        gc.collect()
    if _worker.get("catalog_blob") != catalog_blob:
        catalog: PriceCatalog = pickle.loads(catalog_blob)  # noqa: S301 - from our own process
        _worker["decoder"] = MessageDecoder(lambda: catalog)
        _worker["catalog_blob"] = catalog_blob
    decoder: MessageDecoder = _worker["decoder"]
    encoder: Encoder = _worker["encoder"]
    return encoder.encode([decoder.decode(kind, v, columns=True) for v in values])


def _ready() -> int:
    """Wait until every worker runs one of these (so that the pool starts them all)."""
    _worker["started"].wait(_START_TIMEOUT_S)
    return os.getpid()


class DecodePool:
    """Encodes runs of messages in ``processes`` worker processes (0: in the caller's
    thread). ``catalog`` gives the price catalog in force; a new one reaches the workers
    with the next run."""

    def __init__(
        self,
        processes: int,
        types: Mapping[str, Sequence[str]],
        decoder: MessageDecoder,
        catalog: Callable[[], PriceCatalog],
    ) -> None:
        if processes < 0:
            raise ValueError("processes must be ≥ 0")
        self.processes = processes
        self.encoder = Encoder(types)
        self._decoder = decoder
        self._catalog = catalog
        self._catalog_seen: PriceCatalog | None = None
        self._catalog_blob = b""
        self._executor: ProcessPoolExecutor | None = None
        self.pids: list[int] = []
        self.restarts = 0
        if processes:
            self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        executor = ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self.encoder.type_names, os.getpid(), context.Barrier(self.processes)),
        )
        # Start every worker now (imports take a moment) rather than at the first batch:
        # each start-up task holds its worker until all of them run one.
        started = [executor.submit(_ready) for _ in range(self.processes)]
        self.pids = sorted(f.result(timeout=_START_TIMEOUT_S) for f in started)
        self._executor = executor
        log.info("ClickHouse writer: %d decoder process(es) %s", self.processes, self.pids)

    @property
    def broken(self) -> bool:
        """A decoder process died: every run in flight failed, none is accepted."""
        return bool(self._executor is not None and getattr(self._executor, "_broken", False))

    def restart(self) -> None:
        """Replace the decoder processes (after one of them died)."""
        if self._executor is None:
            return
        old, self._executor = self._executor, None
        old.shutdown(wait=False, cancel_futures=True)
        self.restarts += 1
        log.error("a decoder process died; starting %d new one(s)", self.processes)
        self._start()

    def submit(self, kind: TopicKind, values: list[bytes | None]) -> Future[Encoded]:
        if self._executor is None:
            future: Future[Encoded] = Future()
            try:
                future.set_result(self.encode_here(kind, values))
            except Exception as exc:
                future.set_exception(exc)
            return future
        catalog = self._catalog()
        if catalog is not self._catalog_seen:
            self._catalog_blob = pickle.dumps(catalog)
            self._catalog_seen = catalog
        try:
            return self._executor.submit(_encode_in_worker, self._catalog_blob, kind, values)
        except BrokenProcessPool:
            self.restart()
            assert self._executor is not None
            return self._executor.submit(_encode_in_worker, self._catalog_blob, kind, values)

    def encode_here(self, kind: TopicKind, values: Sequence[bytes | None]) -> Encoded:
        return self.encoder.encode([self._decoder.decode(kind, v, columns=True) for v in values])

    def decode_here(self, kind: TopicKind, values: Sequence[bytes | None]) -> list[Decoded]:
        """The messages decoded in this thread (the row path)."""
        return [self._decoder.decode(kind, v) for v in values]

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
