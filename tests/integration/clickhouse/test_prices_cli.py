"""``tokengov prices check`` over a real chdb history, and ``tokengov prices show``: the
models seen lately that are unpriced or priced by the catalog alone, the policy's prices
that differ from the catalog, and where a model's rates come from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import genai_prices
import pytest
from typer.testing import CliRunner

from tests.unit.streams.builders import call
from tokengov.app.cli.main import app
from tokengov.core.contracts import CallEvent
from tokengov.core.policy import PriceCatalog
from tokengov.core.pricing import price_call
from tokengov.sinks.clickhouse.rows import event_row
from tokengov.sinks.clickhouse.store import ClickHouseStore
from tokengov.sinks.clickhouse.writer import COLUMNS

pytestmark = pytest.mark.integration

POLICY = """
version: 1
prices:
  gpt-4.1-mini: {input: 0.30, output: 1.20}
discounts:
  - provider: anthropic
    discount: 0.1
"""


def _event(provider: str, model: str, at: datetime) -> CallEvent:
    return call(model=model).model_copy(update={"provider": provider, "ts": at})


@pytest.fixture
def history(store: ClickHouseStore, tmp_path: Path) -> str:
    now = datetime.now(UTC)
    events = [
        _event("anthropic", "claude-sonnet-4-20250514", now - timedelta(hours=1)),
        _event("openai", "made-up-model", now - timedelta(hours=2)),
        _event("openai", "made-up-model", now - timedelta(hours=3)),
        # seen only before the window
        _event("openai", "ancient-model", now - timedelta(days=30)),
    ]
    # recorded as the sink records them (no policy: the catalog alone)
    rows = [event_row(e, price_call(e, PriceCatalog({}))) for e in events]
    store.insert("token_events", rows, columns=COLUMNS["token_events"])
    return f"chdb://{tmp_path / 'ch'}"


@pytest.mark.usefixtures("wide_console")
def test_check_lists_unpriced_and_catalog_only_models(
    history: str, store: ClickHouseStore, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    store.close()  # the CLI opens the store itself
    runner = CliRunner(env={"COLUMNS": "250"})
    result = runner.invoke(
        app,
        ["prices", "check", "--clickhouse", history, "--policy", str(policy)],
        terminal_width=250,
    )
    # a seen model is unpriced: exit 1, and the report says which
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    (made_up,) = [line for line in lines if "made-up-model" in line]
    assert "unpriced" in made_up and " 2 " in made_up  # two calls, both recorded unpriced
    (claude,) = [line for line in lines if "claude-sonnet-4-20250514" in line]
    assert f"catalog genai-prices {genai_prices.__version__}" in claude
    assert "discount 0.1" in claude
    assert "ancient-model" not in result.output
    # the policy's gpt-4.1-mini differs from the catalog's list price ($0.40 / $1.60)
    (override,) = [line for line in lines if line.lstrip("│ ").startswith("gpt-4.1-mini")]
    assert "input $0.3 (catalog $0.4)" in override and "output $1.2 (catalog $1.6)" in override


@pytest.mark.usefixtures("wide_console")
def test_show_says_where_the_rates_come_from(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    runner = CliRunner(env={"COLUMNS": "250"})
    vertex = runner.invoke(
        app,
        [
            "prices",
            "show",
            "claude-sonnet-4@20250514",
            "--provider",
            "google-vertex",
            "--at",
            "2026-11-20",
        ],
        terminal_width=250,
    )
    assert vertex.exit_code == 0, vertex.output
    assert f"catalog genai-prices {genai_prices.__version__}: google / claude-4-sonnet" in (
        vertex.output
    )
    assert "$3 " in vertex.output and "$15 " in vertex.output
    override = runner.invoke(
        app,
        [
            "prices",
            "show",
            "gpt-4.1-mini-2025-04-14",
            "--provider",
            "openai",
            "--policy",
            str(policy),
        ],
        terminal_width=250,
    )
    assert override.exit_code == 0, override.output
    assert "policy override" in override.output and "the catalog's price, overridden" in (
        override.output
    )
    discounted = runner.invoke(
        app,
        ["prices", "show", "claude-sonnet-4-0", "--provider", "anthropic", "--policy", str(policy)],
        terminal_width=250,
    )
    assert "discount 0.1 applied (provider anthropic)" in discounted.output
    assert "$2.7 " in discounted.output  # $3 list price, 10 % off
    unknown = runner.invoke(app, ["prices", "show", "made-up-model"], terminal_width=250)
    assert unknown.exit_code == 1 and "unpriced" in unknown.output
