"""A newcomer's next commands: after the demo, the README's readers work without flags on the
demo's store; with no history they say so in one line, exit 66 and create nothing.

The demo's store is filled the way the demo's worker fills it — its own path
(:func:`demo_data_dir`, the data dir's DSN), the project's schema, the rows the sink
writes — from the scripted debt fleet and what the real debt engine makes of it, instead of
running the 80-second demo. Every command runs through the real CLI (typer's runner, in a
working directory of its own, no ``TOKENGOV_*`` variable), on real chdb stores.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tokengov.app.cli.demo import next_commands, reader_flags
from tokengov.app.cli.history import EXIT_NO_HISTORY, demo_data_dir
from tokengov.app.cli.main import app
from tokengov.app.debt_fleet import fleet_policy_yaml, scripted_fleet
from tokengov.app.local.broker import free_port
from tokengov.core.calls import from_model
from tokengov.core.contracts import Alert, CallEvent, Outcome, utcnow
from tokengov.core.policy import parse_policy
from tokengov.core.pricing import price_call
from tokengov.core.settings import Settings
from tokengov.sinks.clickhouse import rows
from tokengov.sinks.clickhouse.endpoint import QueryEndpoint
from tokengov.sinks.clickhouse.migrate import migrate
from tokengov.sinks.clickhouse.store import ClickHouseStore
from tokengov.streams.debt.engine import DebtEngine

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
NO_HISTORY = "error: no history at ./.tokengov yet — start `tokengov up` or run `tokengov demo`"
READERS = (
    ["report", "spend"],
    ["query", "SELECT 1"],
    ["alerts", "list"],
    ["alerts", "show", "al-1"],
    ["debt", "report"],
)


@dataclass(frozen=True)
class DemoLeft:
    """A working directory where the demo left its store, and what it holds."""

    cwd: Path
    workflows: set[str]
    alerts: list[Alert]


def _fill(store: ClickHouseStore) -> tuple[set[str], list[Alert]]:
    end = utcnow().replace(microsecond=0) - timedelta(hours=1)
    run = scripted_fleet(end=end)
    policy = parse_policy(fleet_policy_yaml())
    engine = DebtEngine(policy, clock=lambda: end)
    for event in run.events:
        engine.observe(from_model(event))
    flushed = engine.flush(end)
    calls = [e for e in run.events if isinstance(e, CallEvent)]
    outcomes = [e for e in run.events if isinstance(e, Outcome)]
    store.insert(
        "token_events",
        [rows.event_row(e, price_call(e, policy.catalog)) for e in calls],
        columns=rows.TOKEN_EVENT_COLUMNS,
    )
    store.insert(
        "task_outcomes", [rows.outcome_row(o) for o in outcomes], columns=rows.OUTCOME_COLUMNS
    )
    store.insert(
        "findings",
        [
            rows.finding_row(rows.Finding.model_validate(f.model_dump(mode="json")))
            for f in flushed.findings
        ],
        columns=rows.FINDING_COLUMNS,
    )
    store.insert("alerts", [rows.alert_row(a) for a in flushed.alerts], columns=rows.ALERT_COLUMNS)
    return {e.workflow for e in calls if e.workflow}, flushed.alerts


@pytest.fixture(scope="module")
def demo_left(tmp_path_factory: pytest.TempPathFactory) -> DemoLeft:
    cwd = tmp_path_factory.mktemp("newcomer")
    demo = Settings(data_dir=demo_data_dir(cwd / ".tokengov"))  # what `tokengov demo` runs on
    with ClickHouseStore(demo.clickhouse_dsn) as store:
        migrate(store)
        workflows, alerts = _fill(store)
    assert alerts, "the debt engine should alert on the scripted fleet's waste"
    return DemoLeft(cwd, workflows, alerts)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, wide_console: None) -> Iterator[Callable[..., Result]]:
    """``run(cwd, *args)``: the CLI in ``cwd`` with no ``TOKENGOV_*`` variable but the
    suite's own (the event partitions)."""
    import os

    for name in list(os.environ):
        if name.startswith("TOKENGOV_") and name != "TOKENGOV_EVENT_PARTITIONS":
            monkeypatch.delenv(name)

    def run(cwd: Path, *args: str) -> Result:
        monkeypatch.chdir(cwd)
        return CliRunner().invoke(app, list(args))

    yield run


def readme_next_commands() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- next-commands:[^>]*-->\n```sh\n(.*?)```", text, re.S)
    assert block, "README: the block of commands after the demo is gone"
    return [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]


def test_the_next_commands_read_the_demos_store_without_flags(
    demo_left: DemoLeft, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = readme_next_commands()
    assert [c[:2] for c in readme] == [
        ["tokengov", "report"],
        ["tokengov", "query"],
        ["tokengov", "alerts"],
        ["tokengov", "debt"],
    ]
    summary = [shlex.split(command) for _title, command in next_commands()]
    monkeypatch.chdir(demo_left.cwd)
    assert reader_flags(demo_data_dir(Path(".tokengov"))) == ""  # the summary says them so
    for command in [*readme, *(c for c in summary if c not in readme)]:
        ran = cli(demo_left.cwd, *command[1:])
        assert ran.exit_code == 0, (command, ran.output)
        assert "reading the demo's history at ./.tokengov/demo" in ran.stderr, ran.stderr
        assert "row(s)" in ran.stdout or command[1] != "query", ran.stdout
    spend = cli(demo_left.cwd, "report", "spend").stdout
    assert demo_left.workflows and all(w in spend for w in demo_left.workflows), spend
    listed = cli(demo_left.cwd, "alerts", "list").stdout
    fingerprints = {a.fingerprint for a in demo_left.alerts}
    assert f"{len(fingerprints)} alert(s)" in listed and "debt_finding" in listed, listed
    shown = cli(demo_left.cwd, "alerts", "show", demo_left.alerts[0].alert_id)
    assert shown.exit_code == 0 and demo_left.alerts[0].fingerprint in shown.stdout, shown.output
    html = (demo_left.cwd / "debt.html").read_text(encoding="utf-8")
    assert all(w in html for w in {a.workflow for a in demo_left.alerts if a.workflow}), "debt"
    assert not (demo_left.cwd / ".tokengov" / "clickhouse").exists()  # readers created nothing


def test_while_the_demo_runs_readers_go_through_its_worker(demo_left: DemoLeft, cli) -> None:
    """While the demo's worker owns its store (here: this process serving the real query
    endpoint in the demo's data dir), the readers without flags read through it."""
    demo = Settings(data_dir=demo_data_dir(demo_left.cwd / ".tokengov"))
    endpoint = QueryEndpoint(demo.clickhouse_dsn, f"127.0.0.1:{free_port()}", demo.data_dir)
    endpoint.start()
    try:
        listed = cli(demo_left.cwd, "alerts", "list")
        spend = cli(demo_left.cwd, "report", "spend", "--format", "csv")
    finally:
        endpoint.stop()
    assert listed.exit_code == 0 and "debt_finding" in listed.stdout, listed.output
    assert spend.exit_code == 0, spend.output
    assert all(w in spend.stdout for w in demo_left.workflows), spend.stdout
    assert "reading the demo's history at ./.tokengov/demo" in spend.stderr


def test_once_up_has_a_store_the_demo_needs_its_flag(
    tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    data_dir = tmp_path / ".tokengov"
    demo = demo_data_dir(Path(".tokengov"))
    (tmp_path / demo / "clickhouse").mkdir(parents=True)
    assert reader_flags(demo) == ""
    with ClickHouseStore(Settings(data_dir=data_dir).clickhouse_dsn) as up_store:
        migrate(up_store)  # `tokengov up` made its store: readers read it from now on
    assert reader_flags(demo) == " --data-dir ./.tokengov/demo"
    with monkeypatch.context() as env:  # the demo wrote there too: no flag would help
        env.setenv("TOKENGOV_CLICKHOUSE_URL", "http://analyst:pw@clickhouse:8123/tokengov")
        assert reader_flags(demo) == ""
    empty = cli(tmp_path, "report", "spend")
    assert empty.exit_code == EXIT_NO_HISTORY, empty.output
    assert empty.stderr.strip() == (
        "error: no history at ./.tokengov yet: nothing stored so far — send events (the SDK, "
        "`tokengov emit`) to a running `tokengov up`, or run `tokengov demo` (the demo's "
        "history: --data-dir ./.tokengov/demo)"
    )
    answered = cli(tmp_path, "query", "SELECT count() AS calls FROM token_events")
    assert answered.exit_code == 0 and "1 row(s)" in answered.stdout, answered.output


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a))
def test_no_store_is_one_line_exit_66_and_creates_nothing(
    tmp_path: Path, cli, args: list[str]
) -> None:
    ran = cli(tmp_path, *args)
    assert ran.exit_code == EXIT_NO_HISTORY == 66, ran.output
    assert ran.stderr.strip() == NO_HISTORY and ran.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no ./.tokengov, no store


def test_a_given_store_that_is_not_there_is_not_created(tmp_path: Path, cli) -> None:
    missing = tmp_path / "nowhere" / "clickhouse"
    ran = cli(tmp_path, "alerts", "list", "--clickhouse", f"chdb://{missing}")
    assert ran.exit_code == EXIT_NO_HISTORY, ran.output
    assert ran.stderr.strip() == (
        f"error: no history at {missing} yet — start `tokengov up` or run `tokengov demo`"
    )
    assert not (tmp_path / "nowhere").exists()


def test_a_store_without_tokengovs_tables_says_so(tmp_path: Path, cli) -> None:
    with ClickHouseStore(Settings(data_dir=tmp_path / ".tokengov").clickhouse_dsn) as store:
        store.command("CREATE TABLE other (x UInt8) ENGINE = Memory")  # not tokengov's
    ran = cli(tmp_path, "debt", "report")
    assert ran.exit_code == EXIT_NO_HISTORY, ran.output
    assert ran.stderr.strip().endswith(
        "error: no history at ./.tokengov yet (no tokengov tables there) — start `tokengov up` "
        "or run `tokengov demo`"
    )


def test_a_real_error_is_one_line_with_the_servers_code(demo_left: DemoLeft, cli) -> None:
    ran = cli(demo_left.cwd, "query", "SELECT no_such_column FROM token_events WHERE 1 = 1")
    assert ran.exit_code == 1, ran.output
    error = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and error[0].startswith("error: Code: 47."), ran.stderr
    assert "In scope" not in ran.stderr and "WHERE 1 = 1" not in ran.stderr, ran.stderr
