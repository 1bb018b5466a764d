"""Which history the CLI's readers read, and what they say when there is none.

The rule (README, "Where the history is"), for ``report``, ``query``, ``alerts list|show``,
``debt report``, ``export``, ``prices`` and ``grafana sync``:

1. A ClickHouse DSN given (``TOKENGOV_CLICKHOUSE_URL`` or the command's flag): that store.
2. Else the embedded store of the data directory, ``<data dir>/clickhouse`` — the one
   ``tokengov up`` writes — when it exists.
3. Else the demo's, ``<data dir>/demo/clickhouse``, when ``tokengov demo`` left one; the
   reader says on stderr that it reads the demo's history.
4. Else there is no history: one line saying where it looked and what to run, exit code
   :data:`EXIT_NO_HISTORY`. Nothing is created: a reader never opens a store directory that
   does not exist (chdb would make it).

The demo never writes into the data directory's own store: it keeps a store of its own at
``<data dir>/demo`` and clears only that one when it starts again, so the history of
``tokengov up`` never mixes with synthetic spend (budgets are rebuilt from it) and a second
demo never erases it. A store that exists but holds none of tokengov's tables (a ClickHouse
server before ``tokengov db migrate``), or no event yet, is "no history" too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from tokengov.core.errors import QueryError, TokenGovError
from tokengov.core.settings import Settings

if TYPE_CHECKING:
    from tokengov.sinks.clickhouse.reader import Reader

__all__ = [
    "DEMO_DIR_NAME",
    "EXIT_NO_HISTORY",
    "HistorySource",
    "NoHistory",
    "demo_data_dir",
    "locate_history",
    "open_located",
    "shown",
]

#: Exit code of a reader that finds no history: sysexits.h's EX_NOINPUT ("an input file did
#: not exist or was not readable"), so scripts can tell "nothing yet" (66) from a failure (1).
EXIT_NO_HISTORY: Final = os.EX_NOINPUT
DEMO_DIR_NAME: Final = "demo"
#: The tables whose presence makes a store tokengov's, and whose rows make it a history.
_HISTORY_TABLES: Final = ("token_events", "task_outcomes", "alerts")
_START = "start `tokengov up` or run `tokengov demo`"


class NoHistory(TokenGovError):
    """No history to read where the readers look; the message says where and what to do."""


def demo_data_dir(data_dir: Path) -> Path:
    """Where ``tokengov demo`` keeps its own stack and store: ``<data dir>/demo``."""
    return data_dir / DEMO_DIR_NAME


def shown(path: Path) -> str:
    """A path as a user typed it: relative ones with ``./`` (``./.tokengov``)."""
    return str(path) if path.is_absolute() else f"./{path}"


def _store_dir(data_dir: Path) -> Path:
    return data_dir / "clickhouse"


def _chdb_path(dsn: str) -> Path:
    return Path(dsn.removeprefix("chdb:").removeprefix("//")).expanduser()


@dataclass(frozen=True)
class HistorySource:
    """The store a reader reads: the settings that name it (its DSN, and the data directory
    where a running worker records its query endpoint), how to name it to a user, and
    whether it is the demo's."""

    settings: Settings
    where: str
    demo: bool = False

    @property
    def embedded(self) -> bool:
        return self.settings.embedded_clickhouse


def locate_history(settings: Settings, dsn: str | None = None) -> HistorySource:
    """The store to read per the rule above, or :class:`NoHistory`. Touches no file."""
    explicit = dsn or settings.clickhouse_url
    if explicit:
        chosen = settings.model_copy(update={"clickhouse_url": explicit})
        if not explicit.startswith("chdb:"):
            return HistorySource(chosen, f"ClickHouse at {_redacted(explicit)}")
        path = _chdb_path(explicit)
        if not path.is_dir():
            raise NoHistory(f"no history at {shown(path)} yet — {_START}")
        return HistorySource(chosen, shown(path))
    data_dir = Path(settings.data_dir)
    if _store_dir(data_dir).is_dir():
        return HistorySource(settings, shown(data_dir))
    demo = demo_data_dir(data_dir)
    if _store_dir(demo).is_dir():
        return HistorySource(settings.model_copy(update={"data_dir": demo}), shown(demo), demo=True)
    raise NoHistory(f"no history at {shown(data_dir)} yet — {_START}")


def _redacted(dsn: str) -> str:
    from tokengov.sinks.clickhouse.store import ClickHouseStore

    return ClickHouseStore(dsn).redacted_dsn  # connects lazily: nothing is opened here


def _check(reader: Reader, source: HistorySource, *, events_required: bool) -> None:
    """:class:`NoHistory` when the store has none of tokengov's history tables (events,
    outcomes, alerts), or (with ``events_required``) when none of them holds a row yet."""
    result = reader.query(
        "SELECT name, total_rows FROM system.tables "
        "WHERE database = currentDatabase() AND has({names:Array(String)}, name)",
        {"names": list(_HISTORY_TABLES)},
    )
    rows = {str(name): int(total or 0) for name, total in result.rows}
    if not rows:
        what = (
            _START
            if source.embedded
            else "run `tokengov db migrate`, then start the sink (`tokengov worker --role sink`)"
        )
        raise NoHistory(f"no history at {source.where} yet (no tokengov tables there) — {what}")
    if events_required and not any(rows.values()):
        demo = demo_data_dir(Path(source.settings.data_dir))
        seen = (
            f" (the demo's history: --data-dir {shown(demo)})"
            if source.embedded and not source.demo and _store_dir(demo).is_dir()
            else ""
        )
        raise NoHistory(
            f"no history at {source.where} yet: nothing stored so far — send events (the SDK, "
            f"`tokengov emit`) to a running `tokengov up`, or run `tokengov demo`{seen}"
        )


def open_located(
    settings: Settings,
    dsn: str | None = None,
    *,
    events_required: bool = True,
    note: Callable[[str], None] = lambda line: None,
) -> Reader:
    """The reader of the history :func:`locate_history` finds: the running worker's query
    endpoint (with its token) or the store itself, read-only with the settings' query limits.
    :class:`NoHistory` when there is none; ``note`` hears which store is read when it is the
    demo's. A refusal (a missing or unreadable token, the engine's error) is a
    :class:`~tokengov.core.errors.QueryError`."""
    from tokengov.sinks.clickhouse.limits import QueryLimits
    from tokengov.sinks.clickhouse.reader import open_reader

    source = locate_history(settings, dsn)
    chosen = source.settings
    reader = open_reader(chosen.clickhouse_dsn, chosen.data_dir, QueryLimits.from_settings(chosen))
    try:
        _check(reader, source, events_required=events_required)
    except QueryError as exc:
        reader.close()
        message = str(exc)  # naming the store once
        if reader.description not in message:
            message = f"{reader.description}: {message}"
        raise QueryError(message) from exc
    except BaseException:
        reader.close()
        raise
    if source.demo:
        note(
            f"reading the demo's history at {source.where} (no `tokengov up` store at "
            f"{shown(Path(settings.data_dir))})"
        )
    return reader
