"""``tokengov export focus``: events stored in a real chdb store by the writer's own path,
exported to CSV and Parquet by the CLI, checked by the FOCUS project's validator
(``focus-validator`` 1.0.0, FOCUS 1.0) and against totals computed by hand.

focus-validator pins numpy < 2 and pandas < 3 (the project runs numpy 2 / pandas 3), so it
runs in its own virtualenv, created once per session (or the one ``TOKENGOV_FOCUS_VALIDATOR``
names: its ``python``). Its 1.0 rule set names four columns by their 1.0-preview ids
(``Provider``, ``Publisher``, ``InvoiceIssuer``, ``ResourceID``; FOCUS 1.0 renamed them
``ProviderName``, ``PublisherName``, ``InvoiceIssuerName``, ``ResourceId``) and one query
by the old ``ChargeType`` (now ``ChargeCategory``): the test runs it on a copy of its rules
with those names corrected, every check otherwise unchanged.
"""

from __future__ import annotations

import csv
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tokengov.app.cli.main import app
from tokengov.app.local.broker import free_port
from tokengov.core.policy import Policy
from tokengov.sinks.clickhouse.batch import Consumed, Flush, PartitionSlice
from tokengov.sinks.clickhouse.decode import MessageDecoder
from tokengov.sinks.clickhouse.endpoint import QueryEndpoint
from tokengov.sinks.clickhouse.migrate import migrate
from tokengov.sinks.clickhouse.reader import endpoint_address
from tokengov.sinks.clickhouse.store import ClickHouseStore
from tokengov.sinks.clickhouse.writer import COLUMNS

from .conftest import expected_rollup, make_events

pytestmark = pytest.mark.integration

# pandera 0.17 needs multimethod 1; pyarrow ≥ 21 needs numpy 2, the validator pins numpy < 2.
VALIDATOR = ("focus-validator==1.0.0", "multimethod<2", "pyarrow<21")
#: FOCUS 1.0 renamed these columns; focus-validator 1.0.0's 1.0 rules still use the old ids.
RENAMED = {
    "Provider": "ProviderName",
    "Publisher": "PublisherName",
    "InvoiceIssuer": "InvoiceIssuerName",
    "ResourceID": "ResourceId",
}


def call(
    event_id: str,
    ts: str,
    *,
    team: str,
    workflow: str,
    agent: str,
    provider: str,
    model: str,
    tokens: dict[str, int],
    cost_usd: str | None,
) -> dict[str, Any]:
    return {
        "kind": "call",
        "schema_version": 1,
        "event_id": event_id,
        "ts": ts,
        "team": team,
        "workflow": workflow,
        "agent": agent,
        "provider": provider,
        "model": model,
        "tokens": tokens,
        "cost_usd": cost_usd,
    }


SEARCH = {"team": "search", "workflow": "triage", "agent": "planner"}
SUPPORT = {"team": "support", "workflow": "summary", "agent": "writer"}
# Reported costs (the provider's bill), so the stored cost does not depend on a price list.
EVENTS = [
    # Before the window: not exported.
    call("e0", "2026-10-29T23:59:59.999Z", **SEARCH, provider="openai", model="gpt-4.1-mini",
         tokens={"input": 5000, "output": 5000}, cost_usd="0.5"),
    # 10:00 hour: one row of two calls.
    call("e1", "2026-10-30T10:05:00Z", **SEARCH, provider="openai", model="gpt-4.1-mini",
         tokens={"input": 1000, "output": 500}, cost_usd="0.001234567891"),
    call("e2", "2026-10-30T10:59:59.999Z", **SEARCH, provider="openai", model="gpt-4.1-mini",
         tokens={"input": 2000, "cached_input": 1000, "output": 250}, cost_usd="0.000987654321"),
    # 11:00 hour: two rows.
    call("e3", "2026-10-30T11:15:00Z", **SUPPORT, provider="anthropic", model="claude-sonnet-4",
         tokens={"input": 10000, "cached_input": 3000, "cache_write": 2000, "output": 1000,
                 "reasoning": 200}, cost_usd="0.038400000001"),
    call("e4", "2026-10-30T11:30:00Z", **SEARCH, provider="openai", model="mystery-model",
         tokens={"input": 100, "output": 100}, cost_usd=None),  # unpriced: cost 0
    # 12:00, the hourly window's end (exclusive); inside the daily window.
    call("e5", "2026-10-30T12:00:00Z", **SEARCH, provider="openai", model="gpt-4.1-mini",
         tokens={"input": 1000, "output": 0}, cost_usd="0.000000000001"),
]  # fmt: skip


def validator_venv() -> Path:
    """Where the validator's virtualenv is kept between runs: outside the clone, in the user's
    cache, named by what it holds (the requirements and the interpreter), so a changed pin or
    Python makes a new one."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tokengov"
    key = hashlib.sha256(repr((VALIDATOR, sys.version, sys.base_prefix)).encode()).hexdigest()
    return cache / f"focus-validator-{key[:16]}"


@pytest.fixture(scope="session")
def validator_python() -> Path:
    """The validator's interpreter: the one ``TOKENGOV_FOCUS_VALIDATOR`` names, or a virtualenv
    made once (by ``uv``, which installs from its cache in a second) and reused by every later
    session; a lock file keeps two sessions (xdist workers, other clones) from making it at
    once, and a marker written last keeps a half-made one from being used."""
    given = os.environ.get("TOKENGOV_FOCUS_VALIDATOR")
    if given:
        return Path(given)
    venv = validator_venv()
    python, made = venv / "bin" / "python", venv / ".tokengov-complete"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with (venv.parent / f"{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not made.exists():
            shutil.rmtree(venv, ignore_errors=True)
            uv = [sys.executable, "-m", "uv", "--quiet"]
            subprocess.run([*uv, "venv", "--python", sys.executable, str(venv)], check=True,
                           timeout=120)  # fmt: skip
            install = subprocess.run(
                [*uv, "pip", "install", "--python", str(python), *VALIDATOR],
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert install.returncode == 0, (
                f"uv pip install {' '.join(VALIDATOR)}:\n{install.stderr}"
            )
            made.write_text(" ".join(VALIDATOR))
    return python


@functools.cache
def validator_package(python: Path) -> Path:
    """The directory of the ``focus_validator`` package ``python`` imports (asked once)."""
    found = subprocess.run(
        [str(python), "-c", "import focus_validator, os; "
         "print(os.path.dirname(focus_validator.__file__))"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return Path(found.stdout.strip())


@pytest.fixture(scope="session")
def rule_sets(validator_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """focus-validator's own rule sets, with the four 1.0 column ids FOCUS 1.0 renamed."""
    package = validator_package(validator_python)
    rules = tmp_path_factory.mktemp("focus-rules") / "version_sets"
    shutil.copytree(package / "rules" / "version_sets", rules)
    renamed = 0
    sku_price = rules / "1.0" / "SkuPriceId_Nullable.yaml"  # its SQL names ChargeType too
    sku_price.write_text(sku_price.read_text().replace("ChargeType", "ChargeCategory"))
    for path in (rules / "1.0").glob("*.yaml"):
        text = path.read_text()
        for old, new in RENAMED.items():
            if f"column_id: {old}\n" in text or text.endswith(f"column_id: {old}"):
                text = text.replace(f"column_id: {old}", f"column_id: {new}")
                path.write_text(text)
                renamed += 1
    assert renamed >= len(RENAMED) * 3, renamed  # each has at least Required/IsString/NotNull
    return rules


#: focus-validator 1.0.0 checks a Decimal column by its pandas dtype (float64). pandas reads a
#: Parquet decimal128 column — the exact type FOCUS Decimal asks for — as Python Decimals
#: (object dtype), and a header-only CSV has no values to infer a dtype from: there these
#: checks (and only these) fail, and the tests check the column types themselves. (Its
#: override file cannot skip them: a skipped type check still fails on the dtype.)
IS_DECIMAL = tuple(
    f"{column}_IsDecimal"
    for column in ("BilledCost", "ConsumedQuantity", "ContractedCost", "ContractedUnitPrice",
                   "EffectiveCost", "ListCost", "ListUnitPrice", "PricingQuantity")
)  # fmt: skip


def validate(python: Path, rules: Path, data: Path, tmp_path: Path) -> dict[str, str]:
    """Runs the focus-validator CLI on ``data`` (FOCUS 1.0); each check's outcome by name."""
    report = tmp_path / f"{data.name}.xml"

    # The validator reads its currency list from a path relative to its package's parent.
    cwd = validator_package(python).parent
    run = subprocess.run(
        [str(python), "-m", "focus_validator.main", "--data-file", str(data),
         "--validate-version", "1.0", "--rule-set-path", str(rules),
         "--output-type", "unittest", "--output-destination", str(report)],
        capture_output=True, text=True, cwd=cwd, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, f"focus-validator on {data}:\n{run.stdout}\n{run.stderr}"
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = case.attrib["name"]
        failed = case.find("failure")
        errored = case.find("error")
        if failed is not None:
            outcomes[name] = f"failed: {failed.attrib.get('message')}"
        elif errored is not None:
            outcomes[name] = f"errored: {errored.attrib.get('message')}"
        elif case.find("skipped") is not None:
            outcomes[name] = "skipped"
        else:
            outcomes[name] = "passed"
    return outcomes


#: focus-validator 1.0.0's one row-level SQL check (pandasql) fails on a frame of no rows.
SQL_ON_NO_ROWS = {
    "SkuPriceId_Nullable :: SQLQueryCheck": "failed: SkuPriceId must be set for certain "
    "values of ChargeCategory"
}


def assert_valid(
    outcomes: dict[str, str], dtype_only: tuple[str, ...] = (), *, empty: bool = False
) -> None:
    """Every check passed, but for ``dtype_only``: those failed on the dtype, nothing else
    (and, for a file of no rows, the SQL check that cannot run on no rows)."""
    bad = {k: v for k, v in outcomes.items() if v != "passed"}
    assert bad == {
        f"{check} :: DataTypeCheck": "failed: Ensures that column is of decimal type."
        for check in dtype_only
    } | (SQL_ON_NO_ROWS if empty else {})
    # The columns FOCUS 1.0 requires were all checked, including the four renamed ones.
    for check in ("BilledCost_Required", "Provider_Required", "InvoiceIssuer_NotNull",
                  "ResourceID_IsString", "Tags_IsJSONObject"):  # fmt: skip
        assert any(name.startswith(f"{check} ") for name in outcomes), check
    assert len(outcomes) > 100


@pytest.fixture
def data_dir(tmp_path: Path, policy: Policy, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data directory whose embedded store holds :data:`EVENTS`, written as the writer
    writes them (decoded and priced by the sink's decoder, inserted by the store)."""
    directory = tmp_path / "data"
    dsn = f"chdb://{directory / 'clickhouse'}"
    decoder = MessageDecoder(lambda: policy.catalog)
    piece = PartitionSlice("events", 0)
    for offset, doc in enumerate(EVENTS):
        piece.messages.append(
            Consumed.of_decoded("events", 0, offset, decoder.decode("events", orjson.dumps(doc)))
        )
    with ClickHouseStore(dsn) as store:
        migrate(store)
        for table, pairs in Flush.of([piece]).rows_by_table().items():
            store.insert(table, [i.row for _, i in pairs], columns=COLUMNS[table])
    monkeypatch.setenv("TOKENGOV_CLICKHOUSE_URL", dsn)
    yield directory


def export(data_dir: Path, *args: str) -> str:
    result = CliRunner().invoke(
        app, ["export", "focus", "--data-dir", str(data_dir), *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def stored_totals(data_dir: Path, since: str, until: str) -> tuple[Decimal, int]:
    """sum(cost_usd) and the tokens of the stored events, asked of the store directly."""
    with ClickHouseStore(f"chdb://{data_dir / 'clickhouse'}", readonly=True) as store:
        result = store.query(
            "SELECT sum(toDecimal256(cost_usd, 12)), sum(input_tokens + output_tokens) "
            f"FROM token_events WHERE ts >= '{since}' AND ts < '{until}'"
        )
    cost, tokens = result.rows[0]
    return Decimal(cost), int(tokens)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


HOURLY = [  # (ChargePeriodStart, team, workflow, agent, provider, model, tokens, cost)
    ("2026-10-30T10:00:00Z", "search", "triage", "planner", "openai", "gpt-4.1-mini",
     3750, "0.002222222212"),
    ("2026-10-30T11:00:00Z", "search", "triage", "planner", "openai", "mystery-model",
     200, "0.000000000000"),
    ("2026-10-30T11:00:00Z", "support", "summary", "writer", "anthropic", "claude-sonnet-4",
     11000, "0.038400000001"),
]  # fmt: skip


def test_csv_hourly_is_valid_focus_with_exact_totals(
    data_dir: Path, validator_python: Path, rule_sets: Path, tmp_path: Path
) -> None:
    out = tmp_path / "focus.csv"
    said = export(data_dir, "--since", "2026-10-30", "--until", "2026-10-30T12:00:00Z",
                  "--out", str(out))  # fmt: skip
    assert "3 row(s)" in said
    rows = read_csv(out)
    got = [
        (r["ChargePeriodStart"], *(json.loads(r["Tags"])[k] for k in ("tokengov/team",
         "tokengov/workflow", "tokengov/agent")), r["ProviderName"], r["ResourceId"], r["ConsumedQuantity"], r["BilledCost"])
        for r in rows
    ]  # fmt: skip
    assert got == [(s, t, w, a, p, m, f"{q}.0", c) for s, t, w, a, p, m, q, c in HOURLY]
    first = rows[0]
    assert first["ChargePeriodEnd"] == "2026-10-30T11:00:00Z"
    assert (first["BillingPeriodStart"], first["BillingPeriodEnd"]) == (
        "2026-10-01T00:00:00Z",
        "2026-11-01T00:00:00Z",
    )
    assert (first["BillingCurrency"], first["ChargeCategory"], first["ChargeClass"]) == (
        "USD",
        "Usage",
        "",
    )
    assert (first["ServiceCategory"], first["ConsumedUnit"], first["PricingUnit"]) == (
        "AI and Machine Learning",
        "Tokens",
        "Tokens",
    )
    assert (first["PricingQuantity"], first["SkuId"]) == ("3750.0", "openai/gpt-4.1-mini")
    assert (first["x_Calls"], first["x_CachedInputTokens"]) == ("2", "1000")
    for column in ("EffectiveCost", "ListCost", "ContractedCost"):
        assert [r[column] for r in rows] == [c for *_, c in HOURLY]
    assert [r["x_UnpricedCalls"] for r in rows] == ["0", "1", "0"]
    claude = rows[2]
    assert (claude["x_CacheWriteTokens"], claude["x_ReasoningTokens"]) == ("2000", "200")
    # Totals: by hand, and equal to the store's own sums over the window, exactly.
    billed = sum(Decimal(r["BilledCost"]) for r in rows)
    consumed = sum(Decimal(r["ConsumedQuantity"]) for r in rows)
    assert billed == Decimal("0.040622222213")
    assert consumed == 14950
    assert (billed, consumed) == stored_totals(
        data_dir, "2026-10-30 00:00:00", "2026-10-30 12:00:00"
    )
    assert_valid(validate(validator_python, rule_sets, out, tmp_path))


def test_parquet_daily_is_valid_focus_with_exact_decimals(
    data_dir: Path, validator_python: Path, rule_sets: Path, tmp_path: Path
) -> None:
    out = tmp_path / "focus.parquet"  # the format from the suffix
    export(data_dir, "--since", "2026-10-30T05:00:00Z", "--until", "2026-10-31T03:00:00Z",
           "--granularity", "day", "--out", str(out))  # fmt: skip
    table = pq.read_table(out)
    assert table.schema.field("BilledCost").type == pa.decimal128(38, 12)
    assert table.schema.field("ConsumedQuantity").type == pa.decimal128(38, 0)
    assert table.schema.field("ChargePeriodStart").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.metadata[b"focus_version"] == b"1.0"
    rows = table.to_pylist()
    # Both ends rounded down to a day: the whole of 2026-10-30, e5 at 12:00 included.
    assert [(r["ResourceId"], r["ConsumedQuantity"], r["BilledCost"]) for r in rows] == [
        ("gpt-4.1-mini", Decimal(4750), Decimal("0.002222222213")),
        ("mystery-model", Decimal(200), Decimal("0E-12")),
        ("claude-sonnet-4", Decimal(11000), Decimal("0.038400000001")),
    ]
    assert {r["ChargePeriodStart"] for r in rows} == {datetime(2026, 10, 30, tzinfo=UTC)}
    assert {r["ChargePeriodEnd"] for r in rows} == {datetime(2026, 10, 31, tzinfo=UTC)}
    billed = sum(r["BilledCost"] for r in rows)
    assert billed == Decimal("0.040622222214")
    assert (billed, sum(r["ConsumedQuantity"] for r in rows)) == stored_totals(
        data_dir, "2026-10-30 00:00:00", "2026-10-31 00:00:00"
    )
    for column in ("EffectiveCost", "ListCost", "ContractedCost", "ListUnitPrice"):
        assert table.schema.field(column).type == pa.decimal128(38, 12), column
    assert table.schema.field("PricingQuantity").type == pa.decimal128(38, 0)
    assert_valid(validate(validator_python, rule_sets, out, tmp_path), IS_DECIMAL)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_empty_window_writes_a_valid_header_only_file(
    data_dir: Path, validator_python: Path, rule_sets: Path, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"empty.{suffix}"
    said = export(data_dir, "--since", "2026-11-05", "--until", "2026-11-06", "--out", str(out))
    assert "no spend in the window: header only" in said
    if suffix == "csv":
        lines = out.read_text().splitlines()
        assert len(lines) == 1 and lines[0].startswith("AvailabilityZone,BilledCost,")
    else:
        table = pq.read_table(out)
        assert table.num_rows == 0
        assert table.schema.field("BilledCost").type == pa.decimal128(38, 12)
    assert_valid(validate(validator_python, rule_sets, out, tmp_path), IS_DECIMAL, empty=True)


def test_unknown_suffix_is_refused_with_the_option_named(data_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["export", "focus", "--data-dir", str(data_dir), "--out", str(tmp_path / "f.txt")]
    )
    assert result.exit_code == 1
    assert "--out" in result.output and "--format csv|parquet" in result.output
    assert not (tmp_path / "f.txt").exists()


def test_export_through_the_running_workers_endpoint_is_the_same_file(
    data_dir: Path, tmp_path: Path
) -> None:
    """With a worker serving the embedded store, the export reads through its query endpoint
    (values decoded from JSON by their ClickHouse types): the same bytes as read directly."""
    window = ["--since", "2026-10-30", "--until", "2026-10-31", "--granularity", "hour"]
    direct = tmp_path / "direct.csv"
    export(data_dir, *window, "--out", str(direct))
    endpoint = QueryEndpoint(
        f"chdb://{data_dir / 'clickhouse'}", f"127.0.0.1:{free_port()}", data_dir
    )
    endpoint.start()
    try:
        assert endpoint_address(data_dir) is not None
        served = tmp_path / "served.csv"
        export(data_dir, *window, "--out", str(served))
    finally:
        endpoint.stop()
    assert served.read_bytes() == direct.read_bytes()
    assert len(read_csv(served)) == 4  # 10:00, 11:00 (two rows), 12:00


def test_an_unwritable_out_is_reported_and_leaves_no_partial_file(
    data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "missing-dir" / "focus.csv"
    result = CliRunner().invoke(
        app, ["export", "focus", "--data-dir", str(data_dir), "--out", str(out),
              "--since", "2026-10-30", "--until", "2026-10-31"],
    )  # fmt: skip
    assert result.exit_code == 1
    said = "".join(result.output.split())  # rich wraps long paths anywhere
    assert f"--out{out}:Nosuchfileordirectory" in said
    assert not out.parent.exists()
    # and a successful export leaves only its file
    good = tmp_path / "focus.csv"
    export(data_dir, "--since", "2026-10-30", "--until", "2026-10-31", "--out", str(good))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_random_history_with_stored_duplicates_exports_each_event_once(
    tmp_path: Path,
    policy: Policy,
    validator_python: Path,
    rule_sets: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """150 random tasks over ~40 hours across a month boundary (retries, cache and reasoning
    tokens, reported costs, an unpriced model, unattributed calls), ten of them stored twice:
    per hour × team × workflow × model the rows sum to the Python aggregation of the unique
    events (conftest's ``expected_rollup``), each row's billing period is its month, and
    the file is valid FOCUS."""
    docs = make_events(150, seed=30)
    directory = tmp_path / "data"
    dsn = f"chdb://{directory / 'clickhouse'}"
    decoder = MessageDecoder(lambda: policy.catalog)
    piece = PartitionSlice("events", 0)
    for offset, doc in enumerate(docs):
        piece.messages.append(
            Consumed.of_decoded("events", 0, offset, decoder.decode("events", orjson.dumps(doc)))
        )
    with ClickHouseStore(dsn) as store:
        migrate(store)
        for table, pairs in Flush.of([piece]).rows_by_table().items():
            rows = [i.row for _, i in pairs]
            store.insert(table, rows, columns=COLUMNS[table])
            if table == "token_events":  # a second, different block: stored twice until merged
                store.insert(table, rows[:10], columns=COLUMNS[table])
        raw, unique = store.query("SELECT count(), uniqExact(event_id) FROM token_events").rows[0]
    assert raw == unique + 10
    out = tmp_path / "focus.csv"
    monkeypatch.setenv("TOKENGOV_CLICKHOUSE_URL", dsn)
    export(directory, "--since", "2026-10-01", "--until", "2026-12-01", "--out", str(out))
    rows = read_csv(out)
    got: dict[tuple[Any, ...], list[Any]] = {}
    for r in rows:
        tags = json.loads(r["Tags"])
        hour = datetime.fromisoformat(r["ChargePeriodStart"])
        key = (hour, tags["tokengov/team"], tags["tokengov/workflow"], r["ResourceId"])
        acc = got.setdefault(key, [0, 0, Decimal(0), 0])
        acc[0] += int(r["x_Calls"])
        acc[1] += int(Decimal(r["ConsumedQuantity"]))
        acc[2] += Decimal(r["BilledCost"])
        acc[3] += int(r["x_UnpricedCalls"])
        month = hour.replace(day=1, hour=0)
        assert r["BillingPeriodStart"] == f"{month:%Y-%m-%dT%H:%M:%SZ}"
    expected = {
        key: [v[0], v[1] + v[2], v[6], v[9]] for key, v in expected_rollup(docs, policy).items()
    }
    assert got == expected
    assert {r["BillingPeriodStart"] for r in rows} == {
        "2026-10-01T00:00:00Z",
        "2026-11-01T00:00:00Z",
    }
    assert_valid(validate(validator_python, rule_sets, out, tmp_path))


def test_a_window_longer_than_the_row_limit_is_read_a_day_at_a_time(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers run with a result-row limit (TOKENGOV_QUERY_MAX_RESULT_ROWS): the export asks
    one day at a time, so 5 rows come through a limit of 4 (one on the 29th, four on the
    30th); a day with more rows than the limit is refused with the setting to raise."""
    window = ["--since", "2026-10-29", "--until", "2026-10-31"]
    monkeypatch.setenv("TOKENGOV_QUERY_MAX_RESULT_ROWS", "4")
    out = tmp_path / "focus.csv"
    assert "5 row(s)" in export(data_dir, *window, "--out", str(out))
    assert [r["ChargePeriodStart"] for r in read_csv(out)] == [
        "2026-10-29T23:00:00Z",
        "2026-10-30T10:00:00Z",
        "2026-10-30T11:00:00Z",
        "2026-10-30T11:00:00Z",
        "2026-10-30T12:00:00Z",
    ]
    monkeypatch.setenv("TOKENGOV_QUERY_MAX_RESULT_ROWS", "3")
    refused = CliRunner().invoke(
        app, ["export", "focus", "--data-dir", str(data_dir), *window, "--out", str(out)]
    )
    assert refused.exit_code == 1
    assert "TOKENGOV_QUERY_MAX_RESULT_ROWS" in "".join(refused.output.split())
