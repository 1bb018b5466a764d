"""Role selection of ``create_app``: unknown or missing roles fail before anything connects."""

from __future__ import annotations

import importlib

import pytest

from tokengov.app.worker_app import ROLE_LOADERS, Register, app_id, create_app, expand_roles
from tokengov.core.errors import TokenGovError
from tokengov.core.policy import parse_policy
from tokengov.core.settings import Settings
from tokengov.core.topics import Topics
from tokengov.core.worker_context import PolicyHolder, WorkerContext


def test_all_expands_to_every_role_once() -> None:
    assert expand_roles(["all"]) == ["streams", "sink", "router", "otlp"]
    assert expand_roles(["streams", "all", "streams"]) == ["streams", "sink", "router", "otlp"]
    with pytest.raises(TokenGovError, match="unknown role 'sinks'"):
        expand_roles(["sinks"])


def test_processes_with_different_roles_use_different_groups(tmp_path) -> None:
    ctx = WorkerContext(
        settings=Settings(data_dir=tmp_path),
        policy=PolicyHolder(parse_policy("version: 1\n")),
        topics=Topics.with_prefix("p."),
    )
    assert app_id(ctx, expand_roles(["all"])) == "p.tokengov-worker"
    roles = ("streams", "sink", "router", "governance", "debt")
    groups = {app_id(ctx, expand_roles([r])) for r in roles}
    assert groups == {
        "p.tokengov-worker-streams",
        "p.tokengov-worker-sink",
        "p.tokengov-worker-router",
        "p.tokengov-worker-governance",
        "p.tokengov-worker-debt",
    }


def test_a_role_whose_module_is_missing_says_so(tmp_path, monkeypatch) -> None:
    def missing_router() -> list[Register]:
        module = importlib.import_module("tokengov.sinks.no_such_router.role")
        return [module.register]

    monkeypatch.setitem(ROLE_LOADERS, "router", missing_router)
    ctx = WorkerContext(
        settings=Settings(data_dir=tmp_path, kafka_bootstrap="127.0.0.1:1"),
        policy=PolicyHolder(parse_policy("version: 1\n")),
    )
    with pytest.raises(
        TokenGovError, match=r"role 'router' needs the module tokengov\.sinks\.no_such_router"
    ):
        create_app(ctx, ["streams", "router"])  # checked before anything connects
