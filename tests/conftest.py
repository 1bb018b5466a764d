"""Shared fixtures. Integration tests get a real Tansu broker (one per session) and
their own topics (a unique prefix per test) so that tests do not leak into each other."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tokengov.app.local.broker import EmbeddedBroker, free_port
from tokengov.core.topics import Topics, TopicSpec, ensure_topics, topic_specs

#: The suite's topics have 4 event partitions (fewer rebalances on 2 cores); every worker a
#: test starts inherits the setting, and refuses to start on a topic with another count.
TEST_EVENT_PARTITIONS = 4
os.environ["TOKENGOV_EVENT_PARTITIONS"] = str(TEST_EVENT_PARTITIONS)
#: Every worker a test starts with the otlp role (part of ``all``) listens on a free port, not
#: on 4318: xdist runs several at once, and the receiver of one that lost the port is not ready.
os.environ["TOKENGOV_OTLP_PORT"] = "0"

#: No per-example deadline: Hypothesis's default (200 ms) is a timing assertion, and on 2 shared
#: cores under xdist an example of the pricing property took 347 ms and failed the run.
settings.register_profile("tokengov", deadline=None)
settings.load_profile("tokengov")


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A real Tansu process on a free loopback port, for the whole session."""
    state = tmp_path_factory.mktemp("broker")
    embedded = EmbeddedBroker(state, port=free_port())
    embedded.start(detach=False)
    try:
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture
def bootstrap(broker: EmbeddedBroker) -> str:
    return broker.bootstrap


@pytest.fixture
def topic_prefix() -> str:
    """A prefix unique to this test: ``t<hex>.`` → ``t1a2b….tokengov.events``."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def topics(bootstrap: str, topic_prefix: str) -> dict[str, str]:
    """The project's topics, created for this test only. Maps the canonical name to the real one."""
    specs: list[TopicSpec] = topic_specs(
        prefix=topic_prefix, event_partitions=TEST_EVENT_PARTITIONS
    )
    ensure_topics(bootstrap, specs)
    return {s.name.removeprefix(topic_prefix): s.name for s in specs}


@pytest.fixture
def topic_names(topics: dict[str, str], topic_prefix: str) -> Topics:
    """The same topics as a :class:`Topics` value, to hand to components."""
    return Topics.with_prefix(topic_prefix)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's rich console 250 columns wide for in-process runs (CliRunner). rich reads
    COLUMNS once, when the console is made (at import, by whichever test of the process came
    first), so a runner's env or terminal_width cannot widen it: lines would wrap."""
    from tokengov.app.cli import common

    monkeypatch.setattr(common.console, "_width", 250)
    monkeypatch.setattr(common.console, "_height", 50)
