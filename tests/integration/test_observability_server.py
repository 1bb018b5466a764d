"""The health and metrics server on loopback: /healthz, /readyz flipping with its checks,
/metrics read with prometheus-client's parser, a taken port refused with the setting named."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from tokengov.core.errors import TokenGovError
from tokengov.core.observability import serve_observability

pytestmark = pytest.mark.integration


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


class Things(Collector):
    def __init__(self) -> None:
        self.count = 0

    def collect(self):  # type: ignore[no-untyped-def]
        family = CounterMetricFamily("tokengov_things_total", "Things.", labels=["kind"])
        family.add_metric(["a"], self.count)
        yield family


def test_health_ready_and_metrics() -> None:
    things = Things()
    state = {"loaded": False}
    server = serve_observability(
        0,
        things,
        ready={"state": lambda: None if state["loaded"] else "not loaded yet"},
        host="127.0.0.1",
    )
    assert server is not None
    try:
        assert get(server.port, "/healthz") == (200, "ok\n")
        assert get(server.port, "/readyz") == (503, "state: not loaded yet\n")
        state["loaded"] = True
        assert get(server.port, "/readyz") == (200, "ready\n")
        things.count = 7  # read at scrape time
        status, text = get(server.port, "/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(text)}
        (sample,) = families["tokengov_things"].samples
        assert sample.name == "tokengov_things_total" and sample.labels == {"kind": "a"}
        assert sample.value == 7
        assert "process_cpu_seconds" in families  # the process collector is there too
        assert get(server.port, "/nope")[0] == 404
    finally:
        server.stop()


def test_a_failing_check_is_a_reason_not_a_crash() -> None:
    def broken() -> str | None:
        raise RuntimeError("boom")

    server = serve_observability(0, ready={"store": broken}, host="127.0.0.1")
    assert server is not None
    try:
        assert get(server.port, "/readyz") == (
            503,
            "store: the check failed: RuntimeError: boom\n",
        )
        assert get(server.port, "/healthz")[0] == 200
    finally:
        server.stop()


def test_off_when_unset_and_a_taken_port_names_the_setting() -> None:
    assert serve_observability(None) is None
    first = serve_observability(0, host="127.0.0.1")
    assert first is not None
    try:
        with pytest.raises(TokenGovError, match="TOKENGOV_METRICS_PORT"):
            serve_observability(first.port, host="127.0.0.1")
    finally:
        first.stop()
